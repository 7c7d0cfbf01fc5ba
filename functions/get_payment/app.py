"""GET /orders/api/payments/{id}/ : one of the caller's payments (anything else is 404)."""

from typing import Annotated, Any

from aws_lambda_powertools.event_handler.openapi.params import Path
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from halum_payments import wiring
from halum_payments.http import authenticated, documented, json_response, routed
from halum_payments.models import ErrorOut, PathId, PaymentOut, payment_out
from halum_payments.observability import logger

settings = wiring.settings()
queries = wiring.payment_queries(settings, paging=False)
app = wiring.api(preconditions=[authenticated(wiring.authenticator(settings))])


@routed(
    app.get,
    "/orders/api/payments/<payment_id>/",
    summary="Retrieve one of the caller's payments",
    tags=["payments"],
    responses={
        **documented(PaymentOut, "The payment"),
        404: {"description": "Not found", "content": {"application/json": {"model": ErrorOut}}},
    },
)
def get_payment(payment_id: Annotated[PathId, Path()]):  # no return annotation: the body is JSON (json_response)
    # A malformed id (`abc`, `01`) fails validation as a path parameter, which the error mapping answers 404.
    return json_response(payment_out(queries.get_for_user(app.context["user_id"], payment_id)))


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
