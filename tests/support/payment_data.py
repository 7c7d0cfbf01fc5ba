"""Seed data in volume for the read endpoints, the answers a caller should get, and link following."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from local import seed

STATUSES = ["pending", "processing", "completed", "failed", "refunded"]
METHODS = ["COD", "stripe", "ONLINE"]
ORDERINGS = ["id", "-id", "created_at", "-created_at"]
ISO_Z = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$"
PAYMENT_FIELDS = {"id", "order", "user", "amount", "method", "status", "transaction_id", "created_at", "updated_at"}

# The spec's two examples (payments-api.md), as the default seed serves them: payment 2 carries
# DEMO_TRANSACTION, not the spec's txn_123456789, because the spec's gateway example confirms order 1
# under that id and one gateway transaction settles at most one payment.
DEMO_TRANSACTION = "txn_987654321"
SPEC_PAYMENT_1 = {
    "id": 1,
    "order": 1,
    "user": 1,
    "amount": "1598.00",
    "method": "COD",
    "status": "pending",
    "transaction_id": None,
    "created_at": "2023-01-15T14:30:00Z",
    "updated_at": "2023-01-15T14:30:00Z",
}
SPEC_PAYMENT_2 = {
    "id": 2,
    "order": 2,
    "user": 1,
    "amount": "899.00",
    "method": "ONLINE",
    "status": "completed",
    "transaction_id": DEMO_TRANSACTION,
    "created_at": "2023-01-20T10:15:00Z",
    "updated_at": "2023-01-20T10:20:00Z",
}
SPEC_LIST = {"count": 2, "next": None, "previous": None, "results": [SPEC_PAYMENT_1, SPEC_PAYMENT_2]}


def volume_seed() -> dict[str, Any]:
    """37 payments: 25 of user 1 (every status x method pair, 10 of them twice), 6 each of users 2
    and 3, interleaved by id; every created_at distinct and NOT in id order (one with microseconds)."""
    base = datetime(2024, 3, 1, tzinfo=UTC)
    users = ([1, 1, 2, 1, 1, 3] * 7)[:37]
    running: dict[int, int] = {}
    orders, payments = [], []
    for payment_id, user in enumerate(users, start=1):
        k = running.get(user, 0)
        running[user] = k + 1
        status, method = STATUSES[k % 5], METHODS[k % 3]
        created = base + timedelta(hours=(payment_id * 17) % 37)  # a permutation of 0..36 hours
        if payment_id == 5:
            created += timedelta(microseconds=250000)
        amount = f"{100 + payment_id * 3}.{payment_id % 100:02d}"
        orders.append(
            {
                "id": payment_id,
                "user": user,
                "total_price": amount,
                "items": [{"variant": 1, "quantity": 1, "price": amount}],
                "created_at": _text(created),
            }
        )
        payments.append(
            {
                "id": payment_id,
                "order": payment_id,
                "user": user,
                "amount": amount,
                "method": method,
                "status": status,
                "transaction_id": f"txn_{payment_id:04d}" if status in ("completed", "refunded") else None,
                "created_at": _text(created),
                "updated_at": _text(created + timedelta(minutes=5)),
            }
        )
    return {
        "product_variants": [{"id": 1, "sku": "RUI-1KG", "name": "Rui Fish 1kg", "price": "1.00", "stock": 5}],
        "orders": orders,
        "payments": payments,
    }


def _text(moment: datetime) -> str:
    """DRF's rendering: microseconds only when there are some."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ" if moment.microsecond else "%Y-%m-%dT%H:%M:%SZ")


def apply_seed(data: dict[str, Any], directory: Path, client: Any, tables: dict[str, str]) -> None:
    """Write `data` as a seed file and load it exactly as `make run` would (validation included)."""
    path = directory / "seed.json"
    path.write_text(json.dumps(data))
    seed.apply(seed.load(path), client, tables)


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def expected_ids(
    data: dict[str, Any], user: int, ordering: str = "id", status: str | None = None, method: str | None = None
) -> list[int]:
    rows = [
        p
        for p in data["payments"]
        if p["user"] == user and status in (None, p["status"]) and method in (None, p["method"])
    ]
    field = ordering.lstrip("-")
    rows.sort(key=lambda p: (parse_time(p["created_at"]), p["id"]) if field == "created_at" else p["id"])
    if ordering.startswith("-"):
        rows.reverse()
    return [p["id"] for p in rows]


def split_link(url: str) -> tuple[str, str, str, dict[str, str]]:
    """(scheme, host, path, query params) of a next/previous link."""
    parts = urlsplit(url)
    return parts.scheme, parts.netloc, parts.path, dict(parse_qsl(parts.query, keep_blank_values=True))


def link_query(url: str) -> tuple[str, str]:
    """(path, raw query) to request a link again through the handler."""
    parts = urlsplit(url)
    return parts.path, parts.query


def bulk_seed(count: int, user: int = 1) -> dict[str, Any]:
    """`count` payments of one user (for the default page size of 100), plus one of user 2."""
    base = datetime(2024, 1, 1, tzinfo=UTC)
    owners = [user] * count + [2 if user != 2 else 3]
    orders, payments = [], []
    for payment_id, owner in enumerate(owners, start=1):
        created = _text(base + timedelta(minutes=payment_id))
        orders.append(
            {
                "id": payment_id,
                "user": owner,
                "total_price": "10.00",
                "items": [{"variant": 1, "quantity": 1, "price": "10.00"}],
                "created_at": created,
            }
        )
        payments.append(
            {
                "id": payment_id,
                "order": payment_id,
                "user": owner,
                "amount": "10.00",
                "method": "COD",
                "status": "pending",
                "transaction_id": None,
                "created_at": created,
                "updated_at": created,
            }
        )
    return {
        "product_variants": [{"id": 1, "sku": "RUI-1KG", "name": "Rui Fish 1kg", "price": "10.00", "stock": 5}],
        "orders": orders,
        "payments": payments,
    }
