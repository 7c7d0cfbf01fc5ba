"""API Gateway's route selection and payload-2.0 response rules, as the local server applies them."""

from __future__ import annotations

import base64
import re

import pytest

from local.routing import Cors, HttpResponse, InvalidRoute, MalformedResponse, Router, proxy_response
from local.template import TEMPLATE, Template


@pytest.fixture(scope="module")
def api() -> Router:
    return Router.from_specs(Template().functions())


@pytest.mark.parametrize(
    ("path", "function", "route_key", "parameters"),
    [
        # API Gateway sends /x/ to the route /x: the route key is the declared one, without the slash.
        ("/orders/api/payments/", "ListPaymentsFunction", "GET /orders/api/payments", {}),
        ("/orders/api/payments", "ListPaymentsFunction", "GET /orders/api/payments", {}),
        ("/orders/api/payments/7/", "GetPaymentFunction", "GET /orders/api/payments/{id}", {"id": "7"}),
        ("/orders/api/payments/abc", "GetPaymentFunction", "GET /orders/api/payments/{id}", {"id": "abc"}),
        ("/orders/api/payments/a%2Fb/", "GetPaymentFunction", "GET /orders/api/payments/{id}", {"id": "a/b"}),
    ],
)
def test_the_templates_routes(api, path, function, route_key, parameters):
    match = api.match("GET", path)
    assert match is not None
    assert (match.target.function, match.target.route_key, match.path_parameters) == (function, route_key, parameters)
    assert match.target.function_url is False


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/orders/api/payments//"),  # a path parameter is never empty
        ("GET", "/orders/api/payments/1/2/"),
        ("GET", "/orders/api"),
        ("GET", "/"),
    ],
)
def test_no_route(api, method, path):
    assert api.match(method, path) is None


@pytest.mark.parametrize(
    ("method", "path", "function", "route_key"),
    [
        ("POST", "/orders/api/payments/", "ListPaymentsFunction", "ANY /orders/api/payments"),
        ("HEAD", "/orders/api/payments", "ListPaymentsFunction", "ANY /orders/api/payments"),
        ("DELETE", "/orders/api/payments/7/", "GetPaymentFunction", "ANY /orders/api/payments/{id}"),
        ("GET", "/orders/api/create-stripe-order", "CreateStripeOrderFunction", "ANY /orders/api/create-stripe-order"),
        ("PUT", "/orders/api/create-cod/", "CreateCodOrderFunction", "ANY /orders/api/create-cod"),
        ("TRACE", "/orders/api/payment-webhook/", "PaymentWebhookFunction", "ANY /orders/api/payment-webhook"),
    ],
)
def test_a_method_a_path_does_not_serve_goes_to_its_any_route(api, method, path, function, route_key):
    """The template gives each path an ANY route: API Gateway sends it every method not declared for the
    path, and the function answers 405 with Allow (tests/integration/test_methods.py)."""
    match = api.match(method, path)
    assert match is not None
    assert (match.target.function, match.target.route_key) == (function, route_key)


def test_a_method_with_no_route_matches_nothing_and_an_explicit_method_beats_any():
    """API Gateway ("Create routes for HTTP APIs"): an ANY route "matches all methods that you haven't defined
    for a resource"; "if no routes match a request", it answers {"message":"Not Found"} itself (the server's
    NOT_FOUND), the method included: a path served for GET alone is 404 for DELETE, not 405."""
    router = Router()
    router.add_route("GET", "/things", "Reader")
    router.add_route("POST", "/things", "Writer")
    router.add_route("ANY", "/things", "Others")
    router.add_route("GET", "/only-get", "Reader")
    assert router.match("GET", "/things/").target.route_key == "GET /things"
    assert router.match("POST", "/things").target.function == "Writer"
    assert router.match("DELETE", "/things").target.route_key == "ANY /things"
    assert router.match("TRACE", "/things/").target.function == "Others"
    assert router.match("DELETE", "/only-get") is None
    assert router.match("HEAD", "/only-get") is None  # HEAD is a method of its own: no GET route takes it


def test_static_segments_beat_parameters_which_beat_greedy():
    router = Router()
    router.add_route("GET", "/files/{proxy+}", "Greedy")
    router.add_route("GET", "/files/{name}", "Parameter")
    router.add_route("GET", "/files/readme", "Static")
    router.add_route("ANY", "/files/{name}/meta", "AnyMethod")
    router.add_route("GET", "/files/{name}/meta", "GetMethod")
    assert router.match("GET", "/files/readme").target.function == "Static"
    assert router.match("GET", "/files/other").target.function == "Parameter"
    greedy = router.match("GET", "/files/a/b/c")
    assert (greedy.target.function, greedy.path_parameters) == ("Greedy", {"proxy": "a/b/c"})
    assert router.match("GET", "/files/x/meta").target.function == "GetMethod"
    assert router.match("DELETE", "/files/x/meta").target.function == "AnyMethod"


def test_function_urls_answer_any_method_with_and_without_the_slash():
    router = Router()
    router.add_function_url("/orders/api/stripe-webhook/", "StripeWebhookFunction")
    for method, path in (("POST", "/orders/api/stripe-webhook/"), ("GET", "/orders/api/stripe-webhook")):
        match = router.match(method, path)
        assert match is not None
        assert (match.target.function, match.target.route_key, match.target.function_url) == (
            "StripeWebhookFunction",
            "$default",
            True,
        )
    assert router.match("POST", "/orders/api/stripe-webhook/x") is None


def test_impossible_routes_are_refused():
    router = Router()
    router.add_route("GET", "/a/{id}", "One")
    with pytest.raises(InvalidRoute, match="duplicate"):
        router.add_route("GET", "/a/{other}", "Two")
    with pytest.raises(InvalidRoute, match="greedy"):
        router.add_route("GET", "/b/{rest+}/c", "Three")


@pytest.mark.parametrize("path", ["/orders/api/payments/", "/a/{id}/"])
def test_a_route_ending_in_a_slash_is_refused_naming_the_route_to_declare(path):
    with pytest.raises(InvalidRoute, match=rf"ends in '/'.*declare GET {re.escape(path.rstrip('/'))} "):
        Router().add_route("GET", path, "Fn")


def test_a_trailing_slash_reaches_the_slashless_route_but_a_static_route_wins_first():
    router = Router()
    router.add_route("GET", "/files", "List")
    router.add_route("GET", "/files/{name}", "One")
    assert router.match("GET", "/files/").target.route_key == "GET /files"
    assert router.match("GET", "/files/a/").path_parameters == {"name": "a"}
    assert router.match("GET", "/files//") is None  # one slash is forgiven, not an empty segment
    assert router.match("GET", "/") is None


def test_make_run_refuses_a_template_route_that_ends_in_a_slash(tmp_path, monkeypatch, capsys):
    import local.__main__ as main

    text = TEMPLATE.read_text().replace("Path: /orders/api/create-cod}", "Path: /orders/api/create-cod/}")
    assert text != TEMPLATE.read_text()
    (tmp_path / "template.yaml").write_text(text)
    monkeypatch.setattr(main, "TEMPLATE", Template(tmp_path / "template.yaml"))
    assert main.main({}) == 2
    assert "POST /orders/api/create-cod/ ends in '/'" in capsys.readouterr().err


# ---------------------------------------------------------------------------- payload 2.0 responses
def test_a_response_object_is_returned_as_given():
    response = proxy_response(
        {
            "statusCode": 201,
            "headers": {"Content-Type": "application/json", "X-Count": 3, "Content-Length": "999"},
            "cookies": ["a=1; HttpOnly", "b=2"],
            "body": '{"ok": true}',
        }
    )
    assert response.status == 201
    assert response.headers == [
        ("Content-Type", "application/json"),
        ("X-Count", "3"),
        ("Set-Cookie", "a=1; HttpOnly"),
        ("Set-Cookie", "b=2"),
    ]
    assert response.body == b'{"ok": true}'


def test_a_base64_body_is_decoded():
    body = base64.b64encode(b"\x89PNG\x00").decode()
    assert proxy_response({"statusCode": 200, "isBase64Encoded": True, "body": body}).body == b"\x89PNG\x00"


@pytest.mark.parametrize(
    ("result", "body"),
    [
        ({"message": "hi"}, b'{"message": "hi"}'),
        ("hello", b"hello"),
        ([1, 2], b"[1, 2]"),
        (None, b"null"),
    ],
)
def test_anything_else_is_a_200_json_body(result, body):
    response = proxy_response(result)
    assert (response.status, response.headers, response.body) == (200, [("Content-Type", "application/json")], body)


@pytest.mark.parametrize(
    "result",
    [
        {"statusCode": "abc"},
        {"statusCode": 99},
        {"statusCode": True},
        {"statusCode": 200, "body": {"not": "a string"}},
        {"statusCode": 200, "headers": ["x"]},
        {"statusCode": 200, "headers": {"X-Bad": "a\r\nSet-Cookie: injected=1"}},
        {"statusCode": 200, "cookies": "a=1"},
        {"statusCode": 200, "isBase64Encoded": True, "body": "not base64!"},
    ],
)
def test_a_malformed_response_is_refused(result):
    with pytest.raises(MalformedResponse):
        proxy_response(result)


# ---------------------------------------------------------------------------- CORS
def test_cors_from_the_template_replaces_the_functions_own_cors_headers():
    """API Gateway ignores CORS headers from the integration when the API configures CORS."""
    cors = Cors.from_config(Template().http_api_cors() or {})
    assert cors.allow_origins == ("https://halumhut.example",)
    response = HttpResponse(200, [("Access-Control-Allow-Origin", "*"), ("Content-Type", "application/json")], b"{}")
    applied = cors.apply(response, {"origin": "https://halumhut.example"})
    assert applied.headers == [
        ("Content-Type", "application/json"),
        ("Access-Control-Allow-Origin", "https://halumhut.example"),
    ]
    assert cors.apply(response, {}).headers == [("Content-Type", "application/json")]


def test_a_wildcard_cors_configuration_allows_any_origin_and_echoes_requested_headers():
    cors = Cors.from_config({"AllowOrigins": ["*"], "AllowHeaders": ["*"], "AllowMethods": ["GET"]})
    reply = cors.preflight(
        {
            "origin": "http://localhost:5173",
            "access-control-request-method": "GET",
            "access-control-request-headers": "X-A, x-b",
        }
    )
    assert dict(reply.headers)["Access-Control-Allow-Origin"] == "*"
    assert dict(reply.headers)["Access-Control-Allow-Headers"] == "x-a,x-b"
