"""Where the reconciliation sweep stopped, so the next run resumes there (counters table): its
place in the open index, and how far it has read Stripe's event log."""

from __future__ import annotations

from typing import Any

from .dynamo import TableRepository, from_item, to_attr

SWEEP_CURSOR = "reconciliation#cursor"
EVENTS_CURSOR = "reconciliation#events"


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

    def events_read_before(self) -> int | None:
        """Every Stripe event created before this time (epoch seconds) has been applied."""
        response = self.client.get_item(TableName=self.table, Key={"name": {"S": EVENTS_CURSOR}}, ConsistentRead=True)
        item = from_item(response.get("Item") or {})
        created = item.get("before")
        return int(created) if created is not None else None

    def save_events_read_before(self, created: int) -> None:
        self.client.put_item(TableName=self.table, Item={"name": {"S": EVENTS_CURSOR}, "before": {"N": str(created)}})
