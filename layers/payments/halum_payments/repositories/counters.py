"""Counters table: integer id sequences and each user's payment counts.

Ids are allocated inside the caller's transaction: read the sequence, then write
`value = read + 1` on the condition that it is still `read`. A racing writer makes the
transaction fail cleanly and the caller retries with a fresh read.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from botocore.exceptions import ClientError

from .dynamo import TableRepository, from_item, is_condition_failure, update_request

ORDER_SEQUENCE = "sequence#order"
PAYMENT_SEQUENCE = "sequence#payment"


def user_payments_key(user: int) -> str:
    return f"payments#user#{user}"


def count_attribute(status: str | None, method: str | None) -> str:
    """The counter that answers a list's `count` for this filter combination."""
    if status and method:
        return f"status#{status}#method#{method}"
    if status:
        return f"status#{status}"
    if method:
        return f"method#{method}"
    return "all"


def created_deltas(status: str, method: str) -> dict[str, int]:
    return {
        "all": 1,
        f"status#{status}": 1,
        f"method#{method}": 1,
        f"status#{status}#method#{method}": 1,
    }


def transition_deltas(old: str, new: str, method: str) -> dict[str, int]:
    return {
        f"status#{old}": -1,
        f"status#{new}": 1,
        f"status#{old}#method#{method}": -1,
        f"status#{new}#method#{method}": 1,
    }


def merge_deltas(deltas: Iterable[dict[str, int]]) -> dict[str, int]:
    total: dict[str, int] = {}
    for delta in deltas:
        for name, amount in delta.items():
            total[name] = total.get(name, 0) + amount
    return {name: amount for name, amount in total.items() if amount}


class CountersRepository(TableRepository):
    def sequence_keys(self) -> list[dict[str, str]]:
        return [{"name": ORDER_SEQUENCE}, {"name": PAYMENT_SEQUENCE}]

    def payment_count(self, user: int, status: str | None, method: str | None) -> int:
        attribute = count_attribute(status, method)
        response = self.client.get_item(
            TableName=self.table,
            Key={"name": {"S": user_payments_key(user)}},
            ProjectionExpression="#c",
            ExpressionAttributeNames={"#c": attribute},
            ConsistentRead=True,
        )
        item = from_item(response.get("Item") or {})
        return max(int(item.get(attribute, 0)), 0)

    def sequence_value(self, items: list[dict[str, Any]], name: str) -> int:
        return next((int(i.get("value", 0)) for i in items if i.get("name") == name), 0)

    def allocate(self, name: str, current: int, count: int = 1) -> dict[str, Any]:
        """Transaction item claiming ids current+1..current+count (fails if another writer moved it)."""
        condition = "#v = :current" if current else "attribute_not_exists(#v) OR #v = :current"
        return {
            "Update": {
                "TableName": self.table,
                "Key": {"name": {"S": name}},
                "UpdateExpression": "SET #v = :next",
                "ConditionExpression": condition,
                "ExpressionAttributeNames": {"#v": "value"},
                "ExpressionAttributeValues": {":current": {"N": str(current)}, ":next": {"N": str(current + count)}},
            }
        }

    def adjust_payment_counts(self, user: int, deltas: dict[str, int]) -> dict[str, Any] | None:
        if not deltas:
            return None
        return {"Update": update_request(self.table, {"name": user_payments_key(user)}, add=deltas)}

    def raise_sequence_to(self, name: str, value: int) -> None:
        """Seeding: make the sequence continue after the largest seeded id."""
        try:
            self.client.update_item(
                TableName=self.table,
                Key={"name": {"S": name}},
                UpdateExpression="SET #v = :v",
                ConditionExpression="attribute_not_exists(#v) OR #v < :v",
                ExpressionAttributeNames={"#v": "value"},
                ExpressionAttributeValues={":v": {"N": str(value)}},
            )
        except ClientError as exc:
            if not is_condition_failure(exc):
                raise
