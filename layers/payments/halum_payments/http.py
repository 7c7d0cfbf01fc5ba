"""HTTP transport: the resolver every function uses, and the single error -> response mapping."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, LambdaFunctionUrlResolver, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)
from aws_lambda_powertools.utilities.data_classes.api_gateway_proxy_event import APIGatewayProxyEventV2
from aws_lambda_powertools.utilities.data_classes.common import BaseProxyEvent
from pydantic import BaseModel
from pydantic_core import to_json

from . import deadline
from .errors import (
    NON_FIELD_ERRORS,
    BadGatewaySignature,
    BadRequest,
    BadSignature,
    Conflict,
    DomainError,
    GatewayNotConfigured,
    InvalidInput,
    MethodNotAllowed,
    NotAuthenticated,
    NotFound,
    RequestInProgress,
    TransientFault,
    Unprocessable,
    UnreadableRecord,
    UpstreamUnavailable,
)
from .observability import logger

ErrorStyle = Literal["detail", "status"]
# Checks that answer before the request is read (see create_api); given the raw event.
Precondition = Callable[[Mapping[str, Any]], dict[str, Any] | None]


class _Methods:
    """The methods each of a resolver's paths serves, as `routed` registers them: a request for a served path
    with another method is refused with 405 and `Allow` (Powertools would answer its 404). In AWS every
    method reaches the function: a Function URL takes any, and each HTTP API path has an ANY route."""

    def __init__(self) -> None:
        self._routes: list[tuple[re.Pattern[str], str]] = []
        self._everywhere: frozenset[str] = frozenset()  # served at every path: nothing to look up

    def add(self, rule: str, method: str) -> None:
        # Powertools' dynamic segments (`<payment_id>`) match one path segment.
        pattern = "".join("[^/]+" if part.startswith("<") else re.escape(part) for part in re.split(r"(<\w+>)", rule))
        self._routes.append((re.compile(pattern), method.upper()))
        served: dict[str, set[str]] = {}
        for compiled, each in self._routes:
            served.setdefault(compiled.pattern, set()).add(each)
        self._everywhere = frozenset.intersection(*map(frozenset, served.values()))

    def check(self, event: Mapping[str, Any]) -> None:
        method = str(((event.get("requestContext") or {}).get("http") or {}).get("method", "")).upper()
        if method in self._everywhere:
            return  # the warm path: a function's one method, whatever the path (no event wrapper, no regex)
        path = APIGatewayProxyEventV2(dict(event)).path  # the path Powertools routes by
        allowed = sorted({served for pattern, served in self._routes if pattern.fullmatch(path)})
        if allowed and method not in allowed:
            raise MethodNotAllowed(method, allowed)


class _Preconditioned:
    """Runs the function's preconditions before Powertools reads the request (its validation comes
    first in its middleware stack): what they add goes into the request's context; what they refuse
    is answered by the error mapping in place of anything else (see create_api)."""

    preconditions: Sequence[Precondition] = ()
    methods: _Methods

    def resolve(self, event: Mapping[str, Any], context: Any) -> dict[str, Any]:
        app: Any = self
        with deadline.bound(context):  # every AWS call of this request fits in its remaining time
            try:
                for precondition in self.preconditions:
                    app.append_context(**(precondition(event) or {}))
            except Exception as refusal:  # noqa: BLE001 - answered through the error mapping
                app.append_context(refusal=refusal)
            result: dict[str, Any] = super().resolve(event, context)  # type: ignore[misc]
        return result


class HttpApi(_Preconditioned, APIGatewayHttpResolver):
    """HTTP API (payload v2)."""


class FunctionUrlApi(_Preconditioned, LambdaFunctionUrlResolver):
    """Lambda Function URL (the Stripe webhook)."""


def routed(register: Callable[..., Any], path: str, **options: Any) -> Callable[[Any], Any]:
    """Registers a route under the spec's path (`/x/`, as the platform's DRF clients send it) and,
    left out of the OpenAPI document, under `/x`: API Gateway routes both to the route `/x` with
    the path as sent. `register` is the resolver's own `app.get`, `app.post`...: its name is the
    method, which the resolver then serves at the path (any other is 405)."""
    resolver: Any = getattr(register, "__self__", None)
    methods = getattr(resolver, "methods", None)

    def decorate(handler: Any) -> Any:
        for rule in (path.rstrip("/"), path):
            if methods is not None:
                methods.add(rule, register.__name__)
        register(path.rstrip("/"), include_in_schema=False)(handler)
        return register(path, **options)(handler)

    return decorate


def json_response(body: BaseModel | Mapping[str, Any], status: int = 200) -> Response:
    """`body` (a model, or plain typed data such as `PaymentRow`) as JSON, serialised by pydantic-core
    (Rust) here rather than by Powertools' response validation and `json.dumps` (Python): a page of
    100 payments answers in a fraction of the time. Routes returning it document their model with
    `documented(...)`."""
    data = body.model_dump_json() if isinstance(body, BaseModel) else to_json(body).decode()
    return Response(status_code=status, content_type="application/json", body=data)


def documented(model: type[BaseModel], description: str) -> dict[int | str, Any]:
    """The `responses` entry of a route answering `json_response(model)`."""
    return {200: {"description": description, "content": {"application/json": {"model": model}}}}


def error_body(message: str, style: ErrorStyle, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """`{"detail": message, **extra}` (DRF's shape: `extra` holds simplejwt's `code`/`messages` or the
    field-keyed validation errors), or the webhooks' `{"status": "error", "message": message}`."""
    if style == "status":
        return {"status": "error", "message": message}
    return {"detail": message, **(extra or {})}


def error_response(
    status: int,
    message: str,
    style: ErrorStyle = "detail",
    headers: dict[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Response:
    return Response(
        status_code=status,
        content_type="application/json",
        body=json.dumps(error_body(message, style, extra)),
        headers=headers or {},
    )


# The one place an outcome becomes an HTTP status: the first row the error is an instance of
# (subclasses before their bases). Anything else is our fault: 500.
STATUSES: tuple[tuple[type[BaseException], int], ...] = (
    (NotAuthenticated, 401),
    (BadGatewaySignature, 401),  # the generic gateway's contract
    (BadSignature, 400),  # Stripe's convention
    (BadRequest, 400),
    (NotFound, 404),
    (MethodNotAllowed, 405),
    (Conflict, 409),
    (Unprocessable, 422),
    (UpstreamUnavailable, 502),
    (GatewayNotConfigured, 503),
    (UnreadableRecord, 503),  # the shop's record breaks its contract: retry once it is fixed
    (TransientFault, 503),
)


def status_of(error: BaseException) -> int:
    return next((status for kind, status in STATUSES if isinstance(error, kind)), 500)


def create_api(
    *,
    preconditions: Sequence[Precondition] = (),
    error_style: ErrorStyle = "detail",
    function_url: bool = False,
    transient: Callable[[BaseException], bool] = lambda exc: False,
) -> APIGatewayHttpResolver | LambdaFunctionUrlResolver:
    """A resolver with validation and the error mapping. `preconditions` (who is asking, is the
    function configured, is the body signed) run in order before Powertools reads the request, so
    that they answer first (401 before 400, as DRF does), and exactly once. `transient` says which
    faults a retry may fix (a 503, not a 500): the composition root passes the repositories' rule."""
    app: Any = (FunctionUrlApi if function_url else HttpApi)(enable_validation=True)
    app.methods = _Methods()
    # Who is asking first (401), then whether the path serves the method (405), as DRF answers; the rest
    # (a signature, the configuration) only for a request the route would serve.
    identify = [check for check in preconditions if isinstance(check, Authenticated)]
    rest = [check for check in preconditions if not isinstance(check, Authenticated)]
    app.preconditions = [*identify, app.methods.check, *rest]
    answers = _Answers(app, error_style, transient)
    app.use(middlewares=[_preconditions_middleware])
    app.exception_handler(DomainError)(answers.refused)
    app.exception_handler(RequestValidationError)(answers.invalid_request)
    app.exception_handler(RequestUnsupportedContentType)(answers.unsupported_media_type)
    app.exception_handler(TransientFault)(answers.transient)
    app.exception_handler(Exception)(answers.unhandled)
    app.not_found(answers.not_found)
    return app


def _preconditions_middleware(app: Any, next_middleware: Any) -> Any:
    # A plain function, not a bound method: Powertools caches its inspection of a middleware in an
    # attribute on it, which a bound method refuses (every request re-inspected it: +0.1 ms).
    app.append_context(_request_read=True)  # Powertools has parsed and validated the request
    refusal = app.context.get("refusal")
    if refusal is not None:
        raise refusal
    return next_middleware(app)


class _Answers:
    """The one mapping from what happened to what the caller gets, for one resolver."""

    def __init__(self, app: Any, style: ErrorStyle, transient: Callable[[BaseException], bool]) -> None:
        self._app = app
        self._style = style
        self._transient = transient

    def refused(self, exc: DomainError) -> Response:
        status = status_of(exc)
        headers = {}
        if isinstance(exc, NotAuthenticated):
            headers["WWW-Authenticate"] = 'Bearer realm="api"' + (
                ', error="invalid_token"' if exc.invalid_token else ""
            )
        if isinstance(exc, RequestInProgress):
            headers["Retry-After"] = "1"
        if isinstance(exc, MethodNotAllowed):
            headers["Allow"] = ", ".join(exc.allowed)
        # `reason` may say more than the answer (which token check failed); never the token itself.
        logger.info("request refused", extra={"status": status, "reason": exc.reason})
        return error_response(status, exc.message, self._style, headers, exc.extra_body)

    def invalid_request(self, exc: RequestValidationError) -> Response:
        errors = exc.errors()
        if any(error.get("loc", ())[:1] == ("path",) for error in errors):
            # A path that names no resource (`/payments/abc/`): not found, as Django's URL resolver answers.
            return self._refusal_first(lambda: self.refused(NotFound()))
        return self._refusal_first(lambda: self.refused(validation_errors(errors)))

    def unsupported_media_type(self, exc: RequestUnsupportedContentType) -> Response:
        message = "Unsupported media type in request: send the body as application/json."
        return self._refusal_first(lambda: error_response(415, message, self._style))

    def transient(self, exc: TransientFault) -> Response:
        logger.warning("transient fault", extra={"fault": str(exc)})
        return error_response(503, "Temporarily unavailable, please retry.", self._style, {"Retry-After": "2"})

    def not_found(self, _: NotFoundError) -> Response:
        return error_response(404, "Not found.", self._style)

    def unhandled(self, exc: Exception) -> Response:
        if isinstance(exc, (ValueError, RecursionError)) and not self._app.context.get("_request_read"):
            # Powertools could not read the request: a body that is not UTF-8 (UnicodeDecodeError),
            # JSON nested too deeply for the parser (RecursionError), a multipart body without a
            # boundary... The caller's to fix, never our 500.
            return self._refusal_first(lambda: self.refused(InvalidInput.field(NON_FIELD_ERRORS, NOT_JSON)))
        if self._transient(exc):
            return self.transient(TransientFault(f"DynamoDB: {type(exc).__name__}"))
        return self._fault(exc)

    def _refusal_first(self, answer: Callable[[], Response]) -> Response:
        """What a precondition refused is answered before what Powertools found (validation runs first)."""
        refusal = self._app.context.get("refusal")
        if refusal is None:
            return answer()
        if isinstance(refusal, DomainError):
            return self.refused(refusal)
        if isinstance(refusal, TransientFault):
            return self.transient(refusal)
        return self._fault(refusal)

    def _fault(self, exc: BaseException) -> Response:
        logger.exception("unhandled fault", exc_info=exc)
        return error_response(500, "Internal server error.", self._style)


class Authenticated:
    """Precondition putting the caller's id in `app.context["user_id"]` (401 otherwise). It runs before the
    method is checked (create_api), as DRF authenticates before it answers 405."""

    def __init__(self, authenticator: Any) -> None:
        self._authenticator = authenticator

    def __call__(self, event: Mapping[str, Any]) -> dict[str, Any]:
        return {"user_id": self._authenticator.user_id(event.get("headers") or {})}


def authenticated(authenticator: Any) -> Precondition:
    return Authenticated(authenticator)


NOT_JSON = "Request body is not valid JSON."
NO_BODY = "Request body is required."
_LOCATIONS = ("body", "query", "path", "header")
_SHOWN_INPUT = 100  # characters of a refused value echoed back ("x" is not a valid choice.)


def validation_errors(errors: Sequence[Any]) -> InvalidInput:
    """Powertools' (pydantic's) validation errors as DRF would word and key them: each message under
    its field's name (query parameters included), errors about the whole body under `non_field_errors`."""
    fields: dict[str, list[str]] = {}
    for error in errors:
        location = [str(part) for part in error.get("loc", ()) if part not in _LOCATIONS]
        kind = error.get("type")
        if kind == "json_invalid":
            return InvalidInput.field(NON_FIELD_ERRORS, NOT_JSON)
        if kind == "missing" and not location:
            return InvalidInput.field(NON_FIELD_ERRORS, NO_BODY)
        if kind == "extra_forbidden" and location:
            # Not a field of ours (and possibly named "detail"): about the body as a whole.
            name, message = NON_FIELD_ERRORS, f'Unexpected field "{".".join(location)[:_SHOWN_INPUT]}".'
        else:
            name = ".".join(location) if location else NON_FIELD_ERRORS
            message = drf_message(error)
        if message not in fields.setdefault(name, []):
            fields[name].append(message)
    return InvalidInput(fields)


def _choice(value: Any) -> str:
    shown = value if isinstance(value, str) else json.dumps(value, default=str)
    return f'"{shown[:_SHOWN_INPUT]}" is not a valid choice.'


# pydantic's error type -> DRF's words for what its serializer fields would refuse
# (rest_framework/fields.py), from the error's context and the refused input.
_NULL = "This field may not be null."
_DRF_MESSAGES: dict[str, Callable[[Mapping[str, Any], Any], str | None]] = {
    "missing": lambda ctx, value: "This field is required.",
    "int_type": lambda ctx, value: _NULL if value is None else "A valid integer is required.",
    "int_parsing": lambda ctx, value: _NULL if value is None else "A valid integer is required.",
    "int_from_float": lambda ctx, value: _NULL if value is None else "A valid integer is required.",
    "greater_than_equal": lambda ctx, value: f"Ensure this value is greater than or equal to {ctx.get('ge')}.",
    "greater_than": lambda ctx, value: (
        f"Ensure this value is greater than or equal to {ctx['gt'] + 1}." if isinstance(ctx.get("gt"), int) else None
    ),
    "less_than_equal": lambda ctx, value: f"Ensure this value is less than or equal to {ctx.get('le')}.",
    "less_than": lambda ctx, value: (
        f"Ensure this value is less than or equal to {ctx['lt'] - 1}." if isinstance(ctx.get("lt"), int) else None
    ),
    "literal_error": lambda ctx, value: _choice(value),
    "enum": lambda ctx, value: _choice(value),
    "string_too_long": lambda ctx, value: f"Ensure this field has no more than {ctx.get('max_length')} characters.",
    "string_too_short": lambda ctx, value: f"Ensure this field has at least {ctx.get('min_length')} characters.",
    "string_type": lambda ctx, value: _NULL if value is None else "Not a valid string.",
    "model_attributes_type": lambda ctx, value: "Invalid data. Expected a dictionary.",
    "model_type": lambda ctx, value: "Invalid data. Expected a dictionary.",
    "dict_type": lambda ctx, value: "Invalid data. Expected a dictionary.",
}


def drf_message(error: Mapping[str, Any]) -> str:
    """DRF's own wording for a validation error; pydantic's message (as a sentence) otherwise."""
    word = _DRF_MESSAGES.get(str(error.get("type")))
    message = word(error.get("ctx") or {}, error.get("input")) if word else None
    if message is not None:
        return message
    text = str(error.get("msg", "Invalid value.")).removeprefix("Value error, ")
    return text if text.endswith(".") else text + "."


def raw_body(event: Mapping[str, Any]) -> bytes:
    """The request body exactly as sent (signatures are computed over these bytes)."""
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        return base64.b64decode(body)
    return body.encode("utf-8")


def page_url(event: BaseProxyEvent, cursor: str | None) -> str | None:
    """The absolute URL of this request with `cursor` replaced; "" means the first page."""
    if cursor is None:
        return None
    headers = event.headers or {}
    request_context = event.get("requestContext") or {}
    host = headers.get("host") or request_context.get("domainName") or "localhost"
    scheme = headers.get("x-forwarded-proto", "https").split(",")[0].strip()
    path = event.get("rawPath") or event.path
    params = [(k, v) for k, v in parse_qsl(event.get("rawQueryString") or "", keep_blank_values=True) if k != "cursor"]
    if cursor:
        params.append(("cursor", cursor))
    query = urlencode(params)
    return f"{scheme}://{host}{path}{'?' + query if query else ''}"
