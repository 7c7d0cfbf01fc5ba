"""openapi.json: current with the code, saying what the spec and the code say, and served by /docs.

The document is generated from the functions' resolvers (`python -m local.openapi`); these tests
fail when the committed file is stale and pin the shapes clients rely on. The spec's own examples
(payments-api.md) must validate against the documented schemas.
"""

from __future__ import annotations

import dataclasses
import difflib
import http.client
import json
import os
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
import schemathesis
from schemathesis.core.result import Ok
from support import ROOT
from support.payment_data import SPEC_GATEWAY_EVENT, SPEC_LIST_ANSWER, SPEC_PAYMENT_1

from local import openapi, openapi_docs
from local.routing import HttpResponse, LocalRequest
from local.server import ApiServer, Gateway, LocalRoutes, serve_in_background
from local.template import Route

DOCUMENT: dict[str, Any] = json.loads((ROOT / "openapi.json").read_text())
PATHS: dict[str, Any] = DOCUMENT["paths"]
SCHEMAS: dict[str, Any] = DOCUMENT["components"]["schemas"]

# operationId -> (method, the path as the spec writes it, the status codes the code answers with)
OPERATIONS = {
    "list_payments": ("get", "/orders/api/payments/", {200, 400, 401, 503}),
    "get_payment": ("get", "/orders/api/payments/{id}/", {200, 401, 404, 503}),
    "create_stripe_order": ("post", "/orders/api/create-stripe-order/", {200, 400, 401, 409, 415, 422, 502, 503}),
    "create_cod_order": ("post", "/orders/api/create-cod/", {201, 400, 401, 409, 415, 422, 503}),
    "stripe_webhook": ("post", "/orders/api/stripe-webhook/", {200, 400, 409, 422, 503}),
    "payment_webhook": ("post", "/orders/api/payment-webhook/", {200, 400, 401, 404, 409, 415, 422, 503}),
}
AUTHENTICATED = {"list_payments", "get_payment", "create_stripe_order", "create_cod_order"}
FUNCTION_URL = {"stripe_webhook"}  # the others are HTTP API routes: API Gateway throttles them (429)
# Each route's 400: the keys its field errors come under (query parameters, headers, body fields, and what
# the handler itself refuses by name), beside `detail` and `non_field_errors`.
FIELD_ERRORS = {
    "list_payments": {"ordering", "status", "method", "page_size", "cursor", "page"},
    "create_stripe_order": {"shipping_address", "order", "idempotency-key"},
    "create_cod_order": {"shipping_address", "idempotency-key"},
}
SIGNATURE_HEADERS = {"stripe_webhook": "Stripe-Signature", "payment_webhook": "X-Webhook-Signature"}

SPEC_EXAMPLES: list[tuple[str, dict[str, Any]]] = [
    ("PaymentPage", SPEC_LIST_ANSWER),  # the spec's page, with the two typed cursors the API adds
    ("Payment", SPEC_PAYMENT_1),
    ("CheckoutRequest", {"shipping_address": 1}),
    ("CheckoutSessionOut", {"id": "cs_test_123456", "url": "https://checkout.stripe.com/c/pay/cs_test_123456"}),
    ("GatewayEvent", SPEC_GATEWAY_EVENT),
    ("WebhookAck", {"status": "success", "message": "Payment confirmed"}),
]


def operation(name: str) -> dict[str, Any]:
    method, path, _ = OPERATIONS[name]
    found: dict[str, Any] = PATHS[path][method]
    return found


def validator(component: str) -> Any:
    return jsonschema_rs.validator_for(
        {"$ref": f"#/components/schemas/{component}", "components": DOCUMENT["components"]}
    )


# ---------------------------------------------------------------------------- current with the code
def generate() -> str:
    """What `python -m local.openapi` writes, generated in a process of its own (importing the
    functions as cold starts must leave nothing behind in this one)."""
    result = subprocess.run(
        [sys.executable, "-m", "local.openapi", "--stdout"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def generated() -> str:
    return generate()


def test_openapi_json_is_what_the_code_generates(generated: str) -> None:
    committed = (ROOT / "openapi.json").read_text()
    if committed != generated:
        diff = difflib.unified_diff(
            committed.splitlines(), generated.splitlines(), "openapi.json (committed)", "generated", lineterm=""
        )
        shown = "\n".join(list(diff)[:120])
        pytest.fail(f"openapi.json is stale: run `python -m local.openapi` (make openapi) and commit it\n{shown}")


def test_generating_twice_gives_the_same_bytes(generated: str) -> None:
    assert generate() == generated


def test_generating_in_process_leaves_the_process_as_it_was() -> None:
    from halum_payments import config
    from halum_payments.repositories import dynamo

    environment, settings = dict(os.environ), config._settings
    had_client = dynamo.dynamodb_client.cache_info().currsize > 0
    client = dynamo.dynamodb_client() if had_client else None
    document = openapi.build_document()
    assert set(document["paths"]) == set(PATHS)
    assert dict(os.environ) == environment
    assert config._settings is settings
    if had_client:
        assert dynamo.dynamodb_client() is client
    else:
        assert dynamo.dynamodb_client.cache_info().currsize == 0  # none left pointing nowhere


def test_check_exits_non_zero_for_a_stale_or_missing_file(
    tmp_path: Path, generated: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(openapi, "generate", lambda: generated)
    fresh, stale = tmp_path / "fresh.json", tmp_path / "stale.json"
    fresh.write_text(generated)
    stale.write_text(generated.replace('"Halum Hut Payments API"', '"Some Other API"', 1))
    assert openapi.main(["--check", "--file", str(fresh)]) == 0
    assert openapi.main(["--check", "--file", str(stale)]) == 1
    assert openapi.main(["--check", "--file", str(tmp_path / "missing.json")]) == 1
    written = tmp_path / "written.json"
    assert openapi.main(["--file", str(written)]) == 0
    assert written.read_text() == generated


def test_the_command_line_check_fails_on_a_stale_file(tmp_path: Path) -> None:
    stale = tmp_path / "openapi.json"
    stale.write_text("{}\n")
    result = subprocess.run(
        [sys.executable, "-m", "local.openapi", "--check", "--file", str(stale)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    assert "stale" in result.stderr


# ---------------------------------------------------------------------------- what it says
def test_it_is_a_valid_openapi_3_1_document_of_the_whole_api() -> None:
    assert DOCUMENT["openapi"] == "3.1.0"
    assert DOCUMENT["info"]["title"] == "Halum Hut Payments API"
    with (ROOT / "pyproject.toml").open("rb") as file:
        assert DOCUMENT["info"]["version"] == tomllib.load(file)["project"]["version"]
    assert DOCUMENT["servers"][0]["url"] == "http://127.0.0.1:3000"
    loaded = schemathesis.openapi.from_dict(DOCUMENT)
    results = list(loaded.get_all_operations())
    assert all(isinstance(result, Ok) for result in results), results  # Err: an invalid operation
    assert len(results) == len(OPERATIONS)


def test_one_operation_per_route_under_the_specs_path() -> None:
    """A generated client gets one method per endpoint (not a `..._without_slash` twin)."""
    assert {path: set(item) for path, item in PATHS.items()} == {
        path: {method} for method, path, _ in OPERATIONS.values()
    }
    assert {operation(name)["operationId"] for name in OPERATIONS} == set(OPERATIONS)
    assert "served with and without its trailing slash" in DOCUMENT["info"]["description"]


@pytest.mark.parametrize("form", ["both", "without the slash", "with the slash"])
def test_the_document_is_the_same_whichever_form_the_template_routes(form: str) -> None:
    """API Gateway sends `/x/` to the route `/x`, so a template may route either form or both: one
    operation per route either way, under the path as the spec writes it."""
    # The template declares `/x` (a route key cannot end in "/"); the other forms are derived from it.
    forms = {
        "both": lambda path: [path, path + "/"],
        "without the slash": lambda path: [path],
        "with the slash": lambda path: [path + "/"],
    }[form]
    functions = [
        dataclasses.replace(
            function,
            spec=dataclasses.replace(
                function.spec,
                routes=[Route(r.method, path) for r in function.spec.routes for path in forms(r.path.rstrip("/"))],
            ),
        )
        for function in openapi.load_functions()
    ]
    assert all(function.spec.routes or function.spec.function_url for function in functions)
    assert openapi.build_document(functions) == DOCUMENT


def test_a_route_the_code_does_not_serve_is_an_error() -> None:
    function = openapi.load_functions()[0]
    spec = dataclasses.replace(function.spec, routes=[*function.spec.routes, Route("GET", "/orders/api/elsewhere")])
    with pytest.raises(openapi.OpenApiError, match="without a handler"):
        openapi.build_document([dataclasses.replace(function, spec=spec)])


def test_the_detail_path_parameter_is_named_as_the_spec_names_it() -> None:
    (parameter,) = operation("get_payment")["parameters"]
    assert (parameter["name"], parameter["in"], parameter["required"]) == ("id", "path", True)
    # An integer, as the spec's ids are (a generated client takes an int); a malformed id is still 404.
    assert {key: parameter["schema"].get(key) for key in ("type", "minimum")} == {"type": "integer", "minimum": 1}
    assert parameter["example"] == 1


def test_the_payment_schema_is_the_specs_nine_fields() -> None:
    payment = SCHEMAS["Payment"]
    assert list(payment["properties"]) == [
        "id",
        "order",
        "user",
        "amount",
        "method",
        "status",
        "transaction_id",
        "created_at",
        "updated_at",
    ]
    assert payment["required"] == list(payment["properties"])
    types = {name: prop.get("type") for name, prop in payment["properties"].items()}
    assert types == {
        "id": "integer",
        "order": "integer",
        "user": "integer",
        "amount": "string",
        "method": None,
        "status": None,
        "transaction_id": None,
        "created_at": "string",
        "updated_at": "string",
    }
    assert payment["properties"]["transaction_id"]["anyOf"] == [{"type": "string"}, {"type": "null"}]
    assert payment["properties"]["method"] == {"$ref": "#/components/schemas/PaymentMethod"}
    assert payment["properties"]["status"] == {"$ref": "#/components/schemas/PaymentStatus"}
    assert SCHEMAS["PaymentMethod"]["enum"] == ["COD", "stripe", "ONLINE"]
    assert SCHEMAS["PaymentStatus"]["enum"] == ["pending", "processing", "completed", "failed", "refunded"]
    page = SCHEMAS["PaymentPage"]
    assert list(page["properties"]) == ["count", "next", "previous", "next_cursor", "previous_cursor", "results"]
    assert page["required"] == list(page["properties"])
    assert page["properties"]["results"]["items"] == {"$ref": "#/components/schemas/Payment"}


def test_the_checkout_body_is_exactly_one_of_two_strict_shapes() -> None:
    """Check out the cart (`shipping_address`) or pay an order (`order`): a generated client builds one of
    the two, never `{}` nor both (which the API refuses with 400)."""
    content = operation("create_stripe_order")["requestBody"]["content"]["application/json"]
    assert content["schema"] == {"$ref": "#/components/schemas/CheckoutRequest"}
    assert SCHEMAS["CheckoutRequest"]["oneOf"] == [
        {"$ref": "#/components/schemas/CartCheckout"},
        {"$ref": "#/components/schemas/OrderPayment"},
    ]
    for name, field in (("CartCheckout", "shipping_address"), ("OrderPayment", "order")):
        shape = SCHEMAS[name]
        assert (shape["required"], shape["additionalProperties"]) == ([field], False), name
        assert shape["properties"][field]["type"] == "integer", name
    body = validator("CheckoutRequest")
    for sent, valid in (
        ({"shipping_address": 1}, True),
        ({"order": 1}, True),
        ({}, False),
        ({"shipping_address": 1, "order": 1}, False),
        ({"shipping_address": None}, False),
        ({"order": None, "shipping_address": 1}, False),
        ({"shipping_address": 1, "coupon": "FREE"}, False),
        ({"order": 0}, False),
    ):
        assert body.is_valid(sent) is valid, sent


@pytest.mark.parametrize(("component", "example"), SPEC_EXAMPLES, ids=[name for name, _ in SPEC_EXAMPLES])
def test_the_specs_examples_validate_against_the_documented_schemas(component: str, example: dict[str, Any]) -> None:
    errors = [f"{list(error.instance_path)}: {error.message}" for error in validator(component).iter_errors(example)]
    assert not errors, f"the spec's example of {component} does not match openapi.json: {errors}"


GATEWAY_FIELD_VALUES = [
    ("order_reference", "1"),
    ("order_reference", "01"),
    ("order_reference", 1),
    ("order_reference", "0"),
    ("order_reference", "-1"),
    ("order_reference", "1" * 19),
    ("amount", "1598.00"),
    ("amount", "1598"),
    ("amount", "1598.5"),
    ("amount", 1598),
    ("amount", 1598.0),
    ("amount", "1598.001"),
    ("amount", "1.598E+3"),
    ("amount", " 1598"),
]


@pytest.mark.parametrize(("field", "value"), GATEWAY_FIELD_VALUES)
def test_the_documented_gateway_event_accepts_what_the_code_accepts(field: str, value: Any) -> None:
    """Powertools documents a field by its Python type; the validators decide what is accepted."""
    from pydantic import ValidationError

    from halum_payments.logic.gateway_events import GatewayEvent

    event = {**SPEC_GATEWAY_EVENT, field: value}
    try:
        GatewayEvent.model_validate(event)
        accepted = True
    except ValidationError:
        accepted = False
    assert validator("GatewayEvent").is_valid(event) == accepted, f"{field}={value!r}: the code accepts it: {accepted}"


def test_list_query_parameters_match_the_code() -> None:
    parameters = {parameter["name"]: parameter for parameter in operation("list_payments")["parameters"]}
    assert list(parameters) == ["ordering", "status", "method", "page_size", "cursor"]  # `page` is always a 400
    assert all(parameter["in"] == "query" and not parameter["required"] for parameter in parameters.values())
    page_size = parameters["page_size"]["schema"]
    assert (page_size["type"], page_size["minimum"], page_size["maximum"], page_size["default"]) == (
        "integer",
        1,
        1000,
        100,
    )
    cursor = parameters["cursor"]
    assert {k: v for k, v in cursor["schema"].items() if k != "description"} == {
        "type": "string",
        "maxLength": 512,
        "title": "Cursor",
    }
    assert "`next_cursor` or `previous_cursor`" in cursor["description"]
    assert "does not expire" in cursor["description"] and "keyed by `cursor` saying why" in cursor["description"]
    assert parameters["ordering"]["schema"] == {"$ref": "#/components/schemas/PaymentOrdering", "default": "id"}
    assert SCHEMAS["PaymentOrdering"]["enum"] == ["id", "-id", "created_at", "-created_at"]
    assert parameters["status"]["schema"]["$ref"] == "#/components/schemas/PaymentStatus"


def error_component(name: str, status: int) -> str:
    """The one component each error answer is documented with."""
    if status in (502, 503):
        return "Unavailable"  # ours, or API Gateway's when the function could not answer
    if status == 429:
        return "ApiGatewayError"  # API Gateway's throttling, before any function runs
    if name not in AUTHENTICATED:
        return "WebhookError"
    pascal = "".join(part.title() for part in name.split("_"))
    return {400: f"{pascal}InvalidRequest", 401: "AuthenticationFailed"}.get(status, "Error")


@pytest.mark.parametrize("name", list(OPERATIONS))
def test_each_operation_documents_the_statuses_its_code_answers_with(name: str) -> None:
    _, _, statuses = OPERATIONS[name]
    responses = operation(name)["responses"]
    gateway = set() if name in FUNCTION_URL else {429}
    assert {int(status) for status in responses} == statuses | gateway
    for status, response in responses.items():
        schema = response["content"]["application/json"]["schema"]
        if int(status) >= 400:  # one named component each: a generated client's union never lists one twice
            assert schema == {"$ref": f"#/components/schemas/{error_component(name, int(status))}"}, status
    assert "HTTPValidationError" not in json.dumps(DOCUMENT)  # Powertools' 422 shape: we answer 400


@pytest.mark.parametrize("name", list(FIELD_ERRORS))
def test_each_routes_400_declares_the_keys_its_field_errors_come_under(name: str) -> None:
    schema = SCHEMAS[error_component(name, 400)]
    assert schema["required"] == ["detail"]
    assert set(schema["properties"]) == {"detail", "non_field_errors"} | FIELD_ERRORS[name]
    for field in FIELD_ERRORS[name] | {"non_field_errors"}:
        assert schema["properties"][field]["type"] == "array", field
        assert schema["properties"][field]["items"] == {"type": "string"}, field
    assert schema["additionalProperties"] is False  # every key is declared: a client reads them typed
    assert not validator(error_component(name, 400)).is_valid({"detail": "x", "elsewhere": ["y"]})


def test_create_cod_answers_201_and_the_others_200() -> None:
    for name in OPERATIONS:
        success = {status for status in operation(name)["responses"] if status.startswith("2")}
        assert success == ({"201"} if name == "create_cod_order" else {"200"}), name
    created = operation("create_cod_order")["responses"]["201"]["content"]["application/json"]["schema"]
    assert created == {"$ref": "#/components/schemas/CodOrderOut"}


def test_error_shapes_are_what_the_error_mapping_writes() -> None:
    assert SCHEMAS["Error"]["required"] == ["detail"]
    assert set(SCHEMAS["Error"]["properties"]) == {"detail"}
    assert SCHEMAS["AuthenticationFailed"]["required"] == ["detail"]
    assert set(SCHEMAS["AuthenticationFailed"]["properties"]) == {"detail", "code", "messages"}
    assert set(SCHEMAS["WebhookError"]["properties"]) == {"status", "message"}
    assert SCHEMAS["WebhookError"]["properties"]["status"]["const"] == "error"
    assert "GatewayError" not in SCHEMAS  # it read like the payment gateway's


def test_api_gateways_own_answers_are_named_as_api_gateways() -> None:
    gateway = SCHEMAS["ApiGatewayError"]
    assert (gateway["required"], set(gateway["properties"])) == (["message"], {"message"})
    assert "API Gateway" in gateway["description"] and "not the payment gateway" in gateway["description"]
    # A 502/503 is this service's answer, or API Gateway's when the function could not answer: one shape.
    unavailable = validator("Unavailable")
    for body in (
        {"detail": "Temporarily unavailable, please retry."},
        {"status": "error", "message": "Temporarily unavailable, please retry."},
        {"message": "Service Unavailable"},
    ):
        assert unavailable.is_valid(body), body
    assert not unavailable.is_valid({"detail": 1})


def test_bearer_auth_is_required_exactly_on_the_authenticated_operations() -> None:
    scheme = DOCUMENT["components"]["securitySchemes"]["bearerAuth"]
    assert (scheme["type"], scheme["scheme"], scheme["bearerFormat"]) == ("http", "bearer", "JWT")
    assert "security" not in DOCUMENT  # no global requirement: each operation says its own
    for name in OPERATIONS:
        documented = operation(name)
        if name in AUTHENTICATED:
            assert documented["security"] == [{"bearerAuth": []}], name
            challenge = documented["responses"]["401"]["headers"]["WWW-Authenticate"]
            assert challenge["required"] is True
        else:
            assert documented["security"] == [], name


@pytest.mark.parametrize("name", list(SIGNATURE_HEADERS))
def test_webhooks_document_their_signature_header(name: str) -> None:
    headers = [parameter for parameter in operation(name)["parameters"] if parameter["in"] == "header"]
    assert [(h["name"], h["required"]) for h in headers] == [(SIGNATURE_HEADERS[name], True)]
    assert operation(name)["requestBody"]["required"] is True


def test_the_stripe_event_body_is_what_the_verifier_requires() -> None:
    event = validator("StripeEvent")
    assert event.is_valid({"id": "evt_1", "type": "checkout.session.completed", "data": {"object": {}}})
    assert not event.is_valid({"id": "", "type": "x", "data": {"object": {}}})
    assert not event.is_valid({"id": "evt_1", "type": "x", "data": "x"})


def test_component_schemas_are_sorted_and_all_used() -> None:
    assert list(SCHEMAS) == sorted(SCHEMAS)
    text = json.dumps(PATHS) + json.dumps(SCHEMAS)
    for name in SCHEMAS:
        assert f'"#/components/schemas/{name}"' in text, f"{name} is never referenced"
    assert not re.search(r'"(minimum|maximum|exclusiveMaximum)": \d+\.0\b', json.dumps(DOCUMENT))


def test_formats_a_generator_turns_into_types() -> None:
    payment = SCHEMAS["Payment"]["properties"]
    assert payment["created_at"]["format"] == payment["updated_at"]["format"] == "date-time"
    amount = validator("Payment")
    for value, valid in (("1598.00", True), ("0.50", True), ("1598", False), ("1598.5", False), ("1.598E+3", False)):
        assert amount.is_valid({**SPEC_PAYMENT_1, "amount": value}) is valid, value
    page = SCHEMAS["PaymentPage"]["properties"]
    for link in ("next", "previous"):
        assert page[link]["anyOf"] == [{"type": "string", "format": "uri"}, {"type": "null"}]
        assert "exactly as given" in page[link]["description"]
        # The same page, for a client that cannot follow a URL: the link's cursor, typed, for `cursor`.
        assert page[f"{link}_cursor"]["anyOf"] == [{"type": "string"}, {"type": "null"}]
        assert f"`cursor` of the `{link}` link" in page[f"{link}_cursor"]["description"]


def test_every_enum_has_member_names_a_generator_can_use() -> None:
    enums = {name: schema for name, schema in SCHEMAS.items() if "enum" in schema}
    assert {"PaymentOrdering", "PaymentStatus", "PaymentMethod", "OrderStatus"} <= set(enums)
    for name, schema in enums.items():
        names = schema["x-enum-varnames"]
        assert len(names) == len(schema["enum"]) == len(set(names)), name
        assert all(re.fullmatch(r"[A-Z][A-Z0-9_]*", member) for member in names), (name, names)
    assert SCHEMAS["PaymentOrdering"]["x-enum-varnames"] == ["ID", "ID_DESC", "CREATED_AT", "CREATED_AT_DESC"]


def answered_errors() -> list[tuple[str, dict[str, Any]]]:
    """(component, a body the error mapping writes), built by the code itself."""
    from halum_payments.auth import EXPIRED, MISSING, NO_USER
    from halum_payments.errors import BadRequest, InvalidInput, InvalidToken, NotAuthenticated, NotFound
    from halum_payments.http import error_body, validation_errors

    def body(error: Any) -> dict[str, Any]:
        return error_body(error.message, "detail", error.extra_body)

    missing = {"type": "missing", "loc": ("body", "shipping_address"), "msg": "Field required"}
    too_big = {"type": "less_than_equal", "loc": ("query", "page_size"), "msg": "", "ctx": {"le": 1000}}
    key = {"type": "string_too_long", "loc": ("header", "idempotency-key"), "msg": "", "ctx": {"max_length": 255}}
    return [
        ("CreateStripeOrderInvalidRequest", body(validation_errors([missing, key]))),
        ("CreateCodOrderInvalidRequest", body(validation_errors([missing, key]))),
        ("ListPaymentsInvalidRequest", body(validation_errors([too_big, {**too_big, "loc": ("query", "ordering")}]))),
        ("CreateCodOrderInvalidRequest", body(validation_errors([{"type": "json_invalid", "loc": ("body", 1)}]))),
        ("ListPaymentsInvalidRequest", body(InvalidInput.field("cursor", "Invalid cursor."))),
        ("CreateStripeOrderInvalidRequest", body(BadRequest("Your cart is empty."))),
        ("AuthenticationFailed", body(NotAuthenticated(MISSING))),
        ("AuthenticationFailed", body(InvalidToken("expired", EXPIRED))),
        ("AuthenticationFailed", body(InvalidToken("missing user_id claim", None, detail=NO_USER))),
        ("Error", body(NotFound())),
    ]


@pytest.mark.parametrize("index", range(len(answered_errors())))
def test_the_error_bodies_the_code_writes_match_their_documented_schemas(index: int) -> None:
    component, body = answered_errors()[index]
    errors = [error.message for error in validator(component).iter_errors(body)]
    assert not errors, (body, errors)


def test_a_field_error_that_is_not_a_list_of_messages_is_not_the_documented_shape() -> None:
    invalid = validator("CreateCodOrderInvalidRequest")
    assert not invalid.is_valid({"detail": "x", "shipping_address": "This field is required."})


# ---------------------------------------------------------------------------- /docs
class NoGateway(Gateway):
    def __init__(self) -> None:
        super().__init__([], {}, [])


def local_request(path: str, base_url: str = "http://127.0.0.1:3000") -> LocalRequest:
    return LocalRequest("GET", path, "", {"host": base_url.split("//", 1)[1]}, b"", base_url)


def serve(routes: LocalRoutes, path: str, base_url: str = "http://127.0.0.1:3000") -> HttpResponse:
    handler = routes.get("GET", path)
    assert handler is not None, path
    return handler(local_request(path, base_url), NoGateway())


@pytest.fixture(scope="module")
def docs() -> LocalRoutes:
    routes = LocalRoutes()
    for method, path, handler in openapi_docs.DOCS_ROUTES:
        routes.add(method, path, handler)
    return routes


def test_the_docs_page_loads_nothing_from_anywhere_else(docs: LocalRoutes) -> None:
    page = serve(docs, "/docs")
    assert page.status == 200
    headers = dict(page.headers)
    assert headers["Content-Type"].startswith("text/html")
    policy = headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy
    assert "script-src 'self'" in policy
    assert "connect-src 'self'" in policy
    html = page.body.decode()
    assert "http://" not in html
    assert "https://" not in html
    assert "<script>" not in html  # no inline script: the policy allows none
    references = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert sorted(references) == sorted(
        ["/docs/swagger-ui.css", "/docs/swagger-ui-bundle.js", "/docs/swagger-initializer.js"]
    )
    for reference in references:
        asset = serve(docs, reference)
        assert asset.status == 200
        assert len(asset.body) > 100, reference
    assert serve(docs, "/docs/").body == page.body


def test_the_assets_are_swagger_ui_from_the_installed_package(docs: LocalRoutes) -> None:
    bundle = serve(docs, "/docs/swagger-ui-bundle.js")
    assert dict(bundle.headers)["Content-Type"].startswith("text/javascript")
    assert b"SwaggerUIBundle" in bundle.body
    assert dict(serve(docs, "/docs/swagger-ui.css").headers)["Content-Type"].startswith("text/css")
    initializer = serve(docs, "/docs/swagger-initializer.js").body.decode()
    assert 'url: "/openapi.json"' in initializer
    assert "validatorUrl: null" in initializer  # Swagger UI would otherwise call validator.swagger.io


def test_openapi_json_is_the_committed_document_with_this_server_first(docs: LocalRoutes) -> None:
    reply = serve(docs, "/openapi.json", base_url="http://127.0.0.1:4321")
    assert reply.status == 200
    assert dict(reply.headers)["Content-Type"] == "application/json"
    served = json.loads(reply.body)
    assert served["servers"][0] == {"url": "http://127.0.0.1:4321", "description": "This local server"}
    assert served["servers"][1:] == DOCUMENT["servers"]
    assert {**served, "servers": DOCUMENT["servers"]} == DOCUMENT


@pytest.fixture
def docs_server(docs: LocalRoutes) -> Iterator[str]:
    server = ApiServer(("127.0.0.1", 0), NoGateway(), docs)
    serve_in_background(server)
    yield f"127.0.0.1:{server.port}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/docs", "text/html"),
        ("/docs/", "text/html"),
        ("/openapi.json", "application/json"),
        ("/docs/swagger-ui-bundle.js", "text/javascript"),
        ("/docs/swagger-ui.css", "text/css"),
        ("/docs/swagger-initializer.js", "text/javascript"),
    ],
)
def test_the_local_server_serves_the_docs(docs_server: str, path: str, content_type: str) -> None:
    connection = http.client.HTTPConnection(docs_server, timeout=10)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        body = response.read()
    finally:
        connection.close()
    assert response.status == 200
    assert (response.getheader("Content-Type") or "").startswith(content_type)
    assert body
    if path == "/openapi.json":
        assert json.loads(body)["servers"][0]["url"] == f"http://{docs_server}"
