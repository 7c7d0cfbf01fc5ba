"""GET /orders/api/payments/ : the caller's payments, one cursor page at a time."""

from typing import Annotated, Any

from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from halum_payments import wiring
from halum_payments.errors import BadRequest, InvalidInput
from halum_payments.http import authenticated, documented, json_response, page_url, routed
from halum_payments.logic.listing import PageRequest
from halum_payments.models import PaymentMethod, PaymentOrdering, PaymentPage, PaymentStatus
from halum_payments.observability import logger

settings = wiring.settings()
queries = wiring.payment_queries(settings)
app = wiring.api(preconditions=[authenticated(wiring.authenticator(settings))])
PAGE_NUMBERS = "Page numbers are not supported: follow the 'next' and 'previous' links instead."
CURSOR = (
    "Opaque: the page's `next_cursor` or `previous_cursor` (the `cursor` of its `next` and `previous` URLs), "
    "sent exactly as given with the same `ordering`, `status` and `method` (`page_size` may change). A cursor is "
    "bound to the caller, the ordering and the filters, and does not expire; any other is a 400 keyed by "
    "`cursor` saying why. Absent or empty: the first page."
)


@routed(
    app.get,
    "/orders/api/payments/",
    summary="List the caller's payments",
    tags=["payments"],
    responses=documented(PaymentPage, "A page of the caller's payments"),
)
def list_payments(
    ordering: Annotated[PaymentOrdering, Query()] = PaymentOrdering.ID,
    status: Annotated[PaymentStatus | None, Query()] = None,
    method: Annotated[PaymentMethod | None, Query()] = None,
    page_size: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(max_length=512, description=CURSOR)] = None,
):  # no return annotation: the body is JSON already (json_response), documented above
    # `page` is refused, not declared (a parameter that always fails is not advertised).
    if "page" in (app.current_event.query_string_parameters or {}):
        raise InvalidInput.field("page", PAGE_NUMBERS)
    request = PageRequest(ordering.value, status and status.value, method and method.value, page_size, cursor)
    try:
        result = queries.list_for_user(app.context["user_id"], request)
    except BadRequest as refused:  # the cursor is the only input the listing itself can refuse
        raise InvalidInput.field("cursor", refused.message) from None
    body: PaymentPage = {
        "count": result.count,
        "next": page_url(app.current_event, result.next_cursor),
        "previous": page_url(app.current_event, result.previous_cursor),
        "next_cursor": result.next_cursor,
        "previous_cursor": result.previous_cursor,
        "results": result.results,
    }
    return json_response(body)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
