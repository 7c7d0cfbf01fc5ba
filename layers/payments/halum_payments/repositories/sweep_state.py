"""Where the reconciliation sweep stopped, so the next run resumes there (counters table)."""

from __future__ import annotations

from typing import Any

from .dynamo import TableRepository, from_item, to_attr

SWEEP_CURSOR = "reconciliation#cursor"


class SweepStateRepository(TableRepository):
    def load(self) -> dict[str, Any] | None:
        response = self.client.get_item(TableName=self.table, Key={"name": {"S": SWEEP_CURSOR}}, ConsistentRead=True)
        item = from_item(response.get("Item") or {})
        cursor = item.get("cursor")
        if not isinstance(cursor, dict):
            return None
        return {
            "user": int(cursor["user"]),
            "id": int(cursor["id"]),
            "open_method": cursor["open_method"],
            "created_sort": cursor["created_sort"],
        }

    def save(self, cursor: dict[str, Any] | None) -> None:
        if cursor is None:
            self.client.delete_item(TableName=self.table, Key={"name": {"S": SWEEP_CURSOR}})
        else:
            self.client.put_item(TableName=self.table, Item={"name": {"S": SWEEP_CURSOR}, "cursor": to_attr(cursor)})
