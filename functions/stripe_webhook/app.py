"""POST /orders/api/stripe-webhook/ (Function URL): Stripe events, verified, deduplicated, applied."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from halum_payments import wiring
from halum_payments.http import routed
from halum_payments.models import WebhookAck
from halum_payments.observability import logger, metrics

settings = wiring.settings()
hook = wiring.stripe_webhook(settings)  # signature, then the handler the sweep shares (webhook.py)
app = wiring.api(error_style="status", function_url=True)


@routed(app.post, "/orders/api/stripe-webhook/", summary="Stripe webhook", tags=["webhooks"])
def stripe_webhook() -> WebhookAck:
    return hook.handle(app.current_event.raw_event)


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    hook.register_lambda_context(context)
    return app.resolve(event, context)
