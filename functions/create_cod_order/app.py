"""POST /orders/api/create-cod/ : cash-on-delivery checkout of the caller's cart."""

from typing import Annotated, Any

from aws_lambda_powertools.event_handler.openapi.params import Header
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from halum_payments import wiring
from halum_payments.http import authenticated, create_api
from halum_payments.keyed_requests import KeyedRequests
from halum_payments.models import CodCheckoutRequest, CodOrderOut, PaymentOut
from halum_payments.observability import logger, metrics

settings = wiring.settings()
checkout = wiring.checkout_service(settings)


def place_order(payload: dict[str, Any]) -> CodOrderOut:
    order, payment = checkout.cash_on_delivery(payload["user"], payload["body"]["shipping_address"])
    return CodOrderOut(order_id=order.id, status=order.status, payment=PaymentOut.of(payment))


checkouts = KeyedRequests(settings.idempotency_table, place_order, CodOrderOut, expires_after_seconds=24 * 3600)
app = create_api(preconditions=[authenticated(wiring.authenticator(settings))])


@app.post("/orders/api/create-cod/", status_code=201, summary="Cash-on-delivery checkout", tags=["checkout"])
def create_cod_order(
    body: CodCheckoutRequest,
    idempotency_key: Annotated[str | None, Header(alias="idempotency-key", max_length=255)] = None,
) -> CodOrderOut:
    return checkouts(app.context["user_id"], idempotency_key, body.model_dump(), app.lambda_context)


@metrics.log_metrics
@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
