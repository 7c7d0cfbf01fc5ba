"""Checkout through the real handlers: a shop seeded in the embedded DynamoDB, the Stripe sandbox as
Stripe, what was written (read by support.tables.Store), and tools that force races.

The fixtures built on it (`shop`, `sandbox`, `fast_stripe_retries`) live in
tests/integration/conftest.py.
"""

from __future__ import annotations

import itertools
import json
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from types import ModuleType
from typing import Any

from local import seed
from local.seed import DEFAULT_SEED
from local.stripe_sandbox import StripeSandbox
from support import TABLE_SETTINGS, Reply, auth, call
from support.drf import assert_error_body
from support.tables import Store

STRIPE_KEY = "sk_test_checkout_" + "c" * 24
SUCCESS_URL = "https://shop.example/checkout/done?session={CHECKOUT_SESSION_ID}"
CANCEL_URL = "https://shop.example/cart?cancelled=1"
CHECKOUT = "/orders/api/create-stripe-order/"
COD = "/orders/api/create-cod/"
PAYMENTS = "/orders/api/payments/"
NOT_CONFIGURED = {"detail": "Stripe payment gateway is not configured"}


# The default seed (local/seed.json), as a user sees it.
RUI, HILSA, PRAWN, RICE, PANGAS = 1, 2, 3, 4, 5
LABELS = {
    RUI: "Rui Fish 1kg (RUI-1KG)",
    HILSA: "Hilsa Fish 1kg (HILSA-1KG)",
    PRAWN: "Golda Prawn 500g (PRAWN-500G)",
    RICE: "Miniket Rice 5kg (RICE-5KG)",
    PANGAS: "Pangas Fish 1kg (PANGAS-1KG)",
}
ADDRESS_1 = {
    "id": 1,
    "full_name": "Nusrat Jahan",
    "phone": "+8801711000001",
    "address_line": "House 12, Road 5, Dhanmondi",
    "city": "Dhaka",
    "postal_code": "1205",
    "country": "BD",
}
# User 1's cart: 2 x Rui at 799.00 and 1 x Rice at 425.50.
CART_1_TOTAL = Decimal("2023.50")


def default_seed() -> dict[str, Any]:
    return json.loads(DEFAULT_SEED.read_text())


# ---------------------------------------------------------------------- calling the functions


def post(
    module: ModuleType,
    path: str,
    user: int | None,
    body: Any,
    *,
    key: str | None = None,
    headers: dict[str, str] | None = None,
) -> Reply:
    """POST as a client would; checks what holds for every answer (JSON; errors DRF's {"detail", ...})."""
    request_headers = auth(user) if user is not None else {}
    if key is not None:
        request_headers["idempotency-key"] = key
    request_headers.update(headers or {})
    reply = call(module, "POST", path, headers=request_headers, body=body)
    where = f"POST {path} {body!r} -> {reply!r}"
    assert reply.status != 500, where
    assert reply.headers.get("content-type", "").startswith("application/json"), where
    if reply.status >= 400:
        assert_error_body(reply.status, reply.json, where)
    return reply


@dataclass
class Shop:
    """The seeded tables, the Stripe sandbox, and the functions loaded (cold) against them."""

    client: Any
    tables: dict[str, str]
    sandbox: StripeSandbox
    load: Callable[..., ModuleType]
    store: Store = field(init=False)
    table_env: dict[str, str] = field(default_factory=dict)  # for another stack's tables
    _modules: dict[str, ModuleType] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.store = Store(self.client, self.tables)

    def seed(self, data: dict[str, Any], currency: str = "usd") -> None:
        seed.apply(seed.SeedFile.model_validate(data), self.client, self.tables, currency=currency)

    def stripe_env(self, **env: str) -> dict[str, str]:
        return {
            "STRIPE_SECRET_KEY": STRIPE_KEY,
            "STRIPE_API_BASE": self.sandbox.base_url,
            "STRIPE_TIMEOUT_SECONDS": "1",
            "STRIPE_MAX_NETWORK_RETRIES": "2",
            "CHECKOUT_SUCCESS_URL": SUCCESS_URL,
            "CHECKOUT_CANCEL_URL": CANCEL_URL,
            "CURRENCY": "usd",
            "CHECKOUT_EXPIRES_MINUTES": "30",
            **self.table_env,
            **env,
        }

    def another_stack(self) -> Shop:
        """A second deployment (its own tables, same Stripe account), seeded like this one."""
        from local.template import Template

        tables = Template().create_tables(self.client, prefix=f"s{uuid.uuid4().hex[:8]}-")
        stack = Shop(self.client, tables, self.sandbox, self.load)
        stack.table_env = {setting: tables[logical] for logical, setting in TABLE_SETTINGS.items()}
        stack.seed(default_seed())
        return stack

    def stripe_function(self, **env: str) -> ModuleType:
        """A fresh cold start of create_stripe_order (one per concurrent caller, as Lambda runs them)."""
        return self.load("create_stripe_order", **self.stripe_env(**env))

    def cod_function(self, **env: str) -> ModuleType:
        return self.load("create_cod_order", **self.stripe_env(**env))

    @property
    def stripe(self) -> ModuleType:
        if "stripe" not in self._modules:
            self._modules["stripe"] = self.stripe_function()
        return self._modules["stripe"]

    @property
    def cod(self) -> ModuleType:
        if "cod" not in self._modules:
            self._modules["cod"] = self.cod_function()
        return self._modules["cod"]

    def checkout(
        self,
        user: int | None,
        body: Any,
        *,
        key: str | None = None,
        module: ModuleType | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        return post(module or self.stripe, CHECKOUT, user, body, key=key, headers=headers)

    def cash(self, user: int | None, body: Any, *, key: str | None = None, module: ModuleType | None = None) -> Reply:
        return post(module or self.cod, COD, user, body, key=key)

    def listed(self, user: int) -> dict[str, Any]:
        if "list" not in self._modules:
            self._modules["list"] = self.load("list_payments")
        reply = call(self._modules["list"], "GET", PAYMENTS, headers=auth(user))
        assert reply.status == 200, reply
        return reply.json

    def detail(self, user: int, payment_id: int) -> Reply:
        if "get" not in self._modules:
            self._modules["get"] = self.load("get_payment")
        return call(self._modules["get"], "GET", f"{PAYMENTS}{payment_id}/", headers=auth(user))

    def creates(self) -> list[Any]:
        """Session-create requests Stripe received (retries included)."""
        return [r for r in self.sandbox.requests if r.method == "POST" and r.path == "/v1/checkout/sessions"]


# ---------------------------------------------------------------------- forcing races


_hook_ids = itertools.count()


@contextmanager
def hook(client: Any, event: str, handler: Callable[..., None]) -> Iterator[None]:
    unique_id = f"checkout-test-hook-{next(_hook_ids)}"
    client.meta.events.register(event, handler, unique_id=unique_id)
    try:
        yield
    finally:
        client.meta.events.unregister(event, unique_id=unique_id)


@contextmanager
def transactions_meet(client: Any, parties: int, timeout: float = 15.0) -> Iterator[None]:
    """The first `parties` TransactWriteItems calls wait for each other before going out, so every
    one of them was planned from the same reads: the race is certain, not left to scheduling."""
    barrier = threading.Barrier(parties, timeout=timeout)
    arrivals = itertools.count(1)
    lock = threading.Lock()

    def meet(**_: Any) -> None:
        with lock:
            mine = next(arrivals)
        if mine <= parties:
            barrier.wait()

    with hook(client, "before-call.dynamodb.TransactWriteItems", meet):
        yield
