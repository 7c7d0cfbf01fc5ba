"""One OpenAPI 3.1 document for the whole API, generated from the functions' own resolvers.

    python -m local.openapi            # (re)write openapi.json at the repository root
    python -m local.openapi --check    # exit 1 if openapi.json is not what this script writes
    python -m local.openapi --stdout   # print the document instead

Each function of template.yaml that has an HTTP route (or a Function URL) is imported as a cold
start would import it, with a harmless local environment (the local default secrets, the table
logical ids as table names, an unreachable DynamoDB endpoint: nothing is called at import time).
Powertools generates each resolver's schema (`app.get_openapi_json_schema()`: routes, pydantic
models, query/header constraints, status codes) and merges them (`OpenAPIMerge`, conflicts are
errors). What a resolver cannot know is added here, from the template and from the error mapping
in `halum_payments.http`:

- the paths from template.yaml: one operation per route, under the path as the spec writes it
  (`/orders/api/payments/{id}/`, with the trailing slash) whether the template routes `/x/`, `/x` or
  both (API Gateway sends `/x/` to the route `/x`; every path is served with and without the slash);
- bearer JWT security on the functions the template gives the JWT secret;
- the webhook signature headers, and the Stripe event body the Stripe webhook verifies itself;
- the error responses the code produces, each with its JSON shape, one named component per shape (a
  generated client's union of answers then lists each once): for the authenticated API DRF's
  (`{"detail": ...}`; each route's 400 declares the keys its field errors come under, beside
  `non_field_errors`; a 401 is simplejwt's `{"detail", "code", "messages"}`), for the webhooks
  `{"status": "error", "message": ...}`; a 502/503, which API Gateway answers too when the function could
  not, is `Unavailable`; API Gateway's own throttling (429) is `ApiGatewayError`. Powertools' own 422
  `HTTPValidationError` is dropped: our error mapping answers validation errors with 400;
- `x-enum-varnames` from the code's enums' member names (`-id` is `ID_DESC`), for client generators.

The output is deterministic (same code, same bytes), so `--check` can guard the committed file.
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import os
import re
import sys
import tomllib
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from local.routing import ANY
from local.template import ROOT, FunctionSpec, Route, Template

OUTPUT = ROOT / "openapi.json"
TITLE = "Halum Hut Payments API"
DESCRIPTION = (
    "Payments for the Halum Hut platform: list and read the caller's payments, check out with Stripe or "
    "cash on delivery, and receive payment gateway webhooks.\n\n"
    "Authenticated operations take the platform's access token (djangorestframework-simplejwt, HS256): "
    "`Authorization: Bearer <access_token>`. Every path is served with and without its trailing slash.\n\n"
    'Error bodies on the authenticated operations are DRF\'s: `{"detail": "..."}`. A 400 also maps each field '
    "at fault (body fields and query parameters) to its messages, and errors about the whole body to "
    '`non_field_errors`: `{"detail": "shipping_address: This field is required.", "shipping_address": '
    '["This field is required."]}`. A 401 is djangorestframework-simplejwt\'s: `{"detail": "Given token not valid '
    'for any token type", "code": "token_not_valid", "messages": [{"token_class": "AccessToken", "token_type": '
    '"access", "message": "Token is expired"}]}` (refresh the access token when `code` is `token_not_valid`), or '
    '`{"detail": "Authentication credentials were not provided."}`. The webhooks answer '
    '`{"status": "error", "message": "..."}`. Answers of API Gateway itself (no route, throttling, a function '
    'that timed out) are `{"message": "..."}` (`ApiGatewayError`). A method a path does not serve answers 405 with '
    "`Allow` listing the ones it does (after authentication on the authenticated paths, as DRF answers)."
)
SERVERS = [
    {"url": "http://127.0.0.1:3000", "description": "Local server (`make run`)"},
    {
        "url": "https://{apiId}.execute-api.{region}.amazonaws.com",
        "description": "Deployed HTTP API (the stack's `ApiUrl` output). The Stripe webhook is served by its "
        "own Function URL instead (the stack's `StripeWebhookUrl` output).",
        "variables": {"apiId": {"default": "api-id"}, "region": {"default": "us-east-1"}},
    },
]
TAGS = [
    {"name": "payments", "description": "The caller's payments."},
    {"name": "checkout", "description": "Turn the caller's cart (or a pending order) into an order and a payment."},
    {"name": "webhooks", "description": "Events from payment providers, verified by signature (no bearer token)."},
]
SECURITY_SCHEME = "bearerAuth"
SECURITY_SCHEMES = {
    SECURITY_SCHEME: {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": 'An access token of the platform (simplejwt: HS256, `token_type` "access", `user_id`, `exp`).',
    }
}
# Where the harmless environment points DynamoDB: a closed port, so a call would fail, not leak.
UNREACHABLE_DYNAMODB = "http://127.0.0.1:9"

# Component names as the spec speaks of them (the models are named for their role in the code).
RENAMED_SCHEMAS = {
    "PaymentOut": "Payment",
    "ErrorOut": "Error",
    "AuthenticationFailedOut": "AuthenticationFailed",
}
# Powertools documents validation failures as 422 with these; our error mapping answers 400.
POWERTOOLS_VALIDATION_SCHEMAS = ("HTTPValidationError", "ValidationError", "ResponseValidationError")

# ---------------------------------------------------------------------------- what the code answers
# Per operation (the handler's name): the error statuses its code can produce and when. Bodies are
# `halum_payments.http.error_body` in the function's error style; the messages are the domain
# errors' (halum_payments/errors.py) raised where the comment says.
AUTH_401 = "No token, another scheme, or a token that is not a valid access token (`WWW-Authenticate: Bearer`)."
MEDIA_415 = "A `Content-Type` the API does not read: send the body as `application/json`."
RETRY_503 = "A transient fault (DynamoDB throttling, contention): retry after `Retry-After` seconds."
ERRORS: dict[str, dict[int, str]] = {
    "list_payments": {
        400: "A query parameter out of range or not one of its choices, an invalid or foreign `cursor`, or `page` "
        "(page numbers are not supported: follow `next` and `previous`); each keyed by the parameter's name.",
        401: AUTH_401,
        503: RETRY_503,
    },
    "get_payment": {
        401: AUTH_401,
        404: "No payment of the caller's with this id (another user's payment is not found either).",
        503: RETRY_503,
    },
    "create_stripe_order": {
        400: "Invalid body (send exactly one of `shipping_address` or `order`), an address or order that is not "
        "the caller's, an empty cart, or an unavailable product.",
        401: AUTH_401,
        409: "Insufficient stock, an order that is paid or cannot be paid, a concurrent change, a request "
        "with the same `Idempotency-Key` still in progress (`Retry-After`), or a record the customer can fix that "
        "breaks its contract: a cart line that cannot be read (update the cart), a product that cannot be bought "
        "right now (remove it from the cart), the caller's address (update it or choose another).",
        415: MEDIA_415,
        422: "Amounts that cannot be charged, or an `Idempotency-Key` reused with a different body.",
        502: "Stripe failed after its bounded retries; nothing was kept.",
        503: "Stripe is not configured, a transient fault (`Retry-After`), or an order record that breaks its "
        "contract (the shop's fault, alarmed: try again later).",
    },
    "create_cod_order": {
        400: "Invalid body, an address that is not the caller's, an empty cart, or an unavailable product.",
        401: AUTH_401,
        409: "Insufficient stock, a concurrent change, a request with the same `Idempotency-Key` still in "
        "progress (`Retry-After`), or a record the customer can fix that breaks its contract: a cart line that "
        "cannot be read (update the cart), a product that cannot be bought right now (remove it from the cart), "
        "the caller's address (update it or choose another).",
        415: MEDIA_415,
        422: "An `Idempotency-Key` reused with a different body.",
        503: RETRY_503 + " Or an order record that breaks its contract (the shop's fault, alarmed: try again later).",
    },
    "stripe_webhook": {
        400: "Missing or invalid `Stripe-Signature` (or a timestamp outside the 5-minute tolerance), or a "
        "signed payload that is not a Stripe event.",
        409: "The event cannot apply yet (e.g. a refund before its completion): Stripe delivers it again later.",
        422: "An event id delivered again with a different event type.",
        503: "The webhook secret is not configured, a transient fault (`Retry-After`), or the event's order record "
        "breaks its contract (the shop's fault, alarmed): delivered again, it applies once the record is fixed.",
    },
    "payment_webhook": {
        400: "The body is not a valid gateway event.",
        401: "Missing or invalid `X-Webhook-Signature`.",
        404: "No order with this `order_reference`.",
        409: "The order is already paid under another transaction, or the event conflicts with the payment's state.",
        415: MEDIA_415,
        422: "The amount does not match the order total, or the same event delivered with a different body.",
        503: "The webhook secret is not configured, a transient fault (`Retry-After`), or the event's order record "
        "breaks its contract (the shop's fault, alarmed): delivered again, it applies once the record is fixed.",
    },
}
# The error statuses the code produces (halum_payments/errors.py and the error mapping in http.py).
ERROR_STATUSES = frozenset({400, 401, 404, 409, 415, 422, 502, 503})
# The operations whose function is mounted as a Function URL (Stripe's), and the webhook headers.
SIGNATURE_HEADERS = {
    "payment_webhook": {
        "name": "X-Webhook-Signature",
        "in": "header",
        "required": True,
        "description": "Hex HMAC-SHA256 of the exact request body with the gateway's webhook secret, optionally "
        "prefixed `sha256=` (case-insensitive hex).",
        "schema": {"type": "string", "maxLength": 2048},
        "example": "sha256=5d41402abc4b2a76b9719d911017c5925d41402abc4b2a76b9719d911017c592",
    },
    "stripe_webhook": {
        "name": "Stripe-Signature",
        "in": "header",
        "required": True,
        "description": "Stripe's signature header over the exact request body: `t=<unix time>,v1=<hex HMAC-SHA256 "
        'of "<t>.<body>">`, checked with the endpoint\'s signing secret and a 5-minute tolerance.',
        "schema": {"type": "string", "maxLength": 2048},
        "example": "t=1735732800,v1=5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd",
    },
}
# The Stripe webhook reads the raw body itself (the signature is over its bytes), so its resolver
# declares none: this is the part of Stripe's Event object the code relies on.
STRIPE_EVENT_SCHEMA = {
    "type": "object",
    "title": "StripeEvent",
    "description": "A Stripe event as Stripe sends it (https://docs.stripe.com/api/events/object). Handled: "
    "`checkout.session.completed`, `checkout.session.async_payment_succeeded`, "
    "`checkout.session.async_payment_failed`, `checkout.session.expired` and `charge.refunded`; other types are "
    "acknowledged and ignored.",
    "required": ["id", "type", "data"],
    "properties": {
        "id": {"type": "string", "minLength": 1, "title": "Id", "examples": ["evt_1QxYz"]},
        "object": {"type": "string", "const": "event", "title": "Object"},
        "type": {"type": "string", "title": "Type", "examples": ["checkout.session.completed"]},
        "created": {"type": "integer", "title": "Created"},
        "livemode": {"type": "boolean", "title": "Livemode"},
        "data": {
            "type": "object",
            "title": "Data",
            "required": ["object"],
            "properties": {"object": {"type": "object", "title": "Object"}},
        },
    },
}
# What the handlers refuse by name beyond their declared parameters and body fields (their 400's keys).
FIELDS_REFUSED_BY_NAME: dict[str, dict[str, str]] = {
    "list_payments": {"page": "`page` is refused: page numbers are not supported (follow `next`/`previous`)."},
}
# API Gateway's own answers on every HTTP API route, before any function runs (template.yaml's
# DefaultRouteSettings throttling). The Stripe webhook's Function URL has no API Gateway in front.
GATEWAY_ERRORS = {429: 'API Gateway\'s throttling (`{"message": "Too Many Requests"}`): retry later.'}
ERROR_SCHEMAS: dict[str, dict[str, Any]] = {
    "ApiGatewayError": {
        "type": "object",
        "title": "ApiGatewayError",
        "description": "An answer of Amazon API Gateway itself, not of this service's code (and not the payment "
        'gateway\'s): `{"message": "Not Found"}` for a path or method with no route, `"Too Many Requests"` when it '
        'throttles, `"Service Unavailable"` when the function timed out, `"Internal Server Error"` when it failed. '
        "The local server answers the same.",
        "required": ["message"],
        "properties": {"message": {"type": "string", "title": "Message", "examples": ["Too Many Requests"]}},
    },
    "Unavailable": {
        "type": "object",
        "title": "Unavailable",
        "description": "A 502 or 503: retry later (after `Retry-After` seconds when given). Either this service's "
        'answer, `{"detail": "..."}` on the API or `{"status": "error", "message": "..."}` on the webhooks, or, '
        "when the function could not answer (503 when it timed out, 502 when its answer was not a valid response), "
        'API Gateway\'s `{"message": "..."}` (see ApiGatewayError). One shape for the three, so that a generated '
        "client reads every 502/503 alike.",
        "minProperties": 1,
        "properties": {
            "detail": {"type": "string", "title": "Detail", "examples": ["Temporarily unavailable, please retry."]},
            "status": {"type": "string", "const": "error", "title": "Status"},
            "message": {"type": "string", "title": "Message", "examples": ["Service Unavailable"]},
        },
    },
}
RETRY_AFTER = {"description": "Seconds to wait before retrying.", "schema": {"type": "integer", "minimum": 0}}
WWW_AUTHENTICATE = {
    "description": '`Bearer realm="api"`, with `error="invalid_token"` when a token was sent but is not valid.',
    "required": True,
    "schema": {"type": "string"},
}


@dataclass(frozen=True)
class LoadedFunction:
    spec: FunctionSpec
    module: ModuleType
    authenticated: bool  # the template gives it the JWT secret: its resolver authenticates callers

    @property
    def app(self) -> Any:
        return self.module.app


class OpenApiError(RuntimeError):
    """The code and the template disagree, or two functions define the same thing differently."""


# ---------------------------------------------------------------------------- loading the resolvers
def http_functions(template: Template) -> list[FunctionSpec]:
    return [spec for spec in template.functions() if spec.routes or (spec.function_url and spec.local_path)]


@contextmanager
def _cold_start_environment(env: Mapping[str, str]) -> Iterator[None]:
    """`env` on top of this process's environment, and fresh settings; both restored after, and
    a DynamoDB client made meanwhile (pointing at the unreachable endpoint) is forgotten."""
    from halum_payments import config
    from halum_payments.repositories import dynamo

    saved_env = dict(os.environ)
    saved_settings = config._settings
    had_client = dynamo.dynamodb_client.cache_info().currsize > 0
    os.environ.update(env)
    config._settings = None
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
        config._settings = saved_settings
        if not had_client:
            dynamo.dynamodb_client.cache_clear()


def load_function(spec: FunctionSpec) -> LoadedFunction:
    """Import functions/<name>/app.py as a cold start with a harmless local environment."""
    from local.environment import declared_secrets, function_environment

    env = function_environment(spec, {}, dynamodb_endpoint=UNREACHABLE_DYNAMODB)
    module_name = f"openapi_{spec.logical_id}_{uuid.uuid4().hex[:8]}"
    path = spec.code_uri / spec.handler.split(".", 1)[0]
    module_spec = importlib.util.spec_from_file_location(module_name, path.with_suffix(".py"))
    if module_spec is None or module_spec.loader is None:
        raise OpenApiError(f"cannot import {path}.py")
    module = importlib.util.module_from_spec(module_spec)
    with _cold_start_environment(env):
        sys.modules[module_name] = module
        try:
            module_spec.loader.exec_module(module)
        finally:
            sys.modules.pop(module_name, None)
    if not hasattr(module, "app"):
        raise OpenApiError(f"{spec.logical_id}: {path}.py has no resolver named `app`")
    return LoadedFunction(spec, module, authenticated="JWT_SECRET" in declared_secrets(spec))


def load_functions(template: Template | None = None) -> list[LoadedFunction]:
    template = template or Template()
    for layer in reversed(template.layer_dirs()):
        if str(layer) not in sys.path:
            sys.path.insert(0, str(layer))
    return [load_function(spec) for spec in http_functions(template)]


# ---------------------------------------------------------------------------- the document
def api_version() -> str:
    with (ROOT / "pyproject.toml").open("rb") as file:
        return str(tomllib.load(file)["project"]["version"])


def build_document(functions: list[LoadedFunction] | None = None) -> dict[str, Any]:
    from aws_lambda_powertools.event_handler.openapi.merge import OpenAPIMerge

    functions = load_functions() if functions is None else functions
    merge = OpenAPIMerge(title=TITLE, version=api_version(), on_conflict="error")
    schemas = [json.loads(function.app.get_openapi_json_schema(title=TITLE)) for function in functions]
    _check_component_conflicts(functions, schemas)
    for schema in schemas:
        merge.add_schema(schema)
    merged = merge.get_openapi_schema()
    generated_components: dict[str, Any] = merged.get("components", {}).get("schemas", {})

    paths: dict[str, Any] = {}
    for function, schema in zip(functions, schemas, strict=True):
        for path, item in _function_paths(function, schema).items():
            if path in paths:
                raise OpenApiError(f"{path} is routed to two functions")
            paths[path] = item

    components = dict(generated_components)
    components.update(ERROR_SCHEMAS)
    components["StripeEvent"] = copy.deepcopy(STRIPE_EVENT_SCHEMA)
    components.update(_model_schemas())
    components.update(_field_error_schemas(paths, components))
    document: dict[str, Any] = {
        "openapi": merged["openapi"],
        "info": {"title": TITLE, "version": merged["info"]["version"], "description": DESCRIPTION},
        "servers": copy.deepcopy(SERVERS),
        "tags": copy.deepcopy(TAGS),
        "paths": paths,
        "components": {"schemas": components, "securitySchemes": copy.deepcopy(SECURITY_SCHEMES)},
    }
    document = _renamed(document, RENAMED_SCHEMAS)
    document["components"]["schemas"] = _referenced_schemas(document)
    _enum_names(document["components"]["schemas"])
    return _normalized_numbers(document)


def _check_component_conflicts(functions: list[LoadedFunction], schemas: list[dict[str, Any]]) -> None:
    """The same model name must mean the same schema in every function (OpenAPIMerge keeps the last)."""
    seen: dict[str, tuple[str, Any]] = {}
    for function, schema in zip(functions, schemas, strict=True):
        for name, component in schema.get("components", {}).get("schemas", {}).items():
            if name in seen and seen[name][1] != component:
                raise OpenApiError(f"schema {name} differs between {seen[name][0]} and {function.spec.logical_id}")
            seen.setdefault(name, (function.spec.logical_id, component))


def _model_schemas() -> dict[str, Any]:
    """The error shapes, from the models the code answers with."""
    from halum_payments.models import AuthenticationFailedOut, ErrorOut, InvalidRequestOut, WebhookError

    schemas: dict[str, Any] = {}
    for model in (ErrorOut, WebhookError, InvalidRequestOut, AuthenticationFailedOut):
        schema = model.model_json_schema(mode="serialization", ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        if model in (ErrorOut, WebhookError):
            schema["required"] = sorted(schema.get("properties", {}))  # serialized: always present
        else:  # `detail` always; the rest only when there is something to say (no defaults to invent)
            schema["required"] = ["detail"]
            for prop in schema.get("properties", {}).values():
                prop.pop("default", None)
        schemas[model.__name__] = schema
    return schemas


def invalid_request_component(name: str) -> str:
    """The component of an operation's 400: `list_payments` -> `ListPaymentsInvalidRequest`."""
    return "".join(part.title() for part in name.split("_")) + "InvalidRequest"


def _field_error_schemas(paths: dict[str, Any], components: dict[str, Any]) -> dict[str, Any]:
    """Each authenticated operation's 400, with the keys its field errors come under declared: its query and
    header parameters, its body's fields (each branch of a `oneOf`), what its handler refuses by name, and
    `non_field_errors` (http.validation_errors keys them so). Every key is declared: nothing else comes."""
    schemas: dict[str, Any] = {}
    for item in paths.values():
        for operation in item.values():
            name = operation["operationId"]
            ref = operation["responses"].get("400", {}).get("content", {}).get("application/json", {})
            if ref.get("schema", {}).get("$ref", "").rsplit("/", 1)[-1] != invalid_request_component(name):
                continue
            fields = [parameter["name"].lower() for parameter in operation.get("parameters", [])]
            fields += _body_fields(operation, components) + list(FIELDS_REFUSED_BY_NAME.get(name, {}))
            schema = copy.deepcopy(components["InvalidRequestOut"])
            schema.update(title=invalid_request_component(name), additionalProperties=False)
            messages = schema["properties"].pop("non_field_errors")
            for field in dict.fromkeys(fields):
                described = FIELDS_REFUSED_BY_NAME.get(name, {}).get(field, f"What is wrong with `{field}`.")
                schema["properties"][field] = {**_MESSAGES, "title": field, "description": described}
            schema["properties"]["non_field_errors"] = messages
            schemas[invalid_request_component(name)] = schema
    return schemas


_MESSAGES = {"type": "array", "items": {"type": "string"}}


def _body_fields(operation: dict[str, Any], components: dict[str, Any]) -> list[str]:
    body = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
    shapes = [body]
    fields: list[str] = []
    while shapes:
        shape = shapes.pop(0)
        if "$ref" in shape:
            shapes.append(components[shape["$ref"].rsplit("/", 1)[1]])
            continue
        shapes.extend(shape.get("oneOf", []))
        fields += list(shape.get("properties", {}))
    return fields


def _enum_names(components: dict[str, Any]) -> None:
    """`x-enum-varnames` (what openapi-python-client and openapi-generator name enum members by) from the
    code's own enums, so `-id` is `PaymentOrdering.ID_DESC` rather than `VALUE_1`."""
    from enum import Enum

    from halum_payments import models
    from halum_payments.logic import gateway_events

    enums = {
        name: value
        for module in (models, gateway_events)
        for name, value in vars(module).items()
        if isinstance(value, type) and issubclass(value, Enum) and value is not Enum
    }
    for name, schema in components.items():
        enum = enums.get(name)
        if enum is not None and "enum" in schema:
            if schema["enum"] != [member.value for member in enum]:
                raise OpenApiError(f"schema {name} does not list the values of {enum.__qualname__}")
            schema["x-enum-varnames"] = [member.name for member in enum]


def _route_shape(path: str) -> tuple[str, ...]:
    return tuple("{}" if part.startswith("{") else part for part in path.strip("/").split("/"))


def _documented_path(spec: FunctionSpec, method: str, generated_path: str) -> str:
    """The operation's one path: the template's route (its parameter names), written as the spec writes
    paths, with the trailing slash, whether the template routes `/x/`, `/x` or both."""
    if spec.function_url:
        candidates = [Route(method, "/" + (spec.local_path or "").strip("/"))]
    else:
        candidates = [route for route in spec.routes if route.method == method]
    matching = sorted({route.path for route in candidates if _route_shape(route.path) == _route_shape(generated_path)})
    if not matching:
        raise OpenApiError(f"{spec.logical_id}: {method} {generated_path} has no route in template.yaml")
    return matching[0].rstrip("/") + "/"


def _function_paths(function: LoadedFunction, schema: dict[str, Any]) -> dict[str, Any]:
    spec = function.spec
    # An ANY route takes the methods a path does not serve, which the function answers 405 (the document's
    # description says so): not an operation.
    routed = {(route.method, _route_shape(route.path)) for route in spec.routes if route.method != ANY}
    documented = set()
    paths: dict[str, Any] = {}
    for generated_path, item in schema.get("paths", {}).items():
        for method, operation in item.items():
            documented.add((method.upper(), _route_shape(generated_path)))
            name = _handler_name(operation["operationId"], generated_path, method)
            path = _documented_path(spec, method.upper(), generated_path)
            documented_op = _operation(function, name, operation, generated_path, path)
            paths.setdefault(path, {})[method] = _ordered(documented_op, OPERATION_KEYS)
    if missing := routed - documented:
        raise OpenApiError(f"{spec.logical_id}: template routes without a handler: {sorted(missing)}")
    served = {shape for _, shape in documented}
    if stray := {_route_shape(route.path) for route in spec.routes if route.method == ANY} - served:
        raise OpenApiError(f"{spec.logical_id}: ANY routes on paths that serve no method: {sorted(stray)}")
    return paths


OPERATION_KEYS = (
    "tags",
    "summary",
    "description",
    "operationId",
    "security",
    "parameters",
    "requestBody",
    "responses",
)


def _ordered(mapping: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    """`keys` first, in that order, then the rest as they were."""
    first = {key: mapping[key] for key in keys if key in mapping}
    return first | {key: value for key, value in mapping.items() if key not in first}


def _handler_name(operation_id: str, path: str, method: str) -> str:
    """Powertools' default operationId is `<handler><path with _>_<method>`: keep the handler's name."""
    suffix = re.sub(r"\W", "_", path) + "_" + method.lower()
    return operation_id.removesuffix(suffix) if operation_id.endswith(suffix) else operation_id


def _operation(
    function: LoadedFunction, name: str, generated: dict[str, Any], generated_path: str, path: str
) -> dict[str, Any]:
    operation = copy.deepcopy(generated)
    operation["operationId"] = name
    description = (function.module.__doc__ or "").strip().split("\n\n")[0]
    description = re.sub(r"^[A-Z]+ \S+( \([^)]*\))? ?: ", "", " ".join(description.split()))
    if description and "description" not in operation:
        operation["description"] = description[0].upper() + description[1:]
    if function.spec.function_url:
        operation["description"] = (
            operation.get("description", "") + "\n\nIn AWS this is served by the function's own Function URL "
            "(not the HTTP API): point Stripe's webhook endpoint at that URL plus this path."
        ).strip()

    # Path parameters under the template's names ({payment_id} in the code is {id} in the spec).
    generated_names = re.findall(r"{(\w+)}", generated_path)
    template_names = re.findall(r"{(\w+)}", path)
    renames = dict(zip(generated_names, template_names, strict=True))
    parameters = []
    for generated_parameter in operation.get("parameters", []):
        parameter = dict(generated_parameter)
        if parameter["in"] == "path":
            parameter["name"] = renames.get(parameter["name"], parameter["name"])
            parameter["schema"] = {**parameter["schema"], "title": parameter["name"].title()}
            example = 1 if parameter["schema"].get("type") == "integer" else "1"
            parameter.setdefault("example", example)  # the spec's example: payment 1, order 1
        elif not parameter.get("required"):
            parameter["schema"] = _without_null(parameter["schema"])
        if parameter["in"] == "header" and parameter["name"].lower() == "idempotency-key":
            parameter["name"] = "Idempotency-Key"
            parameter["description"] = (
                "Makes the request safe to retry: the same key (per user, for 24 hours) replays the first "
                "answer; the same key with a different body is 422."
            )
        parameters.append(parameter)
    if header := SIGNATURE_HEADERS.get(name):
        parameters.append(copy.deepcopy(header))
    if parameters:
        operation["parameters"] = parameters
    if function.spec.function_url and "requestBody" not in operation:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/StripeEvent"}}},
        }

    operation["responses"] = _responses(function, name, operation.get("responses", {}))
    if function.authenticated:
        operation["security"] = [{SECURITY_SCHEME: []}]
    else:
        operation["security"] = []  # explicitly public: verified by signature instead
    return operation


def _responses(function: LoadedFunction, name: str, generated: dict[str, Any]) -> dict[str, Any]:
    """The generated success answers, and the error answers of the code (ERRORS) and of API Gateway in front."""
    responses = {
        status: response for status, response in generated.items() if not _is_powertools_validation_error(response)
    }
    if unknown := set(ERRORS.get(name, {})) - ERROR_STATUSES:
        raise OpenApiError(f"{name}: the code produces no error with status {sorted(unknown)}")
    errors = {**ERRORS.get(name, {}), **({} if function.spec.function_url else GATEWAY_ERRORS)}
    for status, when in errors.items():
        responses[str(status)] = _error_response(name, status, when, function.authenticated)
    return dict(sorted(responses.items()))


def _without_null(schema: dict[str, Any]) -> dict[str, Any]:
    """An optional query/header parameter is omitted, never sent as null: drop the null branch."""
    branches = schema.get("anyOf")
    if not branches:
        return schema
    kept = [branch for branch in branches if branch != {"type": "null"}]
    if len(kept) != 1:
        return schema
    rest = {key: value for key, value in schema.items() if key != "anyOf"}
    return {**kept[0], **rest}


def _is_powertools_validation_error(response: dict[str, Any]) -> bool:
    schema = response.get("content", {}).get("application/json", {}).get("schema", {})
    return schema.get("$ref") == "#/components/schemas/HTTPValidationError"


def _error_component(name: str, status: int, authenticated: bool) -> str:
    """One named component per answer: never an inline union (openapi-python-client would list a shape twice)."""
    if status in (502, 503):
        return "Unavailable"  # the function's own answer, or API Gateway's when the function could not answer
    if status in GATEWAY_ERRORS:
        return "ApiGatewayError"
    if not authenticated:
        return "WebhookError"
    return {400: invalid_request_component(name), 401: "AuthenticationFailed"}.get(status, "Error")


def _error_response(name: str, status: int, when: str, authenticated: bool) -> dict[str, Any]:
    schema = {"$ref": f"#/components/schemas/{_error_component(name, status, authenticated)}"}
    response: dict[str, Any] = {
        "description": when,
        "content": {"application/json": {"schema": schema}},
    }
    headers: dict[str, Any] = {}
    if status == 401 and authenticated:
        headers["WWW-Authenticate"] = copy.deepcopy(WWW_AUTHENTICATE)
    if status in (409, 503):
        headers["Retry-After"] = copy.deepcopy(RETRY_AFTER)
    if headers:
        response["headers"] = headers
    return response


def _renamed(node: Any, names: Mapping[str, str]) -> Any:
    """Rename component schemas, their references and their titles."""
    if isinstance(node, dict):
        renamed = {}
        for key, value in node.items():
            new_value = value
            if key == "$ref" and isinstance(value, str):
                prefix, _, target = value.rpartition("/")
                new_value = f"{prefix}/{names.get(target, target)}"
            elif key == "schemas" and isinstance(value, dict):
                new_value = {names.get(name, name): schema for name, schema in value.items()}
            renamed[key] = _renamed(new_value, names)
        if renamed.get("title") in names and "properties" in renamed:
            renamed["title"] = names[renamed["title"]]
        return renamed
    if isinstance(node, list):
        return [_renamed(item, names) for item in node]
    return node


def _references(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str) and value.startswith("#/components/schemas/"):
                yield value.rsplit("/", 1)[1]
            else:
                yield from _references(value)
    elif isinstance(node, list):
        for item in node:
            yield from _references(item)


def _referenced_schemas(document: dict[str, Any]) -> dict[str, Any]:
    """The component schemas the paths use (directly or through each other), sorted by name."""
    schemas = document["components"]["schemas"]
    used: set[str] = set()
    pending = list(_references(document["paths"]))
    while pending:
        name = pending.pop()
        if name in used:
            continue
        if name not in schemas:
            raise OpenApiError(f"#/components/schemas/{name} is referenced but not defined")
        used.add(name)
        pending.extend(_references(schemas[name]))
    if leftover := used & set(POWERTOOLS_VALIDATION_SCHEMAS):
        raise OpenApiError(f"still referenced: {sorted(leftover)}")
    return {name: schemas[name] for name in sorted(used)}


_NUMERIC_KEYWORDS = frozenset({"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"})


def _normalized_numbers(node: Any, key: str = "") -> Any:
    """pydantic writes integer bounds as floats (1000.0, 1e+18): write them as the integers they are."""
    if isinstance(node, dict):
        return {k: _normalized_numbers(v, k) for k, v in node.items()}
    if isinstance(node, list):
        return [_normalized_numbers(item) for item in node]
    if key in _NUMERIC_KEYWORDS and isinstance(node, float) and node.is_integer():
        return int(node)
    return node


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def generate() -> str:
    """openapi.json's content, as this code and template.yaml define the API."""
    return render(build_document())


# ---------------------------------------------------------------------------- command line
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.openapi", description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="exit 1 if the file is not what this script writes")
    mode.add_argument("--stdout", action="store_true", help="print the document instead of writing it")
    parser.add_argument("--file", type=Path, default=OUTPUT, help=f"default {OUTPUT.relative_to(ROOT)}")
    args = parser.parse_args(argv)
    text = generate()
    if args.stdout:
        sys.stdout.write(text)
        return 0
    if args.check:
        current = args.file.read_text() if args.file.exists() else ""
        if current != text:
            print(f"{args.file} is stale: run `python -m local.openapi` and commit the result", file=sys.stderr)
            return 1
        print(f"{args.file} is up to date")
        return 0
    args.file.write_text(text)
    print(f"wrote {args.file}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
