"""The Stripe sandbox over plain HTTP, as stripe-python (form-encoded) or a browser (forms) reach it."""

from __future__ import annotations

import http.client
import json
import time
from typing import Any
from urllib.parse import urlencode, urlsplit

from local.stripe_sandbox import StripeSandbox

KEY = "sk_test_sandbox_unit_0123456789"
SECRET = "whsec_unit_" + "s" * 24


class Answer:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body
        self.text = body.decode()

    def json(self) -> Any:
        return json.loads(self.body)


def request(
    box: StripeSandbox,
    method: str,
    path: str,
    form: dict[str, Any] | list[tuple[str, Any]] | None = None,
    *,
    key: str | None = KEY,
    headers: dict[str, str] | None = None,
) -> Answer:
    """One raw HTTP request; redirects are not followed (their Location is what we check)."""
    url = urlsplit(box.base_url)
    connection = http.client.HTTPConnection(url.hostname or "", url.port, timeout=5)
    body = urlencode(form) if form is not None else None
    sent = {"Content-Type": "application/x-www-form-urlencoded", **(headers or {})}
    if key:
        sent["Authorization"] = f"Bearer {key}"
    try:
        connection.request(method, path, body=body, headers=sent)
        response = connection.getresponse()
        return Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
    finally:
        connection.close()


def session_form(*, expires_in: int = 3600, **overrides: Any) -> dict[str, Any]:
    """The fields StripeCheckoutGateway sends, bracket-encoded as stripe-python does."""
    form: dict[str, Any] = {
        "mode": "payment",
        "line_items[0][price_data][currency]": "usd",
        "line_items[0][price_data][product_data][name]": "Tee <b>Blue</b> (SKU-1)",
        "line_items[0][price_data][unit_amount]": "1999",
        "line_items[0][quantity]": "2",
        "line_items[1][price_data][currency]": "usd",
        "line_items[1][price_data][product_data][name]": "Mug (SKU-2)",
        "line_items[1][price_data][unit_amount]": "500",
        "line_items[1][quantity]": "1",
        "metadata[order_id]": "7",
        "metadata[payment_id]": "9",
        "metadata[user_id]": "1",
        "payment_intent_data[metadata][order_id]": "7",
        "client_reference_id": "7",
        "success_url": "https://shop.example/paid?session={CHECKOUT_SESSION_ID}",
        "cancel_url": "https://shop.example/cart",
        "expires_at": str(int(time.time()) + expires_in),
    }
    form.update(overrides)
    return {k: v for k, v in form.items() if v is not None}


def create(box: StripeSandbox, **overrides: Any) -> dict[str, Any]:
    answer = request(box, "POST", "/v1/checkout/sessions", session_form(**overrides))
    assert answer.status == 200, answer.text
    return answer.json()
