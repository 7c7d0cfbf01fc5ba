"""Counters table: integer id sequences and each user's payment counts.

Ids come from blocks (hi/lo): an execution environment reserves BLOCK ids at a time with one
atomic `ADD` on the sequence item, outside any transaction, and hands them out itself. No
checkout transaction writes a sequence item, so concurrent checkouts never conflict on one.
Ids stay integers, unique (each block is reserved once); gaps are fine (an environment that
ends leaves the rest of its block unused, a resent reservation skips a block).
"""

from __future__ import annotations

import threading
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


class IdBlocks(TableRepository):
    """Hands out the ids of blocks reserved for this environment (one instance per store)."""

    BLOCK = 10

    def __init__(self, table: str, client: Any = None) -> None:
        super().__init__(table, client)
        self._free: dict[str, range] = {}
        self._lock = threading.Lock()  # tests run environments as threads of one process

    def next(self, sequence: str) -> int:
        with self._lock:
            free = self._free.get(sequence)
            if not free:
                free = self._reserve(sequence)
            self._free[sequence] = free[1:]
            return free[0]

    def _reserve(self, sequence: str) -> range:
        response = self.client.update_item(
            TableName=self.table,
            Key={"name": {"S": sequence}},
            UpdateExpression="ADD #v :block",
            ExpressionAttributeNames={"#v": "value"},
            ExpressionAttributeValues={":block": {"N": str(self.BLOCK)}},
            ReturnValues="UPDATED_NEW",
        )
        last = int(response["Attributes"]["value"]["N"])
        return range(last - self.BLOCK + 1, last + 1)


class CountersRepository(TableRepository):
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
