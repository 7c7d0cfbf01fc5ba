"""Checkout reads (one BatchGet each) and the single transaction that places an order."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from ..logic.settlement import AuditEntry
from ..models import Address, Cart, Order, Payment, Variant
from . import catalog
from . import orders as order_records
from . import payments as payment_records
from .counters import ORDER_SEQUENCE, PAYMENT_SEQUENCE, CountersRepository, created_deltas
from .dynamo import (
    TransactionCancelled,
    batch_get,
    dynamodb_client,
    from_item,
    put_request,
    transact_write,
    update_request,
)
from .settlement_store import audit_record
from .tables import Tables

ConflictKind = Literal["sequence", "stock", "catalog", "cart", "order"]


@dataclass(frozen=True, slots=True)
class CheckoutSnapshot:
    cart: Cart | None
    address: Address | None
    order_sequence: int
    payment_sequence: int


@dataclass(frozen=True, slots=True)
class NewOrder:
    order: Order
    payment: Payment
    cart: Cart  # as read: the order empties exactly this cart
    variants: dict[int, Variant]  # as read: price and availability must still hold
    order_sequence: int
    payment_sequence: int
    audit: AuditEntry


@dataclass(frozen=True, slots=True)
class NewPayment:
    order: Order  # as read: status and payment count must still hold
    payment: Payment
    payment_sequence: int
    audit: AuditEntry


class CheckoutConflict(Exception):
    def __init__(self, kind: ConflictKind, variant: Variant | None = None) -> None:
        super().__init__(kind)
        self.kind = kind
        self.variant = variant  # for "stock": the variant as it is now


class DynamoCheckoutStore:
    def __init__(self, tables: Tables, client: Any = None) -> None:
        self.tables = tables
        self._client = client
        self.counters = CountersRepository(tables.counters, client)

    @property
    def client(self) -> Any:
        return self._client or dynamodb_client()

    def snapshot(self, user: int, address_id: int) -> CheckoutSnapshot:
        found = batch_get(
            self.client,
            {
                self.tables.carts: {"Keys": [{"user": user}]},
                self.tables.shipping_addresses: {"Keys": [{"id": address_id}]},
                self.tables.counters: {"Keys": [{"name": ORDER_SEQUENCE}, {"name": PAYMENT_SEQUENCE}]},
            },
        )
        carts = found[self.tables.carts]
        addresses = found[self.tables.shipping_addresses]
        counters = found[self.tables.counters]
        return CheckoutSnapshot(
            cart=catalog.decode_cart(carts[0]) if carts else None,
            address=catalog.decode_address(addresses[0]) if addresses else None,
            order_sequence=self.counters.sequence_value(counters, ORDER_SEQUENCE),
            payment_sequence=self.counters.sequence_value(counters, PAYMENT_SEQUENCE),
        )

    def variants(self, variant_ids: list[int]) -> dict[int, Variant]:
        variant_ids = list(dict.fromkeys(variant_ids))  # BatchGetItem refuses duplicate keys
        if not variant_ids:
            return {}
        found = batch_get(self.client, {self.tables.product_variants: {"Keys": [{"id": v} for v in variant_ids]}})
        decoded = (catalog.decode_variant(item) for item in found[self.tables.product_variants])
        return {variant.id: variant for variant in decoded if variant is not None}

    def cart(self, user: int) -> Cart | None:
        response = self.client.get_item(
            TableName=self.tables.carts, Key={"user": {"N": str(user)}}, ConsistentRead=True
        )
        item = response.get("Item")
        return catalog.decode_cart(from_item(item)) if item else None

    def order_with_sequence(self, order_id: int) -> tuple[Order | None, int]:
        found = batch_get(
            self.client,
            {
                self.tables.orders: {"Keys": [{"id": order_id}]},
                self.tables.counters: {"Keys": [{"name": PAYMENT_SEQUENCE}]},
            },
        )
        orders = found[self.tables.orders]
        sequence = self.counters.sequence_value(found[self.tables.counters], PAYMENT_SEQUENCE)
        return (order_records.decode(orders[0]) if orders else None), sequence

    def payment(self, payment_id: int) -> Payment | None:
        return payment_records.PaymentsRepository(self.tables.payments, self._client).get(payment_id)

    # ------------------------------------------------------------------ writes

    def place_order(self, new: NewOrder) -> None:
        """Allocate ids, write order and payment, reserve stock, empty the cart: all or nothing."""
        order, payment = new.order, new.payment
        operations: list[dict[str, Any]] = [
            self.counters.allocate(ORDER_SEQUENCE, new.order_sequence),
            self.counters.allocate(PAYMENT_SEQUENCE, new.payment_sequence),
            {
                "Put": put_request(
                    self.tables.orders, order_records.encode(order), condition=[("id", "not_exists", None)]
                )
            },
            {
                "Put": put_request(
                    self.tables.payments, payment_records.encode(payment), condition=[("id", "not_exists", None)]
                )
            },
            {
                "Update": update_request(
                    self.tables.carts,
                    {"user": order.user},
                    set_={"items": []},
                    condition=[("items", "=", new.cart.raw_items)],
                )
            },
        ]
        variant_slots: dict[int, int] = {}
        for item in order.items:
            variant = new.variants[item.variant]
            request = update_request(
                self.tables.product_variants,
                {"id": item.variant},
                add={"stock": -item.quantity},
                condition=[("stock", ">=", item.quantity), ("is_active", "=", True), ("price", "=", variant.price)],
            )
            request["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
            variant_slots[len(operations)] = item.variant
            operations.append({"Update": request})
        counts = self.counters.adjust_payment_counts(order.user, created_deltas(payment.status, payment.method))
        if counts:
            operations.append(counts)
        operations.append({"Put": put_request(self.tables.payment_audit, audit_record(new.audit))})
        try:
            transact_write(self.client, operations)
        except TransactionCancelled as cancelled:
            raise self._diagnose(cancelled, variant_slots, new) from None

    def add_payment(self, new: NewPayment) -> None:
        """A new payment on an existing order, if the order is still as read."""
        order, payment = new.order, new.payment
        if order.payments:
            set_: dict[str, Any] = {f"payments.{payment.id}": order_records.encode_ref_of(payment)}
            count_condition: tuple[str, str, Any] = ("payments", "size=", len(order.payments))
        else:
            set_ = {"payments": {str(payment.id): order_records.encode_ref_of(payment)}}
            count_condition = ("payments", "empty", None)
        set_["updated_at"] = payment.created_at
        operations: list[dict[str, Any]] = [
            self.counters.allocate(PAYMENT_SEQUENCE, new.payment_sequence),
            {
                "Put": put_request(
                    self.tables.payments, payment_records.encode(payment), condition=[("id", "not_exists", None)]
                )
            },
            {
                "Update": update_request(
                    self.tables.orders,
                    {"id": order.id},
                    set_=set_,
                    condition=[
                        ("status", "=", str(order.status)),
                        count_condition,
                        ("completed_payment", "not_exists", None),
                    ],
                )
            },
            {"Put": put_request(self.tables.payment_audit, audit_record(new.audit))},
        ]
        counts = self.counters.adjust_payment_counts(order.user, created_deltas(payment.status, payment.method))
        if counts:
            operations.append(counts)
        try:
            transact_write(self.client, operations)
        except TransactionCancelled as cancelled:
            failed = set(cancelled.condition_failures)
            raise CheckoutConflict("sequence" if 0 in failed else "order") from None

    def attach_session(self, payment_id: int, session_id: str, url: str | None) -> None:
        self.client.update_item(
            **update_request(
                self.tables.payments,
                {"id": payment_id},
                set_={"checkout_session_id": session_id, "checkout_url": url},
                condition=[("id", "exists", None)],
            )
        )

    @staticmethod
    def _diagnose(cancelled: TransactionCancelled, variant_slots: dict[int, int], new: NewOrder) -> CheckoutConflict:
        failed = set(cancelled.condition_failures)
        for index in sorted(failed):
            if index in variant_slots:
                old = cancelled.reasons[index].item
                current = catalog.decode_variant(old) if old else None
                item = next(i for i in new.order.items if i.variant == variant_slots[index])
                if current is not None and current.is_active and current.price == new.variants[item.variant].price:
                    return CheckoutConflict("stock", current)
                return CheckoutConflict("catalog", current)
        if failed & {0, 1}:
            return CheckoutConflict("sequence")
        if 4 in failed:
            return CheckoutConflict("cart")
        return CheckoutConflict("order")
