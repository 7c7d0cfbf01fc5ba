"""Tables the platform's other services write: product variants, shipping addresses, carts.

Their item shapes are the seed file's records, field for field (the documented data contract).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from decimal import Decimal
from typing import Any

from ..models import Address, Cart, CartItem, Variant
from .dynamo import from_item


def encode_variant(variant: Variant) -> dict[str, Any]:
    return asdict(variant)


def decode_variant(item: Mapping[str, Any]) -> Variant | None:
    """None for a stub without a sku (stock returned to a variant that was since deleted)."""
    record = from_item(item)
    if "sku" not in record:
        return None
    return Variant(
        id=int(record["id"]),
        sku=str(record["sku"]),
        name=str(record.get("name", record["sku"])),
        price=Decimal(record["price"]),
        stock=int(record.get("stock", 0)),
        is_active=bool(record.get("is_active", False)),
    )


def encode_address(address: Address) -> dict[str, Any]:
    return asdict(address)


def decode_address(item: Mapping[str, Any]) -> Address:
    record = from_item(item)
    return Address(
        id=int(record["id"]),
        user=int(record["user"]),
        full_name=str(record.get("full_name", "")),
        phone=str(record.get("phone", "")),
        address_line=str(record.get("address_line", "")),
        city=str(record.get("city", "")),
        postal_code=str(record.get("postal_code", "")),
        country=str(record.get("country", "")),
    )


def encode_cart(cart: Cart) -> dict[str, Any]:
    return {"user": cart.user, "items": [{"variant": i.variant, "quantity": i.quantity} for i in cart.items]}


def decode_cart(item: Mapping[str, Any]) -> Cart:
    """The platform's cart: `items` a list of `{"variant": <id>, "quantity": <number>}`. A cart in
    any other shape is `unreadable` (checkout refuses it) rather than read by guessing: a line
    without a variant, a variant that is not a positive whole number (`"1"`, `1.5`), a quantity
    that is not a number (`"2"`). A quantity that is a number but not a whole positive one reads as
    0, which checkout refuses naming the product."""
    record = from_item(item)
    raw = record.get("items") or []
    lines = _lines(raw)
    return Cart(user=int(record["user"]), items=lines or (), raw_items=raw, unreadable=lines is None)


def _lines(raw: Any) -> tuple[CartItem, ...] | None:
    if not isinstance(raw, list):
        return None
    lines = []
    for line in raw:
        variant = line.get("variant") if isinstance(line, dict) else None
        quantity = line.get("quantity") if isinstance(line, dict) else None
        if not isinstance(variant, Decimal) or not _positive_whole(variant) or not isinstance(quantity, Decimal):
            return None
        lines.append(CartItem(variant=int(variant), quantity=_whole(quantity)))
    return tuple(lines)


def _positive_whole(value: Decimal) -> bool:
    return value.is_finite() and value == value.to_integral_value() and value >= 1


def _whole(value: Decimal) -> int:
    """Quantities written by other services: anything but a whole number reads as 0 (invalid)."""
    return int(value) if value.is_finite() and value == value.to_integral_value() else 0
