"""POST /orders/api/create-stripe-order/ : check out the cart (or pay a pending order) with Stripe."""

from typing import Annotated, Any

from aws_lambda_powertools.event_handler.openapi.params import Header
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from halum_payments import wiring
from halum_payments.errors import GatewayNotConfigured
from halum_payments.http import authenticated, routed
from halum_payments.models import CheckoutRequest, CheckoutSessionOut
from halum_payments.observability import logger, metrics

settings = wiring.settings()
gateway = wiring.stripe_gateway(settings)  # None without STRIPE_SECRET_KEY: every request is a 503
checkout = wiring.stripe_checkout(settings, gateway)


def gateway_configured(_: Any) -> None:
    if gateway is None:
        raise GatewayNotConfigured("Stripe payment gateway is not configured")


app = wiring.api(preconditions=[authenticated(wiring.authenticator(settings)), gateway_configured])


@routed(app.post, "/orders/api/create-stripe-order/", summary="Start a Stripe Checkout", tags=["checkout"])
def create_stripe_order(
    body: CheckoutRequest,
    idempotency_key: Annotated[str | None, Header(alias="idempotency-key", max_length=255)] = None,
) -> CheckoutSessionOut:
    user = app.context["user_id"]
    if body.order is not None:
        started = checkout.for_order(user, body.order, idempotency_key)
    else:
        started = checkout.from_cart(user, body.shipping_address or 0, idempotency_key)
    return CheckoutSessionOut(id=started.session_id, url=started.url)


@metrics.log_metrics
@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
