"""Checkout requests' Idempotency-Keys, claimed in the very transaction that places what they asked
for, so a committed checkout and its key can never part. Kept in the idempotency table beside
Powertools' records (whose ids look otherwise), expiring through its TTL attribute `expiration`.
DynamoDB deletes an expired item within days, not at once, and reads and writes still see it until
then (AWS: "Working with expired items"): so a claim past its `expiration` is read as no claim and
may be claimed again, and a key names its checkout for exactly its lifetime (docs/api.md: 24 h)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from ..logic.placing import KeyedCheckout
from ..models import Payment, RequestKey
from .dynamo import from_item, put_request, to_item


def item_key(key: RequestKey) -> dict[str, str]:
    # Hashed: the key is the caller's text (up to 255 characters, anything printable).
    return {"id": f"checkout#{key.user}#{hashlib.sha256(key.key.encode()).hexdigest()}"}


def claim(table: str, key: RequestKey, payment: Payment) -> dict[str, Any]:
    record = {
        **item_key(key),
        "order": payment.order,
        "payment": payment.id,
        "request": key.request,
        "expiration": key.expires_at,
    }
    # No claim, or an expired one (items without `expiration` do not exist here: every claim has one).
    return put_request(table, record, condition=[("expiration", "unset_or<=", key.issued_at)])


def forget(table: str, key: RequestKey) -> dict[str, Any]:
    """Delete request for a claim whose checkout was given back: the same key may try again."""
    return {"TableName": table, "Key": to_item(item_key(key))}


def decode(item: Mapping[str, Any], key: RequestKey) -> KeyedCheckout | None:
    """The checkout the claim names, unless the claim had expired when `key`'s request came."""
    record = from_item(item)
    if int(record["expiration"]) <= key.issued_at:
        return None
    return KeyedCheckout(order=int(record["order"]), payment=int(record["payment"]), request=str(record["request"]))
