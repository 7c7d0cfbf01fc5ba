"""A typed client generated from openapi.json by openapi-python-client, used against `python -m local`.

What a front-end team would do with the contract: generate a client (offline: the generator reads the
committed file, runs no formatter, fetches nothing), then list the caller's payments, page through
them by following `next` through the typed client (its query, cursor included, as the client's own typed
arguments) and by the page's typed `next_cursor`/`previous_cursor`, fetch one by its integer id, start a
Stripe checkout with either shape of the body's `oneOf`, and read every refusal typed: each route's 400
with its field errors as attributes, 401, 404, and the 405 of a method a path does not serve. If the
document or the API drift apart so that the generated client no longer works, these tests fail.
"""

from __future__ import annotations

import datetime
import importlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from support import ROOT

pytestmark = pytest.mark.e2e

PACKAGE = "halum_payments_client"
USER = 1  # the demo user: the spec's two payments (read only here)
BUYER = 31  # E2E_CARTS: a cart and an address of its own


def generate(into: Path) -> subprocess.CompletedProcess[str]:
    config = into / "config.json"
    # No post hooks: the generated code is used as generated (and no formatter has to be found on PATH).
    config.write_text(json.dumps({"package_name_override": PACKAGE, "post_hooks": []}))
    return subprocess.run(
        [sys.executable, "-m", "openapi_python_client", "generate", "--path", str(ROOT / "openapi.json"),
         "--meta", "none", "--output-path", str(into / PACKAGE), "--config", str(config)],
        cwd=into, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    into = tmp_path_factory.mktemp("generated-client")
    result = generate(into)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Warning" not in result.stdout + result.stderr, result.stdout + result.stderr  # nothing skipped
    sys.path.insert(0, str(into))
    try:
        modules = {
            name: importlib.import_module(f"{PACKAGE}.{name}")
            for name in (
                "client",
                "models",
                "api.payments.list_payments",
                "api.payments.get_payment",
                "api.checkout.create_stripe_order",
            )
        }
        yield SimpleNamespace(**{name.rsplit(".", 1)[-1]: module for name, module in modules.items()})
    finally:
        sys.path.remove(str(into))
        for name in [name for name in sys.modules if name == PACKAGE or name.startswith(PACKAGE + ".")]:
            del sys.modules[name]


def as_sent(payment: Any) -> dict[str, Any]:
    """A generated Payment as the API sent it (the model writes datetimes back as `+00:00`, the API as `Z`)."""
    data: dict[str, Any] = payment.to_dict()
    for name in ("created_at", "updated_at"):
        data[name] = getattr(payment, name).astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return data


def client(generated: SimpleNamespace, server: Any, user: int, **claims: Any) -> Any:
    return generated.client.AuthenticatedClient(base_url=server.url, token=server.token(user, **claims))


def follow(generated: SimpleNamespace, api: Any, link: str) -> Any:
    """`next`/`previous` followed exactly as given, through the typed client: the link's query parameters
    become the generated function's typed arguments (enums, an int), its cursor the `cursor` argument."""
    models = generated.models
    query = {name: values[0] for name, values in parse_qs(urlsplit(link).query, keep_blank_values=True).items()}
    assert set(query) <= {"ordering", "status", "method", "page_size", "cursor"}, query
    typed = {"ordering": models.PaymentOrdering, "status": models.PaymentStatus, "method": models.PaymentMethod}
    arguments = {name: typed[name](value) if name in typed else value for name, value in query.items()}
    if "page_size" in arguments:
        arguments["page_size"] = int(arguments["page_size"])
    page = generated.list_payments.sync(client=api, **arguments)
    assert isinstance(page, models.PaymentPage), page
    return page


def test_the_generated_client_pages_by_following_next_and_fetches_one_by_its_integer_id(generated, stripe_server):
    api = client(generated, stripe_server, USER)
    models = generated.models
    first = generated.list_payments.sync(client=api, page_size=1, ordering=models.PaymentOrdering.ID)
    assert isinstance(first, models.PaymentPage), first
    everything = stripe_server.payments(USER)  # the same list over plain HTTP, in one page
    assert first.count == len(everything) >= 2
    assert first.previous is None and first.previous_cursor is None

    pages = [first]
    while pages[-1].next_ is not None:  # (`next_`: the generator avoids the builtin)
        page = pages[-1]
        assert parse_qs(urlsplit(page.next_).query)["cursor"] == [page.next_cursor]  # the link's, typed
        pages.append(follow(generated, api, page.next_))
    assert pages[-1].next_cursor is None
    assert [payment.id for page in pages for payment in page.results] == [payment["id"] for payment in everything]

    # The same pages through the typed cursors alone (no URL at all), forward then back.
    by_cursor = [first]
    while (cursor := by_cursor[-1].next_cursor) is not None:
        by_cursor.append(
            generated.list_payments.sync(client=api, page_size=1, ordering=models.PaymentOrdering.ID, cursor=cursor)
        )
    assert [page.to_dict() for page in by_cursor] == [page.to_dict() for page in pages]
    back = [by_cursor[-1]]
    while (cursor := back[-1].previous_cursor) is not None:
        back.append(
            generated.list_payments.sync(client=api, page_size=1, ordering=models.PaymentOrdering.ID, cursor=cursor)
        )
    assert [page.to_dict() for page in reversed(back)] == [page.to_dict() for page in pages]

    payment = pages[0].results[0]
    assert isinstance(payment.created_at, datetime.datetime) and payment.created_at.tzinfo is not None
    assert isinstance(payment.method, models.PaymentMethod) and isinstance(payment.status, models.PaymentStatus)
    assert as_sent(payment) == everything[0]  # nothing lost or reshaped on the way through the models

    assert isinstance(payment.id, int)
    fetched = generated.get_payment.sync(client=api, id=payment.id)  # the path id is an int
    assert isinstance(fetched, models.Payment), fetched
    assert as_sent(fetched) == everything[0]


def test_the_generated_client_checks_out_with_either_shape_of_the_body(generated, stripe_server):
    api = client(generated, stripe_server, BUYER)
    models = generated.models
    body = models.CartCheckout(shipping_address=BUYER)  # or OrderPayment(order=...): never {} nor both
    started = generated.create_stripe_order.sync(client=api, body=body, idempotency_key="generated-client-1")
    assert isinstance(started, models.CheckoutSessionOut), started
    assert started.id.startswith("cs_") and started.url.startswith("http")
    assert stripe_server.sandbox.session(started.id)["status"] == "open"

    page = generated.list_payments.sync(client=api, method=models.PaymentMethod.STRIPE)
    assert isinstance(page, models.PaymentPage), page
    (payment,) = page.results
    assert (payment.status, payment.amount, payment.transaction_id) == (models.PaymentStatus.PENDING, "16.50", None)

    # The order it placed, paid through the other shape: its open session again, not a second payment.
    resumed = generated.create_stripe_order.sync(client=api, body=models.OrderPayment(order=payment.order))
    assert isinstance(resumed, models.CheckoutSessionOut), resumed
    assert resumed.id == started.id
    assert [p.id for p in generated.list_payments.sync(client=api).results] == [payment.id]


def test_the_generated_client_reads_the_documented_errors_typed(generated, stripe_server):
    models = generated.models
    api = client(generated, stripe_server, USER)
    refused = generated.list_payments.sync(client=api, page_size=0)
    assert isinstance(refused, models.ListPaymentsInvalidRequest), refused
    assert refused.detail == "page_size: Ensure this value is greater than or equal to 1."
    assert refused.page_size == ["Ensure this value is greater than or equal to 1."]  # an attribute, typed
    assert not hasattr(refused, "additional_properties")  # every key it can carry is declared

    mine = generated.list_payments.sync(client=api, page_size=1)
    assert isinstance(mine, models.PaymentPage) and mine.next_cursor is not None, mine
    other_user = client(generated, stripe_server, 2)
    cursor = generated.list_payments.sync(client=other_user, page_size=1, cursor=mine.next_cursor)
    assert isinstance(cursor, models.ListPaymentsInvalidRequest), cursor
    assert cursor.cursor == ["Invalid cursor: it was issued to another user."]

    address = generated.create_stripe_order.sync(client=api, body=models.CartCheckout(shipping_address=BUYER))
    assert isinstance(address, models.CreateStripeOrderInvalidRequest), address
    assert address.shipping_address == [f'Invalid pk "{BUYER}" - object does not exist.']
    # What the typed client cannot build, the API refuses in the shape the document names.
    for sent in ({}, {"shipping_address": 1, "order": 1}):
        raw = api.get_httpx_client().post("/orders/api/create-stripe-order/", json=sent)
        assert raw.status_code == 400, raw.text
        both = models.CreateStripeOrderInvalidRequest.from_dict(raw.json())
        assert both.non_field_errors == [
            "Send exactly one of 'shipping_address' (check out the cart) or 'order' (pay an order)."
        ]

    expired = client(generated, stripe_server, USER, exp=1)
    unauthorized = generated.get_payment.sync(client=expired, id=1)
    assert isinstance(unauthorized, models.AuthenticationFailed), unauthorized
    assert unauthorized.code == "token_not_valid"
    assert [message.message for message in unauthorized.messages] == ["Token is expired"]

    missing = generated.get_payment.sync(client=api, id=999999)
    assert isinstance(missing, models.Error) and missing.detail == "Not found."
    malformed = api.get_httpx_client().get("/orders/api/payments/abc/")  # not an int: no typed call can send it
    assert (malformed.status_code, models.Error.from_dict(malformed.json()).detail) == (404, "Not found.")


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("DELETE", "/orders/api/payments/", "GET"),
        ("PUT", "/orders/api/payments/1/", "GET"),
        ("GET", "/orders/api/create-stripe-order/", "POST"),
        ("TRACE", "/orders/api/payment-webhook/", "POST"),
        ("GET", "/orders/api/stripe-webhook/", "POST"),
    ],
)
def test_a_method_a_path_does_not_serve_is_405_with_allow(generated, stripe_server, method, path, allow):
    """The generated client has no function for a method the document does not list; its HTTP client meets
    405 with `Allow`, and the body reads as the documented error shape of that path's style."""
    answer = client(generated, stripe_server, USER).get_httpx_client().request(method, path)
    assert (answer.status_code, answer.headers["allow"]) == (405, allow), answer.text
    message = f'Method "{method}" not allowed.'
    if "webhook" in path:
        assert generated.models.WebhookError.from_dict(answer.json()).message == message
    else:
        assert generated.models.Error.from_dict(answer.json()).detail == message
