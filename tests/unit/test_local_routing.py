"""API Gateway's route selection and payload-2.0 response rules, as the local server applies them."""

from __future__ import annotations

import base64

import pytest

from local.routing import MalformedResponse, Router, proxy_response
from local.template import Template


@pytest.fixture(scope="module")
def api() -> Router:
    return Router.from_specs(Template().functions())


@pytest.mark.parametrize(
    ("path", "function", "route_key", "parameters"),
    [
        ("/orders/api/payments/", "ListPaymentsFunction", "GET /orders/api/payments/", {}),
        ("/orders/api/payments", "ListPaymentsFunction", "GET /orders/api/payments", {}),
        ("/orders/api/payments/7/", "GetPaymentFunction", "GET /orders/api/payments/{id}/", {"id": "7"}),
        ("/orders/api/payments/abc", "GetPaymentFunction", "GET /orders/api/payments/{id}", {"id": "abc"}),
        ("/orders/api/payments/a%2Fb/", "GetPaymentFunction", "GET /orders/api/payments/{id}/", {"id": "a/b"}),
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
        ("POST", "/orders/api/payments/"),
        ("GET", "/orders/api/payments//"),  # a path parameter is never empty
        ("GET", "/orders/api/payments/1/2/"),
        ("GET", "/orders/api"),
        ("GET", "/"),
    ],
)
def test_no_route(api, method, path):
    assert api.match(method, path) is None


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
    with pytest.raises(ValueError, match="duplicate"):
        router.add_route("GET", "/a/{other}", "Two")
    with pytest.raises(ValueError, match="greedy"):
        router.add_route("GET", "/b/{rest+}/c", "Three")


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
