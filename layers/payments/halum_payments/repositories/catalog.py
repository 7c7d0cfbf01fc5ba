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
    record = from_item(item)
    raw = record.get("items") or []
    return Cart(
        user=int(record["user"]),
        items=tuple(CartItem(variant=int(i["variant"]), quantity=_whole(i.get("quantity"))) for i in raw),
        raw_items=raw,
    )


def _whole(value: Any) -> int:
    """Quantities written by other services: anything but a whole number reads as 0 (invalid)."""
    try:
        number = Decimal(str(value))
    except ArithmeticError:
        return 0
    return int(number) if number.is_finite() and number == number.to_integral_value() else 0
