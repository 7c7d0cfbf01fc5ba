"""POST /orders/api/create-cod/ : cash-on-delivery checkout of the caller's cart."""

from typing import Annotated, Any

from aws_lambda_powertools.event_handler.openapi.params import Header
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from halum_payments import wiring
from halum_payments.http import authenticated, routed
from halum_payments.models import CodCheckoutRequest, CodOrderOut, payment_out
from halum_payments.observability import logger, metrics

settings = wiring.settings()
placing = wiring.order_placement(settings)
app = wiring.api(preconditions=[authenticated(wiring.authenticator(settings))])


@routed(app.post, "/orders/api/create-cod/", status_code=201, summary="Cash-on-delivery checkout", tags=["checkout"])
def create_cod_order(
    body: CodCheckoutRequest,
    idempotency_key: Annotated[str | None, Header(alias="idempotency-key", max_length=255)] = None,
) -> CodOrderOut:
    order, payment = placing.cash_on_delivery(app.context["user_id"], body.shipping_address, idempotency_key)
    return CodOrderOut(order_id=order.id, status=order.status, payment=payment_out(payment))


@metrics.log_metrics
@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
