"""One simulated run: the world (moto with the template's tables, Stripe, the functions, the
actors), the loop that checks the invariants after every step, and the quiescent end (faults off,
every window passed, a final sweep) where the rest of the invariants are checked.

Everything the code under test does goes through its real entry points: API Gateway HTTP API
(payload 2.0) and Function URL events into `lambda_handler`, with real JWTs, Stripe-signed and
HMAC-signed webhook bodies, and a scheduled event for the reconciler.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import random
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from types import ModuleType
from typing import Any

from boto3.dynamodb.types import TypeSerializer
from support import JWT_SECRET, PAYMENT_WEBHOOK_SECRET, STRIPE_WEBHOOK_SECRET, make_token

from local.events import http_event, scheduled_event
from local.template import Template

from .clock import VirtualClock, virtual_time
from .config import Config
from .dynamodb import DynamoDB
from .functions import Functions, Invocation, captured_metrics, quiet_logs
from .gateway_world import Gateway
from .ledger import Ledger
from .scheduler import Scheduler
from .state import State
from .stripe_world import SimulatedStripe

CHECKOUT = "/orders/api/create-stripe-order/"
COD = "/orders/api/create-cod/"
PAYMENTS = "/orders/api/payments/"
STRIPE_HOOK = "/orders/api/stripe-webhook/"
GATEWAY_HOOK = "/orders/api/payment-webhook/"
HOST = "api.halumhut.example"
PRICES = ("120.00", "65.25", "320.50", "425.50", "799.00", "899.00")
MAX_STEPS = 400_000


class Violation(AssertionError):
    """An invariant does not hold."""

    def __init__(self, invariant: str, detail: str) -> None:
        super().__init__(f"{invariant}: {detail}")
        self.invariant = invariant
        self.detail = detail


@dataclass
class Result:
    seed: int
    family: str
    violations: list[Violation]
    trace_hash: str
    steps: int
    virtual_seconds: float
    real_seconds: float
    stats: dict[str, Any] = field(default_factory=dict)
    error: BaseException | None = None
    trace: list[str] = field(default_factory=list)
    story: list[str] = field(default_factory=list)  # every invocation: what was sent, what it did, the answer

    @property
    def violation(self) -> Violation | None:
        return self.violations[0] if self.violations else None

    @property
    def ok(self) -> bool:
        return not self.violations and self.error is None


@dataclass
class User:
    id: int
    address: int
    platform_orders: list[int] = field(default_factory=list)
    keys: int = 0

    def new_key(self) -> str:
        self.keys += 1
        return f"u{self.id}-k{self.keys}"


class World:
    """What actors and invariants share during a run (built by `Simulation.run`)."""

    def __init__(self, config: Config, scheduler: Scheduler, clock: VirtualClock) -> None:
        self.config = config
        self.scheduler = scheduler
        self.clock = clock
        self.rng = random.Random(f"actors-{config.seed}")
        self.trace: list[str] = []
        self.users: dict[int, User] = {}
        self.products: dict[int, dict[str, Any]] = {}
        self.dynamo: DynamoDB
        self.stripe: SimulatedStripe
        self.ledger = Ledger()  # the outside world's books (ledger.py)
        self.gateway = Gateway(self)
        self.functions: Functions
        self.state: State
        self.invariants: Any = None
        self.closing = False
        self.dirty = True  # DynamoDB applied a write since the invariants last looked
        self.secrets_manager: Any = None  # moto's Secrets Manager (the Stripe webhook secret)
        # What happened, for the invariants.
        self.checkouts: list[CheckoutRecord] = []
        self.answered_sessions: dict[str, Invocation] = {}
        self.stripe_deliveries: list[Invocation] = []
        self.gateway_sends: list[Invocation] = []
        self.sweeps: list[Invocation] = []
        self.lost_events: list[dict[str, Any]] = []
        self.gateway_lost: list[bytes] = []  # gateway events never acknowledged (resent at quiescence)
        self.metadata_edits: dict[str, str] = {}  # session -> "another_user" | "not_a_user"
        self.drop_event: Callable[[dict[str, Any]], bool] = lambda event: False  # scenarios lose events
        # Records the shop broke (issue 20's contract), with what they were, and when any was broken.
        self.broken: dict[tuple[str, int], dict[str, Any]] = {}
        self.broken_windows: list[list[float]] = []  # [since, until] (until = inf while broken)

    # ------------------------------------------------------------------ time

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)  # patched: the scheduler's virtual sleep

    def spawn(self, name: str, fn: Callable[[], Any], delay: float = 0.0) -> None:
        self.scheduler.spawn(name, fn, delay=delay)

    # ------------------------------------------------------------------ requests

    def request(
        self,
        function: str,
        method: str,
        path: str,
        *,
        user: int | None = None,
        body: Any = None,
        key: str | None = None,
        headers: dict[str, str] | None = None,
        query: str = "",
        function_url: bool = False,
        token: str | None = None,
        **request: Any,
    ) -> Invocation:
        sent = {"host": HOST, "x-forwarded-proto": "https"}
        if user is not None:
            sent["authorization"] = f"Bearer {token or make_token(user, secret=JWT_SECRET)}"
        if key is not None:
            sent["idempotency-key"] = key
        if body is not None and not isinstance(body, (str, bytes)):
            body = json.dumps(body)
            sent["content-type"] = "application/json"
        sent.update(headers or {})
        event = http_event(
            method, path, query=query, headers=sent, body=body, domain_name=HOST, function_url=function_url
        )
        event["requestContext"]["time"] = time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(self.clock.now))
        info = {"method": method, "path": path, "user": user, "key": key, "body": body, **request}
        before = self.invariants.before_request(info)
        invocation = self.functions.invoke(function, event, request=info)
        digest = hashlib.sha1(invocation.text.encode()).hexdigest()[:10]
        state = invocation.killed or invocation.crash or invocation.status
        self.trace.append(f"{self.clock.elapsed:.6f} answer #{invocation.id} {function} {state} {digest}")
        self.invariants.answered(invocation, before)
        return invocation

    def checkout(self, user: User, path: str, body: dict[str, Any], key: str | None) -> Invocation:
        function = "CreateStripeOrderFunction" if path == CHECKOUT else "CreateCodOrderFunction"
        return self.request(function, "POST", path, user=user.id, body=body, key=key, kind="checkout")

    def list_payments(self, user: int, query: str = "") -> Invocation:
        return self.request("ListPaymentsFunction", "GET", PAYMENTS, user=user, query=query, kind="list")

    def get_payment(self, user: int, payment_id: int | str) -> Invocation:
        return self.request("GetPaymentFunction", "GET", f"{PAYMENTS}{payment_id}/", user=user, kind="get")

    def deliver_stripe(self, event: dict[str, Any], *, payload: str | None = None) -> Invocation:
        signed = payload is None  # as Stripe sends it (not a scripted hostile body)
        payload = payload if payload is not None else json.dumps(event, indent=2)
        header = self.stripe.sign(payload)
        if signed and int(hashlib.sha256(str(event.get("id")).encode()).hexdigest(), 16) % 8 == 0:
            header = _at_the_limit(header)
        invocation = self.request(
            "StripeWebhookFunction",
            "POST",
            STRIPE_HOOK,
            body=payload.encode(),
            headers={"stripe-signature": header, "content-type": "application/json; charset=utf-8"},
            function_url=True,
            kind="stripe_event",
            event=event,
            signed=signed,
        )
        self.stripe_deliveries.append(invocation)
        return invocation

    def send_gateway(self, raw: bytes) -> Invocation:
        signature = hmac.new(PAYMENT_WEBHOOK_SECRET.encode(), raw, hashlib.sha256).hexdigest()
        invocation = self.request(
            "PaymentWebhookFunction",
            "POST",
            GATEWAY_HOOK,
            body=raw,
            headers={"x-webhook-signature": signature, "content-type": "application/json"},
            kind="gateway",
            raw=raw,
        )
        self.gateway_sends.append(invocation)
        return invocation

    def sweep(self) -> Invocation:
        event = scheduled_event("reconcile")
        event["time"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.clock.now))
        before = self.invariants.before_request({"kind": "sweep"})
        invocation = self.functions.invoke("ReconcilePaymentsFunction", event, request={"kind": "sweep"})
        state = (
            invocation.killed or invocation.crash or invocation.throttled or json.dumps(invocation.body, sort_keys=True)
        )
        self.trace.append(f"{self.clock.elapsed:.6f} sweep #{invocation.id} {state}")
        self.sweeps.append(invocation)
        self.invariants.answered(invocation, before)
        return invocation

    # ------------------------------------------------------------------ the platform's own writes

    def put_cart(self, user: int, lines: dict[int, int]) -> None:
        """The platform fills a user's cart (its own service writes the Carts table)."""
        self.scheduler.io(self.rng.uniform(0.003, 0.01))
        # The cart service's writer (boto3) stores its lines' unset `note` as NULL and a set as SS
        # (shop_writers_extras).
        lines_written = [{"variant": v, "quantity": q, "note": None, "tags": {"web"}} for v, q in lines.items()]
        record = {"user": user, "items": lines_written}
        item = {name: _SERIALIZER.serialize(value) for name, value in record.items()}
        self.dynamo.backend().put_item(self.state.tables["CartsTable"], item)
        self.invariants.cart_written(user, lines)
        self.trace.append(f"{self.clock.elapsed:.6f} platform cart {user} {sorted(lines.items())}")

    # ------------------------------------------------------------------ the shop's careless writes

    def break_record(self, table: str, key: int, **changes: Any) -> None:
        """The shop writes a record that breaks its contract (docs/data-model.md): `changes` are the
        attributes it gets wrong, as DynamoDB attribute values (`{"S": "1"}` for a number)."""
        original = self._record(table, key)
        self.broken.setdefault((table, key), original)
        if not self.broken_windows or self.broken_windows[-1][1] != float("inf"):
            self.broken_windows.append([self.clock.now, float("inf")])
        item = {name: _SERIALIZER.serialize(value) for name, value in original.items()}
        self._write_raw(table, {**item, **changes})
        if table == "CartsTable":
            self.invariants.cart_written(key, self.state.carts().get(key) or {})

    def repair_records(self) -> None:
        for (table, key), original in self.broken.items():
            self._write_raw(table, {name: _SERIALIZER.serialize(value) for name, value in original.items()})
            if table == "CartsTable":
                self.invariants.cart_written(key, self.state.carts().get(key) or {})
        self.broken.clear()
        if self.broken_windows:
            self.broken_windows[-1][1] = self.clock.now

    def delete_variant(self, variant: int) -> None:
        """The shop deletes a product: only its stock stays (what giving stock back to it leaves)."""
        stock = self._record("ProductVariantsTable", variant)["stock"]
        self._write_raw("ProductVariantsTable", {"id": {"N": str(variant)}, "stock": {"N": str(stock)}})

    def rewrite_record(self, table: str, key: int, **changes: Any) -> None:
        """The shop changes a record within its contract (`changes` as DynamoDB attribute values)."""
        item = {name: _SERIALIZER.serialize(value) for name, value in self._record(table, key).items()}
        self._write_raw(table, {**item, **changes})

    def set_webhook_secret(self, value: str) -> None:
        """An operator puts a new value of the Stripe webhook secret in Secrets Manager."""
        self.secrets_manager.put_secret_value(
            SecretId=self.functions.specs["StripeWebhookFunction"].environment[STRIPE_WEBHOOK_SECRET_ID],
            SecretString=value,
        )
        self.trace.append(f"{self.clock.elapsed:.6f} operator sets the Stripe webhook secret ({len(value)} chars)")

    def reprice(self, variant: int, price: str) -> None:
        """The shop changes a product's price (its catalog service writes the variants table), here as a
        decimal string, which the contract allows as well as a number (docs/data-model.md)."""
        record = {**self._record("ProductVariantsTable", variant), "price": price}
        self._write_raw("ProductVariantsTable", {name: _SERIALIZER.serialize(v) for name, v in record.items()})

    def _record(self, table: str, key: int) -> dict[str, Any]:
        name = "user" if table == "CartsTable" else "id"
        return next(item for item in self.state.items(table) if int(item[name]) == key)

    def _write_raw(self, table: str, item: dict[str, Any]) -> None:
        self.scheduler.io(0.005)
        self.dynamo.backend().put_item(self.state.tables[table], item)
        self.dirty = True
        self.trace.append(f"{self.clock.elapsed:.6f} shop writes {table} {sorted(item)}")


@dataclass
class CheckoutRecord:
    """One checkout a user meant to make: the first request and its retries under the same key."""

    user: int
    path: str
    body: dict[str, Any]
    key: str | None
    invocations: list[Invocation] = field(default_factory=list)


# ---------------------------------------------------------------------- building a run


def shop_writers_extras(client: Any, tables: dict[str, str]) -> None:
    """What the shop's own writers put in its records besides the contract (docs/data-model.md):
    boto3 writes a Python None as NULL and a set as SS (the first product has no name, a cart line
    has no note and a set of tags), and
    attributes the contract does not name, which the service ignores (a NULL, a string set, a number
    set)."""
    for table, key in (
        ("ProductVariantsTable", "id"),
        ("ShippingAddressesTable", "id"),
        ("CartsTable", "user"),
        ("OrdersTable", "id"),
    ):
        for raw in client.scan(TableName=tables[table])["Items"]:  # the harness's setup, not a request
            raw["shop_note"] = {"NULL": True}
            raw["shop_tags"] = {"SS": ["imported", "v1"]}
            raw["shop_batches"] = {"NS": ["1", "2"]}
            if table == "CartsTable":  # a line's unset field, as boto3 writes None
                for line in raw.get("items", {}).get("L", []):
                    line["M"]["note"] = {"NULL": True}
                    line["M"]["tags"] = {"SS": ["web"]}  # a Python set, as boto3 writes it
            if table == "ProductVariantsTable" and raw[key] == {"N": "1"}:
                raw["name"] = {"NULL": True}
            client.put_item(TableName=tables[table], Item=raw)


def seed_data(config: Config, rng: random.Random, start: float) -> dict[str, Any]:
    """Products with little stock (sold-out races happen), one address and a cart per user, and a
    few pending orders written by the platform (paid later with {"order": N})."""
    products: list[dict[str, Any]] = []
    for variant in range(1, config.products + 1):
        products.append(
            {
                "id": variant,
                "sku": f"SKU-{variant}",
                "name": f"Product {variant}",
                "price": rng.choice(PRICES),
                "stock": config.stock if config.stock is not None else rng.choice((3, 5, 8, 40)),
                "is_active": True,
            }
        )
    users = max(config.users, config.rush) + config.backlog
    addresses = [
        {
            "id": user,
            "user": user,
            "full_name": f"User {user}",
            "phone": "+8801700000000",
            "address_line": f"House {user}",
            "city": "Dhaka",
            "postal_code": "1205",
            "country": "BD",
        }
        for user in range(1, users + 1)
    ]
    carts = [{"user": user, "items": _random_cart(rng, products)} for user in range(1, users + 1)]
    orders: list[dict[str, Any]] = []
    payments: list[dict[str, Any]] = []
    unused_transactions = [f"txn_{n}" for n in range(1, config.txn_pool + 1)]
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start - 3600))
    order_id = 0
    for user in range(1, users + 1):
        everyone = config.rush or config.family == "scenario"
        count = config.platform_orders if (everyone or rng.random() < 0.5) else 0
        for _ in range(count):
            order_id += 1
            lines = _lines(rng, products)
            items = [{"variant": v, "quantity": q, "price": products[v - 1]["price"]} for v, q in lines]
            total = sum((Decimal(products[v - 1]["price"]) * q for v, q in lines), Decimal(0))
            orders.append(
                {
                    "id": order_id,
                    "user": user,
                    "shipping_address": user,
                    "status": "pending",
                    "total_price": f"{total:.2f}",
                    "items": items,
                    "created_at": created,
                }
            )
            if unused_transactions and rng.random() < config.platform_paid:
                # Paid through the generic gateway before the run (as the spec's example order 2):
                # its transaction id is one the gateway may send again for another order.
                orders[-1]["status"] = "confirmed"
                payments.append(
                    {
                        "id": len(payments) + 1,
                        "order": order_id,
                        "user": user,
                        "amount": f"{total:.2f}",
                        "method": "ONLINE",
                        "status": "completed",
                        "transaction_id": unused_transactions.pop(rng.randrange(len(unused_transactions))),
                        "created_at": created,
                        "updated_at": created,
                    }
                )
            elif rng.random() < 0.5:
                payments.append(
                    {
                        "id": len(payments) + 1,
                        "order": order_id,
                        "user": user,
                        "amount": f"{total:.2f}",
                        "method": "COD",
                        "status": "pending",
                        "created_at": created,
                        "updated_at": created,
                    }
                )
    return {
        "product_variants": products,
        "shipping_addresses": addresses,
        "carts": carts,
        "orders": orders,
        "payments": payments,
    }


STRIPE_WEBHOOK_SECRET_ID = "STRIPE_WEBHOOK_SECRET_SECRET_ID"


def _webhook_secret_in_secrets_manager(functions: Functions) -> Any:
    """The Stripe webhook secret as deployed: Secrets Manager (moto's), named by the template's
    `STRIPE_WEBHOOK_SECRET_SECRET_ID` and read again as the layer's secrets.py says, so an operator's
    change of the value (`World.set_webhook_secret`) reaches the running environments."""
    import boto3

    client = boto3.client("secretsmanager", region_name="us-east-1")
    for name, spec in functions.specs.items():
        reference = spec.environment.get(STRIPE_WEBHOOK_SECRET_ID)
        if reference:
            functions.env[name].pop("STRIPE_WEBHOOK_SECRET", None)
            functions.env[name][STRIPE_WEBHOOK_SECRET_ID] = reference
            if not client.list_secrets(Filters=[{"Key": "name", "Values": [reference]}])["SecretList"]:
                client.create_secret(Name=reference, SecretString=STRIPE_WEBHOOK_SECRET)
    return client


def _lines(rng: random.Random, products: list[dict[str, Any]]) -> list[tuple[int, int]]:
    chosen = rng.sample([p["id"] for p in products], k=rng.randint(1, min(2, len(products))))
    return [(variant, rng.randint(1, 2)) for variant in sorted(chosen)]


def _random_cart(rng: random.Random, products: list[dict[str, Any]]) -> list[dict[str, int]]:
    return [{"variant": v, "quantity": q} for v, q in _lines(rng, products)]


@contextmanager
def simulated_process(clock: VirtualClock, scheduler: Scheduler, seed: int) -> Iterator[None]:
    """The process as the simulation needs it: virtual time, moto in-process, the Powertools
    request per thread, metrics captured, logs quiet; all undone afterwards."""
    from moto import mock_aws
    from support.environments import _request_per_thread

    from halum_payments.repositories.dynamo import dynamodb_client

    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "POWERTOOLS_METRICS_DISABLED": "true",
    }
    saved = {name: os.environ.get(name) for name in (*env, "AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL")}
    with ExitStack() as stack:
        os.environ.update(env)
        os.environ.pop("AWS_ENDPOINT_URL_DYNAMODB", None)
        os.environ.pop("AWS_ENDPOINT_URL", None)
        stack.callback(_restore_env, saved)
        stack.enter_context(mock_aws())
        dynamodb_client.cache_clear()  # a fresh client (and retry quota) for every run
        stack.callback(dynamodb_client.cache_clear)
        stack.enter_context(virtual_time(clock, _sleeper(scheduler), seed))
        stack.enter_context(_request_per_thread())
        stack.enter_context(captured_metrics(scheduler))
        stack.enter_context(quiet_logs())
        yield


@contextmanager
def stripe_wire(stripe: SimulatedStripe) -> Iterator[None]:
    """stripe-python reaches the simulated Stripe through the layer's own HTTP client: only the
    socket-level call under it is replaced, so its timeout, error mapping and stripe-python's retries
    all run. The layer's client calls `urllib.request.urlopen(request, timeout=...)`; before f2f491d
    it opened requests through `stripe_checkout._TimeoutOpener` (kept, to run the code before the
    fixes)."""
    import urllib.request

    from halum_payments.gateways import stripe_checkout

    target: ModuleType
    value: Any
    if hasattr(stripe_checkout, "_TimeoutOpener"):
        target, name, value = stripe_checkout, "_TimeoutOpener", stripe.opener_class()
    else:
        target, name, value = urllib.request, "urlopen", stripe.urlopen
    saved = getattr(target, name)
    setattr(target, name, value)
    try:
        yield
    finally:
        setattr(target, name, saved)


def _sleeper(scheduler: Scheduler) -> Callable[[float], None]:
    real_sleep = time.sleep

    def sleep(seconds: float) -> None:
        if seconds < 0:  # as time.sleep does
            raise ValueError("sleep length must be non-negative")
        if scheduler.current() is not None:
            scheduler.sleep(seconds)
        else:
            real_sleep(seconds)

    return sleep


def _restore_env(saved: dict[str, str | None]) -> None:
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


TEMPLATE = Template()
_SERIALIZER = TypeSerializer()
SIGNATURE_LIMIT = 2048  # docs/api.md: a signature header is read up to 2,048 characters


def _at_the_limit(header: str) -> str:
    """A header as a secret roll makes it (the old secret's `v1` beside the new one's, and a `v0`),
    exactly as long as docs/api.md promises to read."""
    rolled = f"{header},v1={hashlib.sha256(header.encode()).hexdigest()}"
    return f"{rolled},v0=" + "0" * (SIGNATURE_LIMIT - len(rolled) - len(",v0="))


def build_world(config: Config, scheduler: Scheduler, clock: VirtualClock) -> World:
    """Tables from template.yaml, the seed data, Stripe, the functions. Inside `simulated_process`."""
    from halum_payments.repositories.dynamo import dynamodb_client
    from local import seed as seed_file

    world = World(config, scheduler, clock)
    dynamo = DynamoDB(scheduler, random.Random(f"dynamodb-{config.seed}"), config.dynamo, config.seed)
    dynamo.backend().reset()
    client = dynamodb_client()
    dynamo.install(client)
    dynamo.trace = world.trace
    template = TEMPLATE
    tables = template.create_tables(client, prefix="sim-")
    data = seed_data(config, random.Random(f"data-{config.seed}"), clock.now)
    seed_file.apply(seed_file.SeedFile.model_validate(data), client, tables)
    shop_writers_extras(client, tables)
    world.products = {p["id"]: p for p in data["product_variants"]}
    world.ledger.seeded_stock = {int(p["id"]): int(p["stock"]) for p in data["product_variants"]}
    for payment in data["payments"]:
        if payment["method"] == "ONLINE" and payment["status"] == "completed":
            world.gateway.seeded(payment["transaction_id"], payment["order"], Decimal(payment["amount"]))
    for address in data["shipping_addresses"]:
        world.users[address["user"]] = User(address["user"], address["id"])
    for order in data["orders"]:
        world.users[order["user"]].platform_orders.append(order["id"])
    world.dynamo = dynamo
    world.state = State(dynamo.backend(), tables)

    stripe = SimulatedStripe(
        scheduler,
        random.Random(f"stripe-{config.seed}"),
        config.stripe,
        STRIPE_WEBHOOK_SECRET,
        config.seed,
        world.ledger,
    )
    stripe.trace = world.trace
    world.stripe = stripe

    settings = {}
    if config.reconcile_after_minutes is not None:
        settings["RECONCILE_AFTER_MINUTES"] = str(config.reconcile_after_minutes)
    if config.checkout_expires_minutes is not None:
        settings["CHECKOUT_EXPIRES_MINUTES"] = str(config.checkout_expires_minutes)
    if config.gateway_max_age_seconds is not None:
        settings["PAYMENT_WEBHOOK_MAX_AGE_SECONDS"] = str(config.gateway_max_age_seconds)
    secrets = {
        "JWT_SECRET": JWT_SECRET,
        "STRIPE_WEBHOOK_SECRET": STRIPE_WEBHOOK_SECRET,
        "PAYMENT_WEBHOOK_SECRET": PAYMENT_WEBHOOK_SECRET,
    }
    world.functions = Functions(
        template, scheduler, random.Random(f"kills-{config.seed}"), secrets, settings, config.kill_rate
    )
    world.secrets_manager = _webhook_secret_in_secrets_manager(world.functions)

    def observe(call: Any, outcome: str) -> None:
        invocation = call.context.get("invocation") if hasattr(call, "context") else None
        if invocation is None:
            task = scheduler.current()
            invocation = task.context.get("invocation") if task else None
        if invocation is not None:
            service = "stripe" if hasattr(call, "idempotency_key") else "dynamodb"
            invocation.calls.append((service, getattr(call, "op", getattr(call, "path", "")), outcome))
            if service == "dynamodb" and call.op == "Query" and outcome == "ok":
                invocation.queries.append(call)

    def applied(call: Any) -> None:
        invocation = call.context.get("invocation")
        if invocation is not None:
            invocation.writes.append(call)
        world.dirty = True

    dynamo.observers.append(observe)
    dynamo.listeners.append(applied)
    stripe.observers.append(observe)
    return world
