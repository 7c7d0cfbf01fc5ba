"""POST /orders/api/create-cod/ : cash-on-delivery checkout of the caller's cart."""

import functools
from typing import TYPE_CHECKING, Annotated, Any

from aws_lambda_powertools.event_handler.openapi.params import Header
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from halum_payments import wiring
from halum_payments.http import authenticated, create_api
from halum_payments.models import CodCheckoutRequest, CodOrderOut, PaymentOut
from halum_payments.observability import logger, metrics

if TYPE_CHECKING:
    from halum_payments.idempotency import Idempotent

settings = wiring.settings()
checkout = wiring.checkout_service(settings)


def place_order(payload: dict[str, Any]) -> CodOrderOut:
    order, payment = checkout.cash_on_delivery(payload["user"], payload["body"]["shipping_address"])
    return CodOrderOut(order_id=order.id, status=order.status, payment=PaymentOut.of(payment))


@functools.cache
def replay() -> "Idempotent[CodOrderOut]":
    # Built by the first request with an Idempotency-Key: Powertools' idempotency utility (and
    # the boto3 it imports) stays out of the cold start of requests without one.
    from halum_payments.idempotency import Idempotent

    return Idempotent(settings.idempotency_table, place_order, CodOrderOut, expires_after_seconds=24 * 3600)


app = create_api(preconditions=[authenticated(wiring.authenticator(settings))])


@app.post("/orders/api/create-cod/", status_code=201, summary="Cash-on-delivery checkout", tags=["checkout"])
def create_cod_order(
    body: CodCheckoutRequest,
    idempotency_key: Annotated[str | None, Header(alias="idempotency-key", max_length=255)] = None,
) -> CodOrderOut:
    user = app.context["user_id"]
    payload = {"key": f"{user}:{idempotency_key}", "body": body.model_dump(), "user": user}
    if not idempotency_key:
        return place_order(payload)
    keyed = replay()
    keyed.register_lambda_context(app.lambda_context)
    return keyed(payload)


@metrics.log_metrics
@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
