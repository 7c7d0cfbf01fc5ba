"""Orders table. An order also lists its payments (method and status), updated in the same
transactions as the payments themselves: it is the one item every payment change conditions on."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..models import Order, OrderItem, PaymentRef
from ..records import OrderRecord
from . import contract


def encode(order: Order) -> dict[str, Any]:
    return {
        "id": order.id,
        "user": order.user,
        "shipping_address": order.shipping_address,
        "shipping": order.shipping or None,
        "status": str(order.status),
        "total_price": order.total_price,
        "currency": order.currency,
        "items": [encode_item(item) for item in order.items],
        "created_at": order.created_at,
        "updated_at": order.updated_at,
        "origin": str(order.origin),
        "stock_reserved": order.stock_reserved,
        "payments": {str(pid): encode_ref(ref) for pid, ref in order.payments.items()},
        "completed_payment": order.completed_payment,
        "completed_transaction": order.completed_transaction,
    }


def encode_item(item: OrderItem) -> dict[str, Any]:
    record: dict[str, Any] = {"variant": item.variant, "quantity": item.quantity, "price": item.price}
    if item.sku:
        record["sku"] = item.sku
    if item.name:
        record["name"] = item.name
    return record


def encode_ref(ref: PaymentRef) -> dict[str, str]:
    return {"method": str(ref.method), "status": str(ref.status)}


def payments_changed(order: Order, changed: Mapping[int, PaymentRef]) -> tuple[dict[str, Any], list[Any]]:
    """The SET entries recording `changed` in the order's map of its payments, and the condition that
    the map still lists as many payments as read (so a concurrently added payment is never lost)."""
    if order.payments:
        entries = {f"payments.{pid}": encode_ref(ref) for pid, ref in changed.items()}
        return entries, [("payments", "size=", len(order.payments))]
    return {"payments": {str(pid): encode_ref(ref) for pid, ref in changed.items()}}, [("payments", "empty", None)]


def decode(item: Mapping[str, Any]) -> Order:
    """An order through its contract (records.py): one that breaks it raises UnreadableRecord."""
    record = contract.read(OrderRecord, "OrdersTable", "id", item)
    return Order(
        id=record.id,
        user=record.user,
        shipping_address=record.shipping_address,
        status=record.status,
        total_price=record.total_price,
        currency=record.currency,
        items=tuple(
            OrderItem(line.variant, line.quantity, line.price, line.sku or "", line.name or "") for line in record.items
        ),
        created_at=record.created_at,
        updated_at=record.updated_at or record.created_at,
        origin=record.origin,
        stock_reserved=record.stock_reserved,
        payments={int(pid): PaymentRef(ref.method, ref.status) for pid, ref in record.payments.items()},
        completed_payment=record.completed_payment,
        completed_transaction=record.completed_transaction,
        shipping=dict(record.shipping or {}),
    )
