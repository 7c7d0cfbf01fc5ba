"""Tables the platform's other services write: product variants, shipping addresses, carts.

Every record is read through its contract (records.py, checked in contract.py): one that breaks it
raises UnreadableRecord, never a guess.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

from ..models import Address, Cart, CartItem, Variant
from ..records import AddressRecord, CartRecord, VariantRecord
from . import contract
from .dynamo import from_attr

STUB = frozenset({"id", "stock"})  # what giving stock back leaves of a variant since deleted (ADD creates it)


def encode_variant(variant: Variant) -> dict[str, Any]:
    record = asdict(variant)
    del record["raw_price"]
    return record


def decode_variant(item: Mapping[str, Any]) -> Variant | None:
    """None for a stub (`id` and `stock` only: stock given back to a variant that was since deleted)."""
    if item.keys() <= STUB:
        return None
    record = contract.read(VariantRecord, "ProductVariantsTable", "id", item)
    return Variant(
        id=record.id,
        sku=record.sku,
        name=record.sku if record.name is None else record.name,
        price=record.price,
        stock=record.stock,
        is_active=record.is_active,
        raw_price=from_attr(item["price"]),
    )


def encode_address(address: Address) -> dict[str, Any]:
    return asdict(address)


def decode_address(item: Mapping[str, Any]) -> Address:
    record = contract.read(AddressRecord, "ShippingAddressesTable", "id", item)
    return Address(
        id=record.id,
        user=record.user,
        full_name=record.full_name,
        phone=record.phone,
        address_line=record.address_line,
        city=record.city,
        postal_code=record.postal_code,
        country=record.country,
    )


def encode_cart(cart: Cart) -> dict[str, Any]:
    return {"user": cart.user, "items": [{"variant": i.variant, "quantity": i.quantity} for i in cart.items]}


def decode_cart(item: Mapping[str, Any]) -> Cart:
    """The platform's cart: `items` a list of `{"variant": <id>, "quantity": <whole number >= 1>}`."""
    record = contract.read(CartRecord, "CartsTable", "user", item)
    raw = from_attr(item["items"]) if "items" in item else []  # compared verbatim when the cart is emptied
    return Cart(
        user=record.user,
        items=tuple(CartItem(line.variant, line.quantity) for line in record.items),
        raw_items=raw,
    )
