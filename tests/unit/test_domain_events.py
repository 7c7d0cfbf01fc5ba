"""Which committed audit row is which domain event (docs/events.md), restated from the spec rather
than read back from logic/domain_events.py, and every event checked against its JSON Schema."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from support.event_schemas import SCHEMAS, check

from halum_payments.logic.domain_events import DomainEvents, events_for

AT = "2025-01-01T12:00:00.000000Z#a1b2c3d4e5f6"
STRIPE_MONEY = {"provider": "stripe", "transaction_id": "pi_1", "currency": "usd", "amount": "20.00"}


def row(**fields: Any) -> dict[str, Any]:
    """An audit row as the stream's NEW_IMAGE gives it (numbers are Decimals)."""
    base: dict[str, Any] = {
        "payment": Decimal(7),
        "at": AT,
        "order": Decimal(3),
        "source": "stripe",
        "recorded_at": "2025-01-01T12:00:00Z",
    }
    return {**base, **{k: v for k, v in fields.items() if v is not None}}


CASES = {
    "a checkout placing a Stripe order": (
        row(source="checkout", reason="created", to="pending", order_to="pending"),
        {"order.placed": {"status": "pending", "payment_status": "pending"}},
    ),
    "a checkout adding a payment to an existing order": (
        row(source="checkout", reason="created", to="pending"),
        {},
    ),
    "a completion that confirms its order": (
        row(**{"from": "pending", "to": "completed"}, reason="checkout.session.completed", order_to="confirmed"),
        {"payment.completed": {"from": "pending"}, "order.paid": {}},
    ),
    "a gateway payment created completed (no prior status)": (
        row(source="gateway", to="completed", reason="payment.completed"),
        {"payment.completed": {"from": None}, "order.paid": {}},
    ),
    "a failure that gives its order up": (
        row(**{"from": "pending", "to": "failed"}, reason="expired", order_to="cancelled"),
        {"payment.failed": {"from": "pending", "reason": "expired"}, "order.cancelled": {"reason": "expired"}},
    ),
    "a payment superseded by another completing": (
        row(**{"from": "pending", "to": "failed"}, reason="superseded"),
        {"payment.failed": {"reason": "superseded"}},
    ),
    "a refund in full": (
        row(
            **{"from": "completed", "to": "refunded"}, reason="refunded", details={**STRIPE_MONEY, "refunded": "20.00"}
        ),
        {"payment.refunded": {"full": True, "refunded": "20.00", "amount": "20.00"}},
    ),
    "a refund in part": (
        row(
            **{"from": "completed", "to": "completed"},
            reason="partial_refund",
            details={**STRIPE_MONEY, "refunded": "5.00"},
        ),
        {"payment.refunded": {"full": False, "refunded": "5.00"}},
    ),
    "money to give back, held by no payment of ours": (
        row(
            payment=Decimal(0), source="gateway", reason="needs_refund", details={**STRIPE_MONEY, "provider": "gateway"}
        ),
        {"payment.refund_needed": {"payment": None, "provider": "gateway", "amount": "20.00"}},
    ),
    "a dispute lost": (
        row(reason="dispute_lost", details={**STRIPE_MONEY, "dispute": "dp_1"}),
        {"payment.disputed": {"step": "lost", "dispute": "dp_1"}},
    ),
    "a mismatch held for an operator": (
        row(**{"from": "pending", "to": "pending"}, reason="amount_mismatch", details=STRIPE_MONEY),
        {},
    ),
    "pending to processing": (row(**{"from": "pending", "to": "processing"}, reason="processing"), {}),
}


@pytest.mark.parametrize("name", CASES)
def test_each_committed_change_is_its_events(name: str) -> None:
    audit_row, expected = CASES[name]
    events = events_for(audit_row)
    assert sorted(e.detail_type for e in events) == sorted(expected)
    for event in events:
        check(event.detail_type, event.detail)
        for key, value in expected[event.detail_type].items():
            assert event.detail[key] == value, (event.detail_type, key)
        assert event.detail["order"] == 3
        assert event.detail["sequence"] == AT
        assert event.time == "2025-01-01T12:00:00Z"


def test_event_ids_are_stable_for_a_redelivered_row_and_distinct_per_event() -> None:
    audit_row = CASES["a completion that confirms its order"][0]
    first, again = events_for(audit_row), events_for(dict(audit_row))
    assert [e.event_id for e in first] == [e.event_id for e in again]
    assert len({e.event_id for e in first}) == len(first) == 2
    other = events_for({**audit_row, "at": "2025-01-01T12:00:00.000000Z#ffffffffffff"})
    assert not {e.event_id for e in other} & {e.event_id for e in first}


def test_the_required_event_types_each_have_a_schema() -> None:
    required = {
        "order.placed", "order.paid", "order.cancelled", "payment.completed", "payment.failed",
        "payment.refunded", "payment.refund_needed", "payment.disputed",
    }  # fmt: skip
    assert {path.name.removesuffix(".v1.json") for path in SCHEMAS.glob("*.v1.json")} == required


def test_a_detail_that_breaks_its_schema_is_caught() -> None:
    (event,) = events_for(CASES["a refund in part"][0])
    with pytest.raises(AssertionError):
        check(event.detail_type, {**event.detail, "amount": 5.0})  # a float, never money


class RefusingBus:
    def publish(self, events: Any) -> None:
        raise RuntimeError("EventBridge refused")


def test_a_refused_publication_raises_so_the_record_is_retried() -> None:
    with pytest.raises(RuntimeError):
        DomainEvents(RefusingBus()).committed(CASES["a refund in full"][0])
