"""Checkout's reads (one BatchGet each) and the transactions that place an order or add a payment."""

from __future__ import annotations

import random
import time
from typing import Any

from botocore.exceptions import ClientError

from ..logic.placing import Attached, CheckoutConflict, CheckoutSnapshot, KeyedCheckout, NewOrder, NewPayment
from ..models import Order, Payment, PaymentRef, RequestKey, Variant
from . import catalog, request_keys
from . import orders as order_records
from . import payments as payment_records
from .audit import audit_record
from .counters import ORDER_SEQUENCE, PAYMENT_SEQUENCE, CountersRepository, IdBlocks, created_deltas
from .dynamo import (
    Transaction,
    TransactionCancelled,
    batch_get,
    dynamodb_client,
    is_condition_failure,
    put_request,
    update_request,
)
from .tables import Tables

ATTACH_ATTEMPTS = 4
SEQUENCES = {"order": ORDER_SEQUENCE, "payment": PAYMENT_SEQUENCE}


class DynamoCheckoutStore:
    def __init__(self, tables: Tables, client: Any = None) -> None:
        self.tables = tables
        self._client = client
        self.counters = CountersRepository(tables.counters, client)
        self.ids = IdBlocks(tables.counters, client)

    @property
    def client(self) -> Any:
        return self._client or dynamodb_client()

    # ------------------------------------------------------------------ reads

    def snapshot(self, user: int, address_id: int, key: RequestKey | None) -> CheckoutSnapshot:
        found = batch_get(
            self.client,
            {
                self.tables.carts: {"Keys": [{"user": user}]},
                self.tables.shipping_addresses: {"Keys": [{"id": address_id}]},
                **self._key_request(key),
            },
        )
        carts = found[self.tables.carts]
        addresses = found[self.tables.shipping_addresses]
        return CheckoutSnapshot(
            cart=catalog.decode_cart(carts[0]) if carts else None,
            address=catalog.decode_address(addresses[0]) if addresses else None,
            keyed=self._keyed(found, key),
        )

    def order(self, order_id: int, key: RequestKey | None) -> tuple[Order | None, KeyedCheckout | None]:
        found = batch_get(self.client, {self.tables.orders: {"Keys": [{"id": order_id}]}, **self._key_request(key)})
        orders = found[self.tables.orders]
        return (order_records.decode(orders[0]) if orders else None), self._keyed(found, key)

    def order_and_payment(self, user: int, order_id: int, payment_id: int) -> tuple[Order | None, Payment | None]:
        found = batch_get(
            self.client,
            {
                self.tables.orders: {"Keys": [{"id": order_id}]},
                self.tables.payments: {"Keys": [payment_records.key(user, payment_id)]},
            },
        )
        orders, payments = found[self.tables.orders], found[self.tables.payments]
        return (
            order_records.decode(orders[0]) if orders else None,
            payment_records.decode(payments[0]) if payments else None,
        )

    def variants(self, variant_ids: list[int]) -> dict[int, Variant]:
        variant_ids = list(dict.fromkeys(variant_ids))  # BatchGetItem refuses duplicate keys
        if not variant_ids:
            return {}
        found = batch_get(self.client, {self.tables.product_variants: {"Keys": [{"id": v} for v in variant_ids]}})
        decoded = (catalog.decode_variant(item) for item in found[self.tables.product_variants])
        return {variant.id: variant for variant in decoded if variant is not None}

    def payment(self, user: int, payment_id: int) -> Payment | None:
        return payment_records.PaymentsRepository(self.tables.payments, self._client).get(user, payment_id)

    def next_id(self, kind: str) -> int:
        return self.ids.next(SEQUENCES[kind])

    def _key_request(self, key: RequestKey | None) -> dict[str, Any]:
        return {self.tables.idempotency: {"Keys": [request_keys.item_key(key)]}} if key else {}

    def _keyed(self, found: dict[str, list[dict[str, Any]]], key: RequestKey | None) -> KeyedCheckout | None:
        claims = found.get(self.tables.idempotency) if key else None
        return request_keys.decode(claims[0], key) if claims and key else None

    # ------------------------------------------------------------------ writes

    def place_order(self, new: NewOrder) -> None:
        """Write order and payment, reserve stock, empty the cart (and claim the request's key): all or nothing."""
        order, payment = new.order, new.payment
        txn = Transaction()
        new_item = [("id", "not_exists", None)]
        txn.add("order", "Put", put_request(self.tables.orders, order_records.encode(order), condition=new_item))
        txn.add(
            "payment", "Put", put_request(self.tables.payments, payment_records.encode(payment), condition=new_item)
        )
        txn.add(
            "cart",
            "Update",
            update_request(
                self.tables.carts,
                {"user": order.user},
                set_={"items": []},
                condition=[("items", "=", new.cart.raw_items)],
            ),
        )
        for item in order.items:
            request = update_request(
                self.tables.product_variants,
                {"id": item.variant},
                add={"stock": -item.quantity},
                condition=[
                    ("stock", ">=", item.quantity),
                    ("is_active", "=", True),
                    ("price", "=", new.variants[item.variant].raw_price),  # as stored: a number or a string
                ],
            )
            request["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
            txn.add(f"variant:{item.variant}", "Update", request)
        self._finish(txn, new.order.user, payment, new.audit, new.key)
        try:
            txn.commit(self.client)
        except TransactionCancelled as cancelled:
            raise self._diagnose(cancelled.failed, new) from None

    def add_payment(self, new: NewPayment) -> None:
        """A new payment on an existing order, if the order is still as read."""
        order, payment = new.order, new.payment
        set_, condition = order_records.payments_changed(
            order, {payment.id: PaymentRef(payment.method, payment.status)}
        )
        set_["updated_at"] = payment.created_at
        txn = Transaction()
        txn.add(
            "payment",
            "Put",
            put_request(self.tables.payments, payment_records.encode(payment), condition=[("id", "not_exists", None)]),
        )
        condition += [("status", "=", str(order.status)), ("completed_payment", "not_exists", None)]
        txn.add("order", "Update", update_request(self.tables.orders, {"id": order.id}, set_=set_, condition=condition))
        self._finish(txn, order.user, payment, new.audit, new.key)
        try:
            txn.commit(self.client)
        except TransactionCancelled as cancelled:
            raise CheckoutConflict("key" if "key" in cancelled.failed else "order") from None

    def attach_session(self, payment: Payment, session_id: str, url: str | None) -> Attached:
        """Record the payment's Checkout Session, only while the payment is pending: never on a
        payment given up meanwhile ("refused"). Resent after a lost answer, it holds again. "busy":
        another transaction kept the payment through every attempt."""
        request = update_request(
            self.tables.payments,
            payment_records.key(payment.user, payment.id),
            set_={"checkout_session_id": session_id, "checkout_url": url},
            condition=[("status", "=", "pending")],
            extra_condition="attribute_not_exists(#s) OR #s = :s",
        )
        request["ExpressionAttributeNames"]["#s"] = "checkout_session_id"
        request["ExpressionAttributeValues"][":s"] = {"S": session_id}
        for attempt in range(ATTACH_ATTEMPTS):
            try:
                self.client.update_item(**request)
                return "attached"
            except ClientError as exc:
                if is_condition_failure(exc):
                    return "refused"
                if exc.response.get("Error", {}).get("Code") != "TransactionConflictException":
                    raise
            # The payment is in another transaction right now (its own webhook settling it, most
            # likely): the write is safe to send again.
            time.sleep(random.uniform(0.02, 0.05) * 2**attempt)  # noqa: S311 - jitter
        return "busy"

    def _finish(self, txn: Transaction, user: int, payment: Payment, audit: Any, key: RequestKey | None) -> None:
        """What every checkout transaction also writes: the user's counts, the audit, the key's claim."""
        counts = self.counters.adjust_payment_counts(user, created_deltas(payment.status, payment.method))
        if counts:
            txn.add("counts", "Update", counts["Update"])
        txn.add("audit", "Put", put_request(self.tables.payment_audit, audit_record(audit)))
        if key is not None:
            txn.add("key", "Put", request_keys.claim(self.tables.idempotency, key, payment))

    @staticmethod
    def _diagnose(failed: dict[str, dict[str, Any] | None], new: NewOrder) -> CheckoutConflict:
        if "key" in failed:
            return CheckoutConflict("key")
        for tag, old in failed.items():
            if tag.startswith("variant:"):
                current = catalog.decode_variant(old) if old else None
                read = new.variants[int(tag.split(":", 1)[1])]
                if current is not None and current.is_active and current.price == read.price:
                    return CheckoutConflict("stock", current)
                return CheckoutConflict("catalog", current)
        return CheckoutConflict("cart" if "cart" in failed else "order")
