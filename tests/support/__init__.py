"""Helpers shared by the test suites: tokens, invoking handlers, reading responses."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType
from typing import Any

from local.events import LambdaContext, http_event

ROOT = Path(__file__).resolve().parent.parent.parent
JWT_SECRET = "test-jwt-secret-" + "x" * 32
STRIPE_WEBHOOK_SECRET = "whsec_test_" + "y" * 24
PAYMENT_WEBHOOK_SECRET = "pwh_test_" + "z" * 24
# Template logical id -> the setting that names the table in a function's environment.
TABLE_SETTINGS = {
    "PaymentsTable": "PAYMENTS_TABLE",
    "PaymentAuditTable": "PAYMENT_AUDIT_TABLE",
    "OrdersTable": "ORDERS_TABLE",
    "ProductVariantsTable": "PRODUCT_VARIANTS_TABLE",
    "ShippingAddressesTable": "SHIPPING_ADDRESSES_TABLE",
    "CartsTable": "CARTS_TABLE",
    "CountersTable": "COUNTERS_TABLE",
    "GatewayTransactionsTable": "GATEWAY_TRANSACTIONS_TABLE",
    "IdempotencyTable": "IDEMPOTENCY_TABLE",
}


def make_token(user_id: Any = 1, *, secret: str = JWT_SECRET, algorithm: str = "HS256", **claims: Any) -> str:
    """A simplejwt-shaped access token (`user_id` a string, as simplejwt 5.5 writes it); pass claim=None
    to drop a claim."""
    from support import tokens  # imports this module's secrets: not at import time

    return tokens.hs_token(tokens.claims(str(user_id), **claims), secret, algorithm)


def auth(user_id: Any = 1) -> dict[str, str]:
    return {"authorization": f"Bearer {make_token(user_id)}"}


class Reply:
    def __init__(self, raw: dict[str, Any]) -> None:
        self.raw = raw
        self.status = raw["statusCode"]
        self.headers = {k.lower(): v for k, v in (raw.get("headers") or {}).items()}
        body = raw.get("body") or ""
        self.text = body
        self.json: Any = json.loads(body) if body else None

    def __repr__(self) -> str:
        return f"Reply({self.status}, {self.text[:300]})"


def call(
    module: ModuleType,
    method: str,
    path: str,
    *,
    query: str = "",
    headers: dict[str, str] | None = None,
    body: Any = None,
    function_url: bool = False,
) -> Reply:
    """Invoke a loaded function module with the event API Gateway would send."""
    headers = dict(headers or {})
    if body is not None and not isinstance(body, (str, bytes)):
        body = json.dumps(body)
        headers.setdefault("content-type", "application/json")
    event = http_event(
        method,
        path,
        query=query,
        headers={"host": "api.example.com", "x-forwarded-proto": "https", **headers},
        body=body,
        domain_name="api.example.com",
        function_url=function_url,
    )
    return Reply(module.lambda_handler(event, LambdaContext("test")))
