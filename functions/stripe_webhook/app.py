"""POST /orders/api/stripe-webhook/ (Function URL): Stripe events, verified, deduplicated, applied."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from halum_payments import wiring
from halum_payments.errors import GatewayNotConfigured, RetryLater
from halum_payments.gateways.signatures import verify_stripe_event_with
from halum_payments.http import create_api, raw_body, routed
from halum_payments.idempotency import Idempotent
from halum_payments.logic.webhooks import STRIPE_REPLAY_SECONDS
from halum_payments.models import WebhookAck
from halum_payments.observability import count, logger, metrics

settings = wiring.settings()
secret = settings.secret("stripe_webhook_secret")  # as rotated (halum_payments/secrets.py)
events = wiring.stripe_events(settings, wiring.lazy_stripe_gateway(settings))


def apply_event(payload: dict[str, Any]) -> WebhookAck:
    # The event itself travels beside the payload (app.context), not in it: Powertools deep-copies
    # every payload to hash it, and only "key" and "body" are hashed.
    outcome = events.handle(app.context["stripe_event"])
    if outcome.kind == "retry_later":
        # It cannot apply yet (a refund before its completion): refuse it so that Stripe delivers
        # it again later; raising also forgets the event id, so the redelivery is applied.
        raise RetryLater(f"{outcome.message} Retry later.")
    return WebhookAck(message=f"{outcome.kind}: {outcome.message}")


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


replay = Idempotent(settings.idempotency_table, apply_event, WebhookAck, expires_after_seconds=STRIPE_REPLAY_SECONDS)
app = create_api(preconditions=[verified_event], error_style="status", function_url=True)


@routed(app.post, "/orders/api/stripe-webhook/", summary="Stripe webhook", tags=["webhooks"])
def stripe_webhook() -> WebhookAck:
    event = app.context["stripe_event"]
    return replay({"key": event["id"], "body": {"type": event["type"]}})


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    replay.register_lambda_context(context)
    return app.resolve(event, context)
