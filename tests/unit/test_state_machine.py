"""The payment state machine and the pure planning of changes (no I/O)."""

from decimal import Decimal
from itertools import product

import pytest

from halum_payments.logic.rules import may_move
from halum_payments.logic.settlement import Change, Facts, Outcome, Plan, plan_change
from halum_payments.models import (
    Order,
    OrderItem,
    OrderOrigin,
    OrderStatus,
    PaymentMethod,
    PaymentRef,
    PaymentStatus,
)

P, M = PaymentStatus, PaymentMethod
ALLOWED = {
    (P.PENDING, P.PROCESSING),
    (P.PENDING, P.COMPLETED),
    (P.PENDING, P.FAILED),
    (P.PROCESSING, P.COMPLETED),
    (P.PROCESSING, P.FAILED),
    (P.COMPLETED, P.REFUNDED),
}


@pytest.mark.parametrize(("method", "old", "new"), list(product(M, P, P)))
def test_exactly_the_documented_transitions_are_allowed(method, old, new):
    expected = (old, new) in ALLOWED or (method == M.ONLINE and (old, new) == (P.FAILED, P.COMPLETED))
    assert may_move(method, old, new) is expected


def order(payments, *, status=OrderStatus.PENDING, origin=OrderOrigin.STRIPE_CHECKOUT, completed=None, reserved=True):
    return Order(
        id=7,
        user=1,
        shipping_address=1,
        status=status,
        total_price=Decimal("1598.00"),
        currency="usd",
        items=(OrderItem(1, 2, Decimal("799.00"), "RUI-1KG", "Rui"),),
        created_at="2026-01-01T00:00:00Z",
        updated_at="2026-01-01T00:00:00Z",
        origin=origin,
        stock_reserved=reserved,
        payments={pid: PaymentRef(method, st) for pid, (method, st) in payments.items()},
        completed_payment=completed,
    )


def change(pid, target, **kw):
    return Change(order_id=7, payment_id=pid, target=target, source="stripe", **kw)


def test_completion_confirms_the_order_and_supersedes_its_other_open_payments():
    snapshot = order({1: (M.COD, P.PENDING), 2: (M.STRIPE, P.PENDING), 3: (M.STRIPE, P.FAILED)})
    plan = plan_change(snapshot, change(2, P.COMPLETED, transaction_id="pi_1"), at="2026-01-01T00:00:01Z")
    assert isinstance(plan, Plan)
    moves = {(t.payment_id, t.from_status, t.to_status) for t in plan.transitions}
    assert moves == {(2, P.PENDING, P.COMPLETED), (1, P.PENDING, P.FAILED)}
    assert plan.order_status == OrderStatus.CONFIRMED
    assert plan.completed_payment == 2 and plan.completed_transaction == "pi_1"
    assert {e.reason for e in plan.audit if e.payment_id == 1} == {"superseded"}
    assert plan.claim == (M.STRIPE, "pi_1", 2)


def test_a_second_completion_for_a_paid_order_needs_a_refund_and_changes_nothing():
    snapshot = order({1: (M.STRIPE, P.COMPLETED), 2: (M.STRIPE, P.FAILED)}, completed=1, status=OrderStatus.CONFIRMED)
    outcome = plan_change(snapshot, change(2, P.COMPLETED), at="t")
    assert isinstance(outcome, Outcome) and outcome.kind == "needs_refund"


def test_stripe_failure_of_the_checkout_that_created_the_order_cancels_it_and_releases_stock():
    plan = plan_change(order({2: (M.STRIPE, P.PENDING)}), change(2, P.FAILED), at="t")
    assert isinstance(plan, Plan)
    assert plan.order_status == OrderStatus.CANCELLED and plan.release_stock


def test_stripe_failure_keeps_the_order_when_another_payment_is_still_open():
    plan = plan_change(order({1: (M.COD, P.PENDING), 2: (M.STRIPE, P.PENDING)}), change(2, P.FAILED), at="t")
    assert isinstance(plan, Plan)
    assert plan.order_status is None and not plan.release_stock


def test_stripe_failure_on_a_platform_order_leaves_it_pending():
    plan = plan_change(order({2: (M.STRIPE, P.PENDING)}, origin=OrderOrigin.PLATFORM), change(2, P.FAILED), at="t")
    assert isinstance(plan, Plan) and plan.order_status is None and not plan.release_stock


def test_gateway_failure_leaves_a_platform_order_pending_and_a_late_success_completes():
    platform = OrderOrigin.PLATFORM
    failed = plan_change(order({5: (M.ONLINE, P.PENDING)}, origin=platform), change(5, P.FAILED), at="t")
    assert isinstance(failed, Plan) and failed.order_status is None and not failed.release_stock
    late = plan_change(order({5: (M.ONLINE, P.FAILED)}, origin=platform), change(5, P.COMPLETED), at="t")
    assert isinstance(late, Plan) and late.order_status == OrderStatus.CONFIRMED


def test_the_last_open_payment_of_a_checkouts_order_failing_gives_the_order_up_whatever_its_method():
    """Issue 18, finding 3: a Stripe checkout's order that also got a gateway payment, whose session
    expired first: the gateway payment failing leaves nothing that can pay it."""
    snapshot = order({2: (M.STRIPE, P.FAILED), 5: (M.ONLINE, P.PROCESSING)})
    failed = plan_change(snapshot, change(5, P.FAILED), at="t")
    assert isinstance(failed, Plan) and failed.order_status == OrderStatus.CANCELLED and failed.release_stock
    still_open = plan_change(
        order({2: (M.STRIPE, P.PENDING), 5: (M.ONLINE, P.PROCESSING)}), change(5, P.FAILED), at="t"
    )
    assert isinstance(still_open, Plan) and still_open.order_status is None and not still_open.release_stock


def test_failed_stripe_payment_never_completes():
    outcome = plan_change(order({2: (M.STRIPE, P.FAILED)}), change(2, P.COMPLETED), at="t")
    assert isinstance(outcome, Outcome) and outcome.kind == "needs_refund"


@pytest.mark.parametrize(
    ("current", "target", "kind"),
    [
        (P.COMPLETED, P.PROCESSING, "ignored"),
        (P.COMPLETED, P.FAILED, "ignored"),
        (P.REFUNDED, P.COMPLETED, "needs_refund"),
        (P.COMPLETED, P.COMPLETED, "unchanged"),
        (P.PENDING, P.REFUNDED, "retry_later"),
        (P.PROCESSING, P.PENDING, "ignored"),
    ],
)
def test_stale_duplicate_and_early_events_do_not_plan_writes(current, target, kind):
    completed = 2 if current in (P.COMPLETED, P.REFUNDED) else None
    outcome = plan_change(order({2: (M.STRIPE, current)}, completed=completed), change(2, target), at="t")
    assert isinstance(outcome, Outcome) and outcome.kind == kind


def test_a_payment_of_another_order_is_unknown():
    outcome = plan_change(order({2: (M.STRIPE, P.PENDING)}), change(99, P.COMPLETED), at="t")
    assert isinstance(outcome, Outcome) and outcome.kind == "unknown"


def test_facts_travel_with_the_main_transition_only():
    facts = Facts(amount=Decimal("1598.00"), currency="usd", session_id="cs_1")
    plan = plan_change(
        order({1: (M.COD, P.PENDING), 2: (M.STRIPE, P.PENDING)}), change(2, P.COMPLETED, facts=facts), at="t"
    )
    assert isinstance(plan, Plan)
    assert [t.facts for t in plan.transitions if t.payment_id == 2] == [facts]
    assert [t.facts for t in plan.transitions if t.payment_id == 1] == [None]


def test_gateway_creates_its_online_payment_with_a_new_id_and_claims_its_transaction():
    plan = plan_change(
        order({1: (M.COD, P.PENDING)}, origin=OrderOrigin.PLATFORM),
        Change(7, None, P.COMPLETED, "gateway", transaction_id="txn_1"),
        at="t",
        new_payment_id=lambda: 42,
    )
    assert isinstance(plan, Plan) and plan.new_payment is not None
    assert plan.new_payment.id == 42 and plan.new_payment.method == M.ONLINE
    assert plan.new_payment.amount == Decimal("1598.00") and plan.new_payment.transaction_id == "txn_1"
    assert [(t.payment_id, t.to_status) for t in plan.transitions] == [(1, P.FAILED)]
    assert plan.claim == (M.ONLINE, "txn_1", 42)


def test_a_refused_gateway_change_asks_for_no_new_id():
    def no_id() -> int:
        raise AssertionError("an id was reserved for a payment that is never created")

    paid = order({1: (M.COD, P.COMPLETED)}, origin=OrderOrigin.PLATFORM, completed=1)
    completion = Change(7, None, P.COMPLETED, "gateway", transaction_id="x")
    outcome = plan_change(paid, completion, at="t", new_payment_id=no_id)
    assert isinstance(outcome, Outcome) and outcome.kind == "needs_refund"
