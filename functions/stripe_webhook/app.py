"""POST /orders/api/stripe-webhook/ (Function URL): Stripe events, verified, deduplicated, applied."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from halum_payments import wiring
from halum_payments.errors import GatewayNotConfigured
from halum_payments.gateways.signatures import verify_stripe_event_with
from halum_payments.http import raw_body, routed
from halum_payments.models import WebhookAck
from halum_payments.observability import count, logger, metrics

settings = wiring.settings()
secret = settings.secret("stripe_webhook_secret")  # as rotated (halum_payments/secrets.py)
# The same handler (and the same idempotency records) as the reconciliation sweep's.
events = wiring.stripe_event_handler(settings, wiring.lazy_stripe_gateway(settings))


def verified_event(event: Any) -> dict[str, Any]:
    if secret is None:
        logger.error("STRIPE_WEBHOOK_SECRET is not configured: refusing unverifiable events")
        raise GatewayNotConfigured("Stripe webhook is not configured")
    try:
        stripe_event = verify_stripe_event_with(
            secret, raw_body(event), (event.get("headers") or {}).get("stripe-signature")
        )
    except Exception:
        count("WebhookSignatureFailures")
        raise
    logger.append_keys(stripe_event_id=stripe_event["id"], stripe_event_type=stripe_event["type"])
    return {"stripe_event": stripe_event}


app = wiring.api(preconditions=[verified_event], error_style="status", function_url=True)


@routed(app.post, "/orders/api/stripe-webhook/", summary="Stripe webhook", tags=["webhooks"])
def stripe_webhook() -> WebhookAck:
    return events(app.context["stripe_event"])


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    events.register_lambda_context(context)
    return app.resolve(event, context)
