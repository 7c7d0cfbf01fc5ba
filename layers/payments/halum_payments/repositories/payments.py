"""Payments table: items, the listing indexes and their keys."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from ..clock import format_timestamp, sortable
from ..models import OPEN_STATUSES, Payment, PaymentMethod, PaymentRow, PaymentStatus
from ..money import format_amount
from .dynamo import TableRepository, from_item, to_attr, to_item

Ordering = Literal["id", "-id", "created_at", "-created_at"]

# One index per (filter, sort) pair keeps every list page a single Query of exactly the
# caller's rows, whatever the filters: no FilterExpression, so no short or empty pages.
PARTITIONS = {
    (False, False): "user",
    (True, False): "user_status",
    (False, True): "user_method",
    (True, True): "user_status_method",
}
SORTS = {"id": "id", "created_at": "created_sort"}
OPEN_INDEX = "open-created"  # sparse: Stripe payments still pending/processing, by age


def index_name(partition_attr: str, sort_attr: str) -> str:
    return f"{partition_attr}-{'id' if sort_attr == 'id' else 'created'}"


def partition_value(user: int, status: str | None, method: str | None) -> tuple[str, Any]:
    attr = PARTITIONS[(status is not None, method is not None)]
    if attr == "user":
        return attr, user
    return attr, "#".join(str(part) for part in (user, status, method) if part is not None)


def sort_key(created_at: str, payment_id: int) -> str:
    return f"{sortable(created_at)}#{payment_id:019d}"


def index_attributes(payment_id: int, user: int, status: str, method: str, created_at: str) -> dict[str, Any]:
    """The derived attributes the indexes read; rewritten whenever status changes."""
    return {
        "user_status": f"{user}#{status}",
        "user_method": f"{user}#{method}",
        "user_status_method": f"{user}#{status}#{method}",
        "created_sort": sort_key(created_at, payment_id),
        "open_method": method if (method == PaymentMethod.STRIPE and status in OPEN_STATUSES) else None,
    }


def status_attributes(payment: Payment, status: PaymentStatus) -> tuple[dict[str, Any], list[str]]:
    """(SET, REMOVE) that move a payment's index attributes to `status`."""
    attributes = index_attributes(payment.id, payment.user, status, payment.method, payment.created_at)
    keep = {k: v for k, v in attributes.items() if v is not None and k not in {"created_sort", "user_method"}}
    remove = [k for k, v in attributes.items() if v is None]
    return keep, remove


def encode(payment: Payment) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": payment.id,
        "order": payment.order,
        "user": payment.user,
        "amount": payment.amount,
        "currency": payment.currency,
        "method": str(payment.method),
        "status": str(payment.status),
        "transaction_id": payment.transaction_id,
        "created_at": payment.created_at,
        "updated_at": payment.updated_at,
        "checkout_session_id": payment.checkout_session_id,
        "checkout_url": payment.checkout_url,
        "checkout_expires_at": payment.checkout_expires_at,
        "checkout_key": payment.checkout_key,
    }
    record.update(index_attributes(payment.id, payment.user, payment.status, payment.method, payment.created_at))
    return record


def decode(record: Mapping[str, Any]) -> Payment:
    expires = record.get("checkout_expires_at")
    return Payment(
        id=int(record["id"]),
        order=int(record["order"]),
        user=int(record["user"]),
        amount=Decimal(record["amount"]),
        currency=str(record.get("currency", "usd")),
        method=PaymentMethod(record["method"]),
        status=PaymentStatus(record["status"]),
        transaction_id=record.get("transaction_id"),
        created_at=record["created_at"],
        updated_at=record["updated_at"],
        checkout_session_id=record.get("checkout_session_id"),
        checkout_url=record.get("checkout_url"),
        checkout_expires_at=int(expires) if expires is not None else None,
        checkout_key=record.get("checkout_key"),
    )


_METHODS = {method.value: method for method in PaymentMethod}
_STATUSES = {status.value: status for status in PaymentStatus}
_METHOD_TEXT = {method.value: method.value for method in PaymentMethod}
_STATUS_TEXT = {status.value: status.value for status in PaymentStatus}


def decode_item(item: Mapping[str, Any]) -> Payment:
    """`decode(from_item(item))` in one step, for items as DynamoDB returns them: a page of 100
    decodes in half the time, which is most of a list request's own work."""
    expires = item.get("checkout_expires_at")
    currency = item.get("currency")
    return Payment(
        id=int(item["id"]["N"]),
        order=int(item["order"]["N"]),
        user=int(item["user"]["N"]),
        amount=Decimal(item["amount"]["N"]),
        currency=currency["S"] if currency is not None else "usd",
        method=_METHODS[item["method"]["S"]],
        status=_STATUSES[item["status"]["S"]],
        transaction_id=_optional_text(item, "transaction_id"),
        created_at=item["created_at"]["S"],
        updated_at=item["updated_at"]["S"],
        checkout_session_id=_optional_text(item, "checkout_session_id"),
        checkout_url=_optional_text(item, "checkout_url"),
        checkout_expires_at=int(expires["N"]) if expires is not None and "N" in expires else None,
        checkout_key=_optional_text(item, "checkout_key"),
    )


def api_row(item: Mapping[str, Any]) -> PaymentRow:
    """The API's view of a stored payment, read straight from its DynamoDB item: the list's rows."""
    return {
        "id": int(item["id"]["N"]),
        "order": int(item["order"]["N"]),
        "user": int(item["user"]["N"]),
        "amount": format_amount(Decimal(item["amount"]["N"])),
        "method": _METHOD_TEXT[item["method"]["S"]],  # an unknown value fails here, as in decode_item
        "status": _STATUS_TEXT[item["status"]["S"]],
        "transaction_id": _optional_text(item, "transaction_id"),
        "created_at": item["created_at"]["S"],
        "updated_at": item["updated_at"]["S"],
    }


def _optional_text(item: Mapping[str, Any], name: str) -> str | None:
    value = item.get(name)
    return None if value is None else value.get("S")  # absent or {"NULL": true}


class PaymentsRepository(TableRepository):
    def get(self, payment_id: int) -> Payment | None:
        response = self.client.get_item(TableName=self.table, Key={"id": {"N": str(payment_id)}}, ConsistentRead=True)
        item = response.get("Item")
        return decode_item(item) if item else None

    def page(
        self,
        *,
        user: int,
        status: str | None,
        method: str | None,
        sort_attr: str,
        ascending: bool,
        after: Mapping[str, Any] | None,
        limit: int,
    ) -> tuple[list[PaymentRow], bool]:
        """Up to `limit` of the user's payments in index order (as the API shows them), strictly after
        the `after` anchor, and whether DynamoDB stopped early (its 1 MB page limit) with rows still
        to come."""
        partition_attr, partition = partition_value(user, status, method)
        request: dict[str, Any] = {
            "TableName": self.table,
            "IndexName": index_name(partition_attr, sort_attr),
            "KeyConditionExpression": "#p = :p",
            "ExpressionAttributeNames": {"#p": partition_attr},
            "ExpressionAttributeValues": {":p": to_attr(partition)},
            "ScanIndexForward": ascending,
            "Limit": limit,
        }
        if after is not None:
            start = {"id": after["id"], partition_attr: partition, sort_attr: after[sort_attr]}
            request["ExclusiveStartKey"] = to_item(start)
        response = self.client.query(**request)
        rows = [api_row(item) for item in response.get("Items", [])]
        return rows, len(rows) < limit and "LastEvaluatedKey" in response

    def open_stripe_before(
        self, cutoff: datetime, *, limit: int, after: Mapping[str, Any] | None
    ) -> tuple[list[Payment], dict[str, Any] | None]:
        """Open Stripe payments created before the cutoff, oldest first (reconciliation)."""
        cutoff_sort_key = sortable(format_timestamp(cutoff))
        request: dict[str, Any] = {
            "TableName": self.table,
            "IndexName": OPEN_INDEX,
            "KeyConditionExpression": "#m = :m AND #s < :cutoff",
            "ExpressionAttributeNames": {"#m": "open_method", "#s": "created_sort"},
            "ExpressionAttributeValues": {":m": to_attr("stripe"), ":cutoff": to_attr(cutoff_sort_key)},
            "Limit": limit,
        }
        if after:
            request["ExclusiveStartKey"] = to_item(after)
        response = self.client.query(**request)
        payments = [decode_item(item) for item in response.get("Items", [])]
        last = response.get("LastEvaluatedKey")
        return payments, (from_item(last) if last else None)

    @staticmethod
    def position(payment: Payment) -> dict[str, Any]:
        """The open index's key of `payment`: where `open_stripe_before` resumes after it."""
        return {"id": payment.id, "open_method": "stripe", "created_sort": sort_key(payment.created_at, payment.id)}

    def put_item_request(self, payment: Payment) -> dict[str, Any]:
        return {"TableName": self.table, "Item": to_item(encode(payment))}
