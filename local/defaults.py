"""Local-only defaults, printed at start. Never used by the deployed stack."""

# A well-known development key: tokens signed with it are worthless anywhere else.
LOCAL_JWT_SECRET = "halum-local-development-jwt-secret-not-for-production"  # noqa: S105
LOCAL_STRIPE_WEBHOOK_SECRET = "whsec_local_sandbox_development_only"  # noqa: S105
LOCAL_PAYMENT_WEBHOOK_SECRET = "local-payment-gateway-webhook-secret"  # noqa: S105
DEMO_USER = 1
