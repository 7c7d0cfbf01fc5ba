"""Orders table. An order also lists its payments (method and status), updated in the same
transactions as the payments themselves: it is the one item every payment change conditions on."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from ..models import Order, OrderItem, OrderOrigin, OrderStatus, PaymentMethod, PaymentRef, PaymentStatus
from .dynamo import from_item


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
    record = from_item(item)
    payments = record.get("payments") or {}
    completed = record.get("completed_payment")
    address = record.get("shipping_address")
    return Order(
        id=int(record["id"]),
        user=int(record["user"]),
        shipping_address=int(address) if address is not None else None,
        status=OrderStatus(record["status"]),
        total_price=Decimal(record["total_price"]),
        currency=str(record.get("currency", "usd")),
        items=tuple(
            OrderItem(
                variant=int(i["variant"]),
                quantity=int(i["quantity"]),
                price=Decimal(i["price"]),
                sku=str(i.get("sku", "")),
                name=str(i.get("name", "")),
            )
            for i in record.get("items") or []
        ),
        created_at=record["created_at"],
        updated_at=record.get("updated_at", record["created_at"]),
        origin=OrderOrigin(record.get("origin", OrderOrigin.PLATFORM)),
        stock_reserved=bool(record.get("stock_reserved", False)),
        payments={
            int(pid): PaymentRef(PaymentMethod(ref["method"]), PaymentStatus(ref["status"]))
            for pid, ref in payments.items()
        },
        completed_payment=int(completed) if completed is not None else None,
        completed_transaction=record.get("completed_transaction"),
        shipping=dict(record.get("shipping") or {}),
    )

