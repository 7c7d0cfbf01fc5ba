"""The domain events the shop receives, derived from what a money transaction committed.

Every change of a payment and every fact about its money is an audit row written inside the
transaction that makes it (docs/money.md, the books contract), so the audit table is the outbox:
its stream gives each committed row once or more, in order per payment, and this module says which
events a row means. Pure: a row (as its NEW_IMAGE decodes) in, events out; no I/O. docs/events.md
lists every event with its schema (schemas/events/<detail-type>.v1.json).

Identity and order, for consumers: `event_id` names the row and the event type, so a redelivered
row gives the same id (deduplicate on it); `sequence` is the row's sort key (its commit time,
sortable, with a unique suffix): per order, a larger one is a later change.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ..observability import logger

SOURCE = "halum.payments"
VERSION = 1
DETAIL_TYPES = (
    "order.placed",
    "order.paid",
    "order.cancelled",
    "payment.completed",
    "payment.failed",
    "payment.refunded",
    "payment.refund_needed",
    "payment.disputed",
)
DISPUTE_STEPS = {
    "dispute_opened": "opened",
    "dispute_funds_withdrawn": "funds_withdrawn",
    "dispute_funds_reinstated": "funds_reinstated",
    "dispute_won": "won",
    "dispute_lost": "lost",
}
MONEY_KEYS = ("provider", "transaction_id", "currency", "amount")
# The audit rows about money that no payment of ours holds (gateway money for an order paid
# another way, or cancelled, with no ONLINE payment to file it under) are filed under this payment
# id, which no payment has (ids start at 1): `Query payment = 0` lists them all. Defined here, not in
# settlement.py, so that the events function does not import the models (pydantic) for it.
NO_PAYMENT = 0


@dataclass(frozen=True, slots=True)
class DomainEvent:
    detail_type: str
    detail: dict[str, Any]
    time: str  # when the change was committed (the row's recorded_at)

    @property
    def event_id(self) -> str:
        return str(self.detail["event_id"])


def events_for(row: Mapping[str, Any]) -> list[DomainEvent]:
    """The events one committed audit row means (none for rows the shop does not act on:
    a payment created on an existing order, processing, mismatches held for an operator)."""
    reason = row.get("reason")
    before, after = row.get("from"), row.get("to")
    found: list[tuple[str, dict[str, Any]]] = []
    if row.get("order_to") and before is None and reason == "created" and row.get("source") == "checkout":
        found.append(("order.placed", {"status": row["order_to"], "payment_status": after}))
    if after == "completed" and before != "completed":
        found.append(("payment.completed", {"from": before}))
        # Completing a payment records it as the order's one completed payment, in that transaction.
        found.append(("order.paid", {}))
    if after == "failed" and before != "failed":
        found.append(("payment.failed", {"from": before, "reason": reason}))
    if row.get("order_to") == "cancelled":
        found.append(("order.cancelled", {"reason": reason}))
    found.extend(_money_events(row))
    return [_event(row, detail_type, extra) for detail_type, extra in found]


def _money_events(row: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    reason, details = row.get("reason"), row.get("details") or {}
    money = {key: str(details[key]) for key in MONEY_KEYS if key in details}
    if row.get("to") == "refunded" and row.get("from") != "refunded":
        refunded = details.get("refunded", money.get("amount"))
        return [("payment.refunded", {**money, "refunded": str(refunded), "full": True})]
    if reason == "partial_refund":
        return [("payment.refunded", {**money, "refunded": str(details.get("refunded")), "full": False})]
    if reason == "needs_refund":
        return [("payment.refund_needed", {**money, **_session(details)})]
    if reason in DISPUTE_STEPS:
        return [("payment.disputed", {**money, "dispute": details.get("dispute"), "step": DISPUTE_STEPS[reason]})]
    return []


def _session(details: Mapping[str, Any]) -> dict[str, Any]:
    return {"session": details["session"]} if details.get("session") else {}


def _event(row: Mapping[str, Any], detail_type: str, extra: dict[str, Any]) -> DomainEvent:
    payment = int(row["payment"])
    detail = {
        "version": VERSION,
        "event_id": f"{payment}/{row['at']}/{detail_type}",
        "sequence": str(row["at"]),
        "occurred_at": str(row["recorded_at"]),
        "order": int(row["order"]),
        "payment": payment if payment != NO_PAYMENT else None,
        "reported_by": row.get("source"),
        **extra,
    }
    return DomainEvent(detail_type, detail, str(row["recorded_at"]))


class Bus(Protocol):
    def publish(self, events: Sequence[DomainEvent]) -> None:
        """Put every event on the bus, or raise (nothing may be counted as sent that was refused)."""
        ...


class DomainEvents:
    """Publishes what one committed audit row means; a failure raises, so its record is retried."""

    def __init__(self, bus: Bus) -> None:
        self._bus = bus

    def committed(self, row: Mapping[str, Any]) -> list[DomainEvent]:
        events = events_for(row)
        self._bus.publish(events)
        if events:
            logger.info("domain events published", extra={"events": [e.event_id for e in events]})
        return events
