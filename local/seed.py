"""Seed files: validate every record, then write the tables exactly as the service would.

The records of the tables the platform's other services write (variants, addresses, carts, orders)
follow their data contract, whose one definition is `halum_payments/records.py` (the JSON Schemas in
schemas/records/ are generated from it; tests/unit/test_record_schemas.py holds every record of
local/seed.json to it). The models here are the seed file's authoring format, stricter where a demo
file should be (no unknown field, a name for every product) and with cross-checks between records.
A malformed file fails before anything is written, with a message naming the record.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, StrictInt, ValidationError

from halum_payments.clock import format_timestamp, parse_timestamp
from halum_payments.models import (
    Address,
    Cart,
    CartItem,
    Order,
    OrderItem,
    OrderOrigin,
    OrderStatus,
    Payment,
    PaymentMethod,
    PaymentRef,
    PaymentStatus,
    Variant,
)
from halum_payments.money import parse_amount
from halum_payments.records import AddressRecord, CartLineRecord
from halum_payments.repositories import catalog, orders, payments
from halum_payments.repositories.counters import (
    ORDER_SEQUENCE,
    PAYMENT_SEQUENCE,
    CountersRepository,
    created_deltas,
    merge_deltas,
    user_payments_key,
)
from halum_payments.repositories.dynamo import batch_put
from halum_payments.repositories.gateway_transactions import GatewayTransactionsRepository
from local import defaults

DEFAULT_SEED = defaults.DEFAULT_SEED


class SeedError(ValueError):
    pass


def _money(value: Any) -> Decimal:
    amount = parse_amount(value)
    if amount != amount.quantize(Decimal("0.01")):
        raise ValueError("at most two decimal places")
    return amount


def _timestamp(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("must be an ISO-8601 string")
    return format_timestamp(parse_timestamp(value))


Money = Annotated[Decimal, BeforeValidator(_money)]
Timestamp = Annotated[str, BeforeValidator(_timestamp)]
Id = Annotated[StrictInt, Field(ge=1, lt=10**18)]


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class SeedVariant(_Record):
    id: Id
    sku: Annotated[str, Field(min_length=1, max_length=64)]
    name: Annotated[str, Field(min_length=1, max_length=200)]
    price: Money
    stock: Annotated[StrictInt, Field(ge=0)]
    is_active: StrictBool = True


class SeedAddress(AddressRecord):
    """An address exactly as its contract says (records.py), with no unknown field."""

    model_config = _Record.model_config


class SeedCartItem(CartLineRecord):
    model_config = _Record.model_config


class SeedCart(_Record):
    user: Id
    items: list[SeedCartItem] = []


class SeedOrderItem(_Record):
    variant: Id
    quantity: Annotated[StrictInt, Field(ge=1)]
    price: Money


class SeedOrder(_Record):
    id: Id
    user: Id
    shipping_address: Id | None = None
    status: OrderStatus = OrderStatus.PENDING
    total_price: Money
    items: list[SeedOrderItem]
    created_at: Timestamp
    updated_at: Timestamp | None = None
    currency: Annotated[str, Field(pattern=r"^[a-z]{3}$")] | None = None


class SeedPayment(_Record):
    id: Id
    order: Id
    user: Id
    amount: Money
    method: PaymentMethod
    status: PaymentStatus
    transaction_id: Annotated[str, Field(min_length=1, max_length=255)] | None = None
    created_at: Timestamp
    updated_at: Timestamp


class SeedFile(_Record):
    product_variants: list[SeedVariant] = []
    shipping_addresses: list[SeedAddress] = []
    carts: list[SeedCart] = []
    orders: list[SeedOrder] = []
    payments: list[SeedPayment] = []


def load(path: Path) -> SeedFile:
    try:
        raw = json.loads(path.read_text(), parse_float=Decimal)
    except (OSError, json.JSONDecodeError) as exc:
        raise SeedError(f"{path}: cannot read seed JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise SeedError(f"{path}: the seed must be a JSON object of collections")
    try:
        seed = SeedFile.model_validate(raw)
    except ValidationError as exc:
        raise SeedError(f"{path}: {_describe(exc, raw)}") from None
    problems = list(_cross_check(seed))
    if problems:
        raise SeedError(f"{path}: " + "; ".join(problems))
    return seed


def _describe(exc: ValidationError, raw: dict[str, Any]) -> str:
    messages = []
    for error in exc.errors()[:5]:
        loc = list(error["loc"])
        where = str(loc[0]) if loc else "seed"
        if len(loc) >= 2 and isinstance(loc[1], int):
            record = raw.get(str(loc[0]), [])[loc[1]]
            label = f" (id {record['id']})" if isinstance(record, dict) and "id" in record else ""
            where = f"{loc[0]}[{loc[1]}]{label}"
            loc = loc[2:]
        else:
            loc = loc[1:]
        field = ".".join(str(p) for p in loc)
        messages.append(f"{where}: {field + ': ' if field else ''}{error['msg']}")
    return "; ".join(messages)


def _cross_check(seed: SeedFile) -> Iterable[str]:
    for name in ("product_variants", "shipping_addresses", "orders", "payments"):
        seen: set[int] = set()
        for index, record in enumerate(getattr(seed, name)):
            if record.id in seen:
                yield f"{name}[{index}] (id {record.id}): duplicate id"
            seen.add(record.id)
    variants = {v.id for v in seed.product_variants}
    addresses = {a.id: a for a in seed.shipping_addresses}
    orders_by_id = {o.id: o for o in seed.orders}
    carts_seen: set[int] = set()
    for index, cart in enumerate(seed.carts):
        if cart.user in carts_seen:
            yield f"carts[{index}] (user {cart.user}): a user has one cart"
        carts_seen.add(cart.user)
        for item in cart.items:
            if item.variant not in variants:
                yield f"carts[{index}] (user {cart.user}): unknown variant {item.variant}"
    for index, order in enumerate(seed.orders):
        label = f"orders[{index}] (id {order.id})"
        for line in order.items:
            if line.variant not in variants:
                yield f"{label}: unknown variant {line.variant}"
        if order.shipping_address is not None:
            address = addresses.get(order.shipping_address)
            if address is None or address.user != order.user:
                yield f"{label}: shipping_address {order.shipping_address} is not one of user {order.user}'s"
        total = sum((i.price * i.quantity for i in order.items), Decimal(0))
        if total != order.total_price:
            yield f"{label}: total_price {order.total_price} is not the sum of its items ({total})"
    settled: dict[int, int] = {}
    for index, payment in enumerate(seed.payments):
        label = f"payments[{index}] (id {payment.id})"
        owner = orders_by_id.get(payment.order)
        if owner is None:
            yield f"{label}: unknown order {payment.order}"
            continue
        if owner.user != payment.user:
            yield f"{label}: user {payment.user} does not own order {payment.order}"
        if payment.status in (PaymentStatus.COMPLETED, PaymentStatus.REFUNDED):
            if payment.order in settled:
                yield f"{label}: order {payment.order} already has completed payment {settled[payment.order]}"
            settled[payment.order] = payment.id
        settled_status = payment.status in (PaymentStatus.COMPLETED, PaymentStatus.REFUNDED)
        if settled_status and not payment.transaction_id and payment.method != PaymentMethod.COD:
            yield f"{label}: a settled {payment.method} payment needs its transaction_id"


def apply(seed: SeedFile, client: Any, tables: dict[str, str], currency: str = "usd") -> dict[str, int]:
    """Write the seed; `tables` maps the template's logical ids to table names."""
    batch_put(
        client,
        tables["ProductVariantsTable"],
        [catalog.encode_variant(Variant(**v.model_dump())) for v in seed.product_variants],
    )
    batch_put(
        client,
        tables["ShippingAddressesTable"],
        [catalog.encode_address(Address(**a.model_dump())) for a in seed.shipping_addresses],
    )
    batch_put(
        client,
        tables["CartsTable"],
        [
            catalog.encode_cart(Cart(c.user, tuple(CartItem(i.variant, i.quantity) for i in c.items)))
            for c in seed.carts
        ],
    )
    addresses = {a.id: a for a in seed.shipping_addresses}
    by_order: dict[int, list[SeedPayment]] = defaultdict(list)
    for payment in seed.payments:
        by_order[payment.order].append(payment)

    order_records = []
    for order in seed.orders:
        settled = next(
            (p for p in by_order[order.id] if p.status in (PaymentStatus.COMPLETED, PaymentStatus.REFUNDED)), None
        )
        address = addresses.get(order.shipping_address) if order.shipping_address else None
        record = Order(
            id=order.id,
            user=order.user,
            shipping_address=order.shipping_address,
            status=order.status,
            total_price=order.total_price,
            currency=order.currency or currency,
            items=tuple(OrderItem(i.variant, i.quantity, i.price) for i in order.items),
            created_at=order.created_at,
            updated_at=order.updated_at or order.created_at,
            origin=OrderOrigin.PLATFORM,
            payments={p.id: PaymentRef(p.method, p.status) for p in by_order[order.id]},
            completed_payment=settled.id if settled else None,
            completed_transaction=settled.transaction_id if settled else None,
            shipping=Address(**address.model_dump()).snapshot() if address else {},
        )
        order_records.append(orders.encode(record))
    batch_put(client, tables["OrdersTable"], order_records)

    currency_of = {o.id: (o.currency or currency) for o in seed.orders}
    payment_records = [
        payments.encode(
            Payment(
                id=p.id,
                order=p.order,
                user=p.user,
                amount=p.amount,
                currency=currency_of[p.order],
                method=p.method,
                status=p.status,
                transaction_id=p.transaction_id,
                created_at=p.created_at,
                updated_at=p.updated_at,
            )
        )
        for p in seed.payments
    ]
    batch_put(client, tables["PaymentsTable"], payment_records)

    transactions = GatewayTransactionsRepository(tables["GatewayTransactionsTable"], client)
    batch_put(
        client,
        tables["GatewayTransactionsTable"],
        [
            transactions.record(p.method, p.transaction_id, p.id, p.order, p.user)
            for p in seed.payments
            if p.transaction_id
        ],
    )

    counts: dict[int, list[dict[str, int]]] = defaultdict(list)
    for p in seed.payments:
        counts[p.user].append(created_deltas(p.status, p.method))
    counters = CountersRepository(tables["CountersTable"], client)
    batch_put(
        client,
        tables["CountersTable"],
        [{"name": user_payments_key(user), **merge_deltas(deltas)} for user, deltas in counts.items()],
    )
    counters.raise_sequence_to(ORDER_SEQUENCE, max((o.id for o in seed.orders), default=0))
    counters.raise_sequence_to(PAYMENT_SEQUENCE, max((p.id for p in seed.payments), default=0))
    return {name: len(getattr(seed, name)) for name in SeedFile.model_fields}
