"""Checkout through the real handlers: a shop seeded in the embedded DynamoDB, the Stripe sandbox as
Stripe, readers of what was written (straight from the tables), and tools that force races.

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

from halum_payments.repositories.counters import user_payments_key
from halum_payments.repositories.dynamo import from_item, to_item
from local import seed
from local.seed import DEFAULT_SEED
from local.stripe_sandbox import StripeSandbox
from support import TABLE_SETTINGS, Reply, auth, call
from support.drf import assert_error_body

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


# ---------------------------------------------------------------------- reading the tables

_backend_checked = False


class Store:
    """What is in the tables, read directly (consistent reads), as plain Python values."""

    def __init__(self, client: Any, tables: dict[str, str]) -> None:
        self.client = client
        self.tables = tables

    def _get(self, logical: str, key: dict[str, Any]) -> dict[str, Any] | None:
        item = self.client.get_item(TableName=self.tables[logical], Key=to_item(key), ConsistentRead=True).get("Item")
        return from_item(item) if item else None

    def scan(self, logical: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        request: dict[str, Any] = {"TableName": self.tables[logical], "ConsistentRead": True}
        while True:
            response = self.client.scan(**request)
            items.extend(from_item(item) for item in response.get("Items", []))
            if not response.get("LastEvaluatedKey"):
                return items
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def dump(self) -> dict[str, list[str]]:
        """Every item of every table, canonically: equal dumps mean nothing was written.

        Read from the embedded server's memory (nine Scans per dump would dominate the suite's
        time); the first dump of the session is checked against real Scans."""
        global _backend_checked  # noqa: PLW0603 - once per test session
        in_memory = self._dump_in_memory()
        if in_memory is None or not _backend_checked:
            scanned = self._dump(self.scan)
            assert in_memory is None or in_memory == scanned, "the in-memory dump disagrees with Scan"
            _backend_checked = in_memory is not None
            return scanned
        return in_memory

    def _dump(self, items_of: Callable[[str], list[dict[str, Any]]]) -> dict[str, list[str]]:
        # Id sequences are left out: like a database sequence, a request that is then refused may
        # have reserved ids (gaps are fine); they are no business state.
        return {
            logical: sorted(
                json.dumps(item, sort_keys=True, default=str)
                for item in items_of(logical)
                if not str(item.get("name", "")).startswith("sequence#")
            )
            for logical in sorted(self.tables)
        }

    def _dump_in_memory(self) -> dict[str, list[str]] | None:
        try:
            from moto.core import DEFAULT_ACCOUNT_ID
            from moto.dynamodb.models import dynamodb_backends

            backend = dynamodb_backends[DEFAULT_ACCOUNT_ID][self.client.meta.region_name]
            items = {
                logical: [item.to_regular_json() for item in backend.tables[name].all_items()]
                for logical, name in self.tables.items()
            }
        except (ImportError, KeyError, AttributeError):  # another moto: fall back to Scans
            return None
        return self._dump(items.__getitem__)

    def order(self, order_id: int) -> dict[str, Any] | None:
        return self._get("OrdersTable", {"id": order_id})

    def payment(self, payment_id: int) -> dict[str, Any] | None:
        """By id alone, as a test knows it (the table is keyed by user and id): a Scan, test-only."""
        return self.payments().get(payment_id)

    def orders(self) -> dict[int, dict[str, Any]]:
        return {int(o["id"]): o for o in self.scan("OrdersTable")}

    def payments(self) -> dict[int, dict[str, Any]]:
        return {int(p["id"]): p for p in self.scan("PaymentsTable")}

    def stock(self, variant: int) -> int:
        record = self._get("ProductVariantsTable", {"id": variant})
        assert record is not None
        return int(record["stock"])

    def stocks(self) -> dict[int, int]:
        return {int(v["id"]): int(v["stock"]) for v in self.scan("ProductVariantsTable")}

    def cart(self, user: int) -> dict[int, int] | None:
        """variant -> quantity (None: no cart at all)."""
        record = self._get("CartsTable", {"user": user})
        if record is None:
            return None
        lines: dict[int, int] = {}
        for item in record.get("items") or []:
            lines[int(item["variant"])] = lines.get(int(item["variant"]), 0) + int(item["quantity"])
        return lines

    def audit(self, payment_id: int) -> list[dict[str, Any]]:
        rows = [row for row in self.scan("PaymentAuditTable") if int(row["payment"]) == payment_id]
        return sorted(rows, key=lambda row: row["at"])

    def counts(self, user: int) -> dict[str, int]:
        record = self._get("CountersTable", {"name": user_payments_key(user)}) or {}
        return {k: int(v) for k, v in record.items() if k != "name" and int(v) != 0}

    def put(self, logical: str, record: dict[str, Any]) -> None:
        self.client.put_item(TableName=self.tables[logical], Item=to_item(record))

    def set_cart(self, user: int, items: list[dict[str, Any]]) -> None:
        """A cart as the platform writes it (no validation: quantities may be anything)."""
        self.put("CartsTable", {"user": user, "items": items})

    def update_variant(self, variant: int, **values: Any) -> None:
        names = {f"#a{i}": name for i, name in enumerate(values)}
        self.client.update_item(
            TableName=self.tables["ProductVariantsTable"],
            Key=to_item({"id": variant}),
            UpdateExpression="SET " + ", ".join(f"#a{i} = :v{i}" for i in range(len(values))),
            ExpressionAttributeNames=names,
            ExpressionAttributeValues={f":v{i}": to_item({"v": v})["v"] for i, v in enumerate(values.values())},
        )


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
