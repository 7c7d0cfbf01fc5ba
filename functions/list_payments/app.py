"""GET /orders/api/payments/ : the caller's payments, one cursor page at a time."""

from typing import Annotated, Any, Literal

from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from halum_payments import wiring
from halum_payments.errors import BadRequest
from halum_payments.http import authenticated, create_api, documented, json_response, page_url
from halum_payments.logic.listing import PageRequest
from halum_payments.models import PaymentMethod, PaymentPage, PaymentPageBody, PaymentStatus
from halum_payments.observability import logger

settings = wiring.settings()
queries = wiring.payment_queries(settings)
app = create_api(preconditions=[authenticated(wiring.authenticator(settings))])


@app.get(
    "/orders/api/payments/",
    summary="List the caller's payments",
    tags=["payments"],
    responses=documented(PaymentPage, "A page of the caller's payments"),
)
def list_payments(
    ordering: Annotated[Literal["id", "-id", "created_at", "-created_at"], Query()] = "id",
    status: Annotated[PaymentStatus | None, Query()] = None,
    method: Annotated[PaymentMethod | None, Query()] = None,
    page_size: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    page: Annotated[str | None, Query(description="Not supported: follow `next`/`previous`.")] = None,
):  # no return annotation: the body is JSON already (json_response), documented above
    if page is not None:
        raise BadRequest("Page numbers are not supported: follow the 'next' and 'previous' links instead.")
    request = PageRequest(ordering, status and status.value, method and method.value, page_size, cursor)
    result = queries.list_for_user(app.context["user_id"], request)
    body: PaymentPageBody = {
        "count": result.count,
        "next": page_url(app.current_event, result.next_cursor),
        "previous": page_url(app.current_event, result.previous_cursor),
        "results": result.results,
    }
    return json_response(body)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
