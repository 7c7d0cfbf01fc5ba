"""POST /orders/api/payment-webhook/ : the generic gateway's events, HMAC-verified and idempotent."""

from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from halum_payments import wiring
from halum_payments.http import documented, routed
from halum_payments.logic.gateway_events import GatewayEvent
from halum_payments.models import WebhookAck
from halum_payments.observability import logger, metrics

settings = wiring.settings()
hook = wiring.gateway_webhook(settings)  # signature, idempotency, what is remembered (webhook.py)
app = wiring.api(preconditions=[hook.check], error_style="status")


@routed(
    app.post,
    "/orders/api/payment-webhook/",
    summary="Generic payment gateway webhook",
    tags=["webhooks"],
    responses=documented(WebhookAck, "The event was applied (or changed nothing)"),
)
def payment_webhook(body: GatewayEvent):  # no return annotation: the answer is the remembered reply
    return hook.handle(body)


@metrics.log_metrics
@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    hook.register_lambda_context(context)
    return app.resolve(event, context)
