"""POST /orders/api/payment-webhook/ : the generic gateway's events, HMAC-verified and idempotent."""

from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from halum_payments import wiring
from halum_payments.errors import DomainError, GatewayNotConfigured
from halum_payments.gateways.signatures import verify_gateway_signature_with
from halum_payments.http import documented, raw_body, routed, status_of
from halum_payments.idempotency import Idempotent
from halum_payments.logic.gateway_events import GATEWAY_REPLAY_SECONDS, GatewayEvent, is_final_refusal
from halum_payments.models import WebhookAck, WebhookReply
from halum_payments.observability import count, logger, metrics

settings = wiring.settings()
secret = settings.secret("payment_webhook_secret")  # as rotated (halum_payments/secrets.py)
events = wiring.gateway_events(settings)


def apply_event(payload: dict[str, Any]) -> WebhookReply:
    # The event itself travels beside the payload (app.context), not in it: Powertools deep-copies
    # every payload to hash it, and only "key" and "body" are hashed.
    try:
        ack = events.handle(app.context["gateway_event"])
    except DomainError as refusal:
        if not is_final_refusal(refusal):
            raise  # not remembered: a redelivery runs again
        return WebhookReply(status_code=status_of(refusal), status="error", message=refusal.message)
    return WebhookReply(status_code=200, status="success", message=ack.message)


def signed(event: Any) -> None:
    if secret is None:
        logger.error("PAYMENT_WEBHOOK_SECRET is not configured: refusing unverifiable events")
        raise GatewayNotConfigured("Payment webhook is not configured")
    try:
        verify_gateway_signature_with(secret, raw_body(event), (event.get("headers") or {}).get("x-webhook-signature"))
    except Exception:
        count("WebhookSignatureFailures")
        raise


replay = Idempotent(settings.idempotency_table, apply_event, WebhookReply, expires_after_seconds=GATEWAY_REPLAY_SECONDS)
app = wiring.api(preconditions=[signed], error_style="status")


@routed(
    app.post,
    "/orders/api/payment-webhook/",
    summary="Generic payment gateway webhook",
    tags=["webhooks"],
    responses=documented(WebhookAck, "The event was applied (or changed nothing)"),
)
def payment_webhook(body: GatewayEvent):  # no return annotation: the answer is the remembered reply
    app.append_context(gateway_event=body)
    reply = replay({"key": body.key, "body": body.model_dump(mode="json")})  # same key, same body
    return Response(reply.status_code, "application/json", reply.model_dump_json(exclude={"status_code"}))


@metrics.log_metrics
@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    replay.register_lambda_context(context)
    return app.resolve(event, context)
