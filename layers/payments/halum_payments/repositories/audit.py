"""The audit table: one row per change of a payment and per fact about its money (docs/money.md)."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from ..clock import sortable

if TYPE_CHECKING:
    from ..logic.settlement import AuditEntry

# Audit rows someone must act on, listed by the sparse index `attention-at` (the runbook's queue):
# `Query attention = needs_refund` gives every captured amount to return, oldest first.
ATTENTION = frozenset({"needs_refund", "amount_mismatch", "mismatch", "dispute_opened", "dispute_lost"})


def audit_record(entry: AuditEntry) -> dict[str, Any]:
    record = {
        "payment": entry.payment_id,
        "at": f"{sortable(entry.at)}#{uuid.uuid4().hex[:12]}",
        "order": entry.order_id,
        "from": str(entry.from_status) if entry.from_status else None,
        "to": str(entry.to_status) if entry.to_status else None,
        "source": entry.source,
        "event_id": entry.event_id,
        "reason": entry.reason,
        "recorded_at": entry.at,
        "details": entry.details or None,
        "order_to": str(entry.order_to) if entry.order_to else None,  # placed, confirmed or cancelled by it
    }
    if entry.reason in ATTENTION:
        record["attention"] = entry.reason
    return record
