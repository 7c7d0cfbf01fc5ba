"""Payments table: each user's payments under their own partition (`user`, `id`).

- A user's list is a Query of their partition (by id) or of the local index `user-created` (by
  creation): strongly consistent, so a payment is listed as soon as it is written, and another
  user's payment cannot be read by construction. Status and method filters are a FilterExpression:
  a user's payments are few.
- The sparse global index `open-created` holds Stripe payments while they are open, by age
  (reconciliation), and superseded ones until their Checkout Session is known closed.
So a payment write touches at most two index entries: its `user-created` entry and, while a Stripe
payment is open or when it closes, its `open-created` entry.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from datetime import datetime
from decimal import Decimal
from typing import Any

from ..clock import format_timestamp, sortable
from ..logic.listing import PageQuery
from ..logic.rules import OPEN_STATUSES
from ..models import Payment, PaymentMethod, PaymentStatus
from .dynamo import TableRepository, to_attr, to_item

CREATED_INDEX = "user-created"
OPEN_INDEX = "open-created"  # sparse: Stripe payments still open (or whose session may be), by age

_METHODS = {method.value: method for method in PaymentMethod}
_STATUSES = {status.value: status for status in PaymentStatus}


def key(user: int, payment_id: int) -> dict[str, Any]:
    return {"user": user, "id": payment_id}


def sort_key(created_at: str, payment_id: int) -> str:
    return f"{sortable(created_at)}#{payment_id:019d}"


def open_method(method: PaymentMethod, status: PaymentStatus) -> str | None:
    """The sparse open index's key: set while a Stripe payment is open, absent otherwise."""
    return method.value if method == PaymentMethod.STRIPE and status in OPEN_STATUSES else None


def encode(payment: Payment) -> dict[str, Any]:
    return {
        **asdict(payment),
        "created_sort": sort_key(payment.created_at, payment.id),
        "open_method": open_method(payment.method, payment.status),
    }


def decode(item: Mapping[str, Any]) -> Payment:
    """A payment from its item as DynamoDB returns it (the one way items become payments). Read
    field by field: a list page decodes a hundred of them, most of a list request's own work."""
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
        transaction_id=_text(item, "transaction_id"),
        created_at=item["created_at"]["S"],
        updated_at=item["updated_at"]["S"],
        checkout_session_id=_text(item, "checkout_session_id"),
        checkout_url=_text(item, "checkout_url"),
        checkout_expires_at=int(expires["N"]) if expires is not None and "N" in expires else None,
        checkout_key=_text(item, "checkout_key"),
    )


def _text(item: Mapping[str, Any], name: str) -> str | None:
    value = item.get(name)
    return None if value is None else value.get("S")  # absent or {"NULL": true}


class PaymentsRepository(TableRepository):
    def get(self, user: int, payment_id: int) -> Payment | None:
        response = self.client.get_item(TableName=self.table, Key=to_item(key(user, payment_id)), ConsistentRead=True)
        item = response.get("Item")
        return decode(item) if item else None

    def page(self, query: PageQuery) -> tuple[list[Payment], dict[str, Any] | None]:
        """Up to `query.limit` of the user's payments matching its filters, in id (or creation)
        order, strictly after its `after` position; and, when DynamoDB stopped before `limit`
        matches (its 1 MB page), the position to go on from."""
        user, limit = query.user, query.limit
        names = {"#u": "user"}
        values = {":u": to_attr(user)}
        filters = []
        for name, value in (("status", query.status), ("method", query.method)):
            if value is not None:
                names[f"#{name}"], values[f":{name}"] = name, to_attr(value)
                filters.append(f"#{name} = :{name}")
        request: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "#u = :u",
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
            "ScanIndexForward": query.ascending,
            "ConsistentRead": True,
        }
        if query.by_created:
            request["IndexName"] = CREATED_INDEX
        if filters:
            # DynamoDB limits what it reads before filtering: read on (to its 1 MB page) instead.
            request["FilterExpression"] = " AND ".join(filters)
        else:
            request["Limit"] = limit
        if query.after is not None:
            request["ExclusiveStartKey"] = to_item({"user": user, **query.after})
        response = self.client.query(**request)
        payments = [decode(item) for item in response.get("Items", [])[:limit]]
        stopped = response.get("LastEvaluatedKey") if len(payments) < limit else None
        return payments, (self._position(stopped) if stopped else None)

    @staticmethod
    def _position(last: Mapping[str, Any]) -> dict[str, Any]:
        """A LastEvaluatedKey as a list position (without the user, which the caller knows)."""
        position: dict[str, Any] = {"id": int(last["id"]["N"])}
        if "created_sort" in last:
            position["created_sort"] = last["created_sort"]["S"]
        return position

    @staticmethod
    def list_position(payment: Payment, by_created: bool) -> dict[str, Any]:
        """Where a list resumes right after `payment`."""
        position: dict[str, Any] = {"id": payment.id}
        if by_created:
            position["created_sort"] = sort_key(payment.created_at, payment.id)
        return position

    def open_stripe_before(
        self, cutoff: datetime, *, limit: int, after: Mapping[str, Any] | None
    ) -> tuple[list[Payment], dict[str, Any] | None]:
        """Open Stripe payments created before the cutoff, oldest first (reconciliation)."""
        request: dict[str, Any] = {
            "TableName": self.table,
            "IndexName": OPEN_INDEX,
            "KeyConditionExpression": "#m = :m AND #s < :cutoff",
            "ExpressionAttributeNames": {"#m": "open_method", "#s": "created_sort"},
            "ExpressionAttributeValues": {
                ":m": to_attr(PaymentMethod.STRIPE.value),
                ":cutoff": to_attr(sortable(format_timestamp(cutoff))),
            },
            "Limit": limit,
        }
        if after:
            request["ExclusiveStartKey"] = to_item(after)
        response = self.client.query(**request)
        payments = [decode(item) for item in response.get("Items", [])]
        last = response.get("LastEvaluatedKey")
        return payments, (_open_position(last) if last else None)

    @staticmethod
    def position(payment: Payment) -> dict[str, Any]:
        """The open index's key of `payment`: where `open_stripe_before` resumes after it."""
        return {
            "user": payment.user,
            "id": payment.id,
            "open_method": PaymentMethod.STRIPE.value,
            "created_sort": sort_key(payment.created_at, payment.id),
        }


def _open_position(last: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "user": int(last["user"]["N"]),
        "id": int(last["id"]["N"]),
        "open_method": last["open_method"]["S"],
        "created_sort": last["created_sort"]["S"],
    }
