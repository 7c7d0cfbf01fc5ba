"""A method a path does not serve, through the real handlers: 405 with `Allow`, as clients expect.

In AWS every method reaches the functions: the Stripe webhook is a Function URL (any method, any path),
and each HTTP API path has an `ANY` route beside the served one (API Gateway would otherwise answer a
method with no route itself, `{"message": "Not Found"}`: tests/unit/test_template.py). So the function
answers: 405 with `Allow` listing the methods the path serves, in DRF's words (`Method "DELETE" not
allowed.`), never the signature's 400/401 nor a 404. DRF authenticates before it checks the method, so
on the authenticated paths a request without credentials is still 401 (tests/unit/test_simplejwt_compat.py
compares with DRF itself); nothing is read or written either way.
"""

from __future__ import annotations

import pytest
from support import auth, call
from support.dynamo_calls import recorded_calls

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE")
# function directory -> (the path as the spec writes it, the one method it serves, authenticated, Function URL)
ROUTES = {
    "list_payments": ("/orders/api/payments/", "GET", True, False),
    "get_payment": ("/orders/api/payments/1/", "GET", True, False),
    "create_stripe_order": ("/orders/api/create-stripe-order/", "POST", True, False),
    "create_cod_order": ("/orders/api/create-cod/", "POST", True, False),
    "payment_webhook": ("/orders/api/payment-webhook/", "POST", False, False),
    "stripe_webhook": ("/orders/api/stripe-webhook/", "POST", False, True),
}


def not_allowed(method: str, webhook: bool) -> dict[str, str]:
    message = f'Method "{method}" not allowed.'
    return {"status": "error", "message": message} if webhook else {"detail": message}


@pytest.mark.parametrize("name", list(ROUTES))
def test_a_method_the_path_does_not_serve_is_405_with_allow(load_function, store, dynamodb, name, subtests):
    path, served, authenticated, function_url = ROUTES[name]
    function = load_function(name, STRIPE_SECRET_KEY="sk_test_methods")
    headers = auth(1) if authenticated else {}  # a webhook's request is unsigned: the method is refused first
    before = store.snapshot()
    for method in (m for m in METHODS if m != served):
        for sent in (path, path.rstrip("/")):
            with subtests.test(method=method, path=sent), recorded_calls(dynamodb) as operations:
                reply = call(function, method, sent, headers=headers, body="{}", function_url=function_url)
                assert (reply.status, reply.json) == (405, not_allowed(method, not authenticated)), reply
                assert reply.headers["allow"] == served
                assert operations == [], "a refused method reads nothing"
    assert store.snapshot() == before


@pytest.mark.parametrize("name", [name for name, route in ROUTES.items() if route[2]])
def test_without_credentials_it_is_401_before_the_method_as_drf_answers(load_function, store, name):
    path = ROUTES[name][0]
    reply = call(load_function(name, STRIPE_SECRET_KEY="sk_test_methods"), "DELETE", path)
    assert (reply.status, reply.json) == (401, {"detail": "Authentication credentials were not provided."})
    assert "allow" not in reply.headers


def test_the_served_method_still_reaches_the_route(load_function, store):
    listed = call(load_function("list_payments"), "GET", "/orders/api/payments/", headers=auth(1))
    assert listed.status == 200 and "allow" not in listed.headers
    unsigned = call(load_function("stripe_webhook"), "POST", "/orders/api/stripe-webhook/", function_url=True)
    assert (unsigned.status, unsigned.json["message"]) == (400, "Missing or invalid Stripe signature.")
