"""Local-only defaults, printed at start. Never used by the deployed stack."""

from pathlib import Path

# The demo data `make run` serves, and the one source of the spec's example payments for the tests
# and events/ (tests/unit/test_spec_examples.py holds it to the spec's words).
DEFAULT_SEED = Path(__file__).with_name("seed.json")

# A well-known development key: tokens signed with it are worthless anywhere else.
LOCAL_JWT_SECRET = "halum-local-development-jwt-secret-not-for-production"  # noqa: S105
LOCAL_STRIPE_WEBHOOK_SECRET = "whsec_local_sandbox_development_only"  # noqa: S105
LOCAL_PAYMENT_WEBHOOK_SECRET = "local-payment-gateway-webhook-secret"  # noqa: S105
DEMO_USER = 1
