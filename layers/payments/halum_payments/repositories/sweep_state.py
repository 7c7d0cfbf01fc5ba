"""The reconciliation sweep's own items in the counters table: where the last run stopped in the
open index and how far it has read Stripe's event log, so the next resumes there, and the lease
that keeps two sweeps from running at once."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from .dynamo import TableRepository, from_item, is_condition_failure, to_attr

SWEEP_CURSOR = "reconciliation#cursor"
EVENTS_CURSOR = "reconciliation#events"
SWEEP_LEASE = "reconciliation#lease"


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

    def acquire(self, holder: str, *, now: int, until: int) -> bool:
        """Take the lease for `holder` until the epoch second `until`, unless another holder's lease
        is still running at `now` (one conditional write: of two sweeps at once, exactly one wins).
        The holder's own lease counts as free: botocore resends the write when its answer is lost,
        and the resend must not find the first one "held by another"."""
        try:
            self.client.put_item(
                TableName=self.table,
                Item={"name": {"S": SWEEP_LEASE}, "holder": {"S": holder}, "expires_at": {"N": str(until)}},
                ConditionExpression="attribute_not_exists(#name) OR #expires <= :now OR #holder = :holder",
                ExpressionAttributeNames={"#name": "name", "#expires": "expires_at", "#holder": "holder"},
                ExpressionAttributeValues={":now": {"N": str(now)}, ":holder": {"S": holder}},
            )
        except ClientError as exc:
            if is_condition_failure(exc):
                return False
            raise
        return True

    def release(self, holder: str) -> None:
        """Give the lease back, if it is still `holder`'s (an expired one may be another's by now)."""
        try:
            self.client.delete_item(
                TableName=self.table,
                Key={"name": {"S": SWEEP_LEASE}},
                ConditionExpression="#holder = :holder",
                ExpressionAttributeNames={"#holder": "holder"},
                ExpressionAttributeValues={":holder": {"S": holder}},
            )
        except ClientError as exc:
            if not is_condition_failure(exc):
                raise
