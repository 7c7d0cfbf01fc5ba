"""POST /orders/api/payment-webhook/ through the real handler: the spec's example, HMAC signatures,
strict bodies, the settlement rules, replays and a 20-way storm, against the seeded data
(order 1 pending with pending COD payment 1, total 1598.00; order 2 confirmed, paid by ONLINE
payment 2 under txn_987654321)."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from support import PAYMENT_WEBHOOK_SECRET
from support.payment_data import DEMO_TRANSACTION, SPEC_GATEWAY_EVENT
from support.webhooks import captured_output, concurrently, gateway_signature, send_gateway

from halum_payments.models import OrderStatus, PaymentMethod, PaymentStatus

P = PaymentStatus
OLD_SECRET = "pwh_rotating_old_" + "o" * 20
NEW_SECRET = "pwh_rotating_new_" + "n" * 20
SPEC_EVENT = SPEC_GATEWAY_EVENT
CONFIRMED = {"status": "success", "message": "Payment confirmed"}
FIRST_NEW_PAYMENT = 4  # the seed's payments are 1..3


@pytest.fixture(autouse=True)
def output(capsys, caplog):
    """Every test's output, at debug level for our logger; no secret may ever appear in it."""
    with captured_output(capsys, caplog, level=logging.DEBUG) as out:
        caplog.set_level(logging.INFO)
        for name in ("halum_payments", "aws_lambda_powertools"):
            caplog.set_level(logging.DEBUG, logger=name)
        yield out
        text = out.text
    leaked = [secret for secret in (PAYMENT_WEBHOOK_SECRET, OLD_SECRET, NEW_SECRET) if secret in text]
    assert not leaked, "a secret appeared in the output"


@pytest.fixture
def load_hook(load_function, store):
    return lambda **env: load_function("payment_webhook", **env)


@pytest.fixture
def hook(load_hook):
    return load_hook()


def event(kind: str = "completed", **changes: str) -> dict:
    return {**SPEC_EVENT, "event_type": f"payment.{kind}", "status": kind, **changes}


def error(reply, status: int) -> str:
    assert reply.status == status, reply
    assert set(reply.json) == {"status", "message"} and reply.json["status"] == "error", reply
    assert isinstance(reply.json["message"], str) and reply.json["message"], reply
    return reply.json["message"]


def history(store, payment_id) -> list[tuple]:
    return [(a.get("from"), a.get("to"), a.get("reason")) for a in store.audit(payment_id)]


def online_payments(store, order_id=1) -> dict:
    """The order's payments (as its own map lists them) that the gateway made."""
    stored = store.payments()
    return {pid: stored[pid] for pid in store.order(order_id).payments if stored[pid].method == PaymentMethod.ONLINE}


# ---------------------------------------------------------------------- the spec's example


def test_the_spec_example_confirms_order_1_and_supersedes_its_cod_payment(hook, store):
    reply = send_gateway(hook, SPEC_EVENT)

    assert (reply.status, reply.json) == (200, CONFIRMED)
    order = store.order(1)
    assert (order.status, order.completed_payment, order.completed_transaction) == (
        OrderStatus.CONFIRMED,
        FIRST_NEW_PAYMENT,
        "txn_123456789",
    )
    online = store.payment(FIRST_NEW_PAYMENT)
    assert (online.order, online.user, online.method, online.status, online.transaction_id, str(online.amount)) == (
        1,
        1,
        PaymentMethod.ONLINE,
        P.COMPLETED,
        "txn_123456789",
        "1598.00",
    )
    assert history(store, FIRST_NEW_PAYMENT) == [(None, "completed", "payment.completed")]
    cod = store.payment(1)
    assert cod.status == P.FAILED and cod.updated_at == online.updated_at
    assert history(store, 1) == [("pending", "failed", "superseded")]
    assert store.audit(1)[0]["event_id"] == "txn_123456789:1:payment.completed"
    assert {pid: ref.status for pid, ref in order.payments.items()} == {1: P.FAILED, FIRST_NEW_PAYMENT: P.COMPLETED}
    settled = store.snapshot()

    again = send_gateway(hook, SPEC_EVENT)  # the gateway's replay

    assert (again.status, again.json) == (200, CONFIRMED)
    assert store.snapshot() == settled


def test_twenty_concurrent_identical_deliveries_leave_one_payment_with_one_transition(load_hook, store):
    body = json.dumps(SPEC_EVENT)
    hooks = [load_hook() for _ in range(20)]  # 20 execution environments

    replies = concurrently(20, lambda i: send_gateway(hooks[i], body))

    assert [(r.status, r.json) for r in replies] == [(200, CONFIRMED)] * 20, [r for r in replies if r.status != 200]
    (online,) = online_payments(store).values()
    assert online.status == P.COMPLETED
    assert history(store, online.id) == [(None, "completed", "payment.completed")]
    assert history(store, 1) == [("pending", "failed", "superseded")]
    assert set(store.order(1).payments) == {1, online.id}


def test_concurrent_completions_under_different_transactions_complete_exactly_one_payment(load_hook, store):
    hooks = [load_hook() for _ in range(10)]

    replies = concurrently(10, lambda i: send_gateway(hooks[i], event(payment_id=f"txn_race_{i}")))

    statuses = sorted(reply.status for reply in replies)
    assert statuses == [200] + [409] * 9, replies
    (winner,) = [i for i, reply in enumerate(replies) if reply.status == 200]
    (online,) = online_payments(store).values()
    assert (online.status, online.transaction_id) == (P.COMPLETED, f"txn_race_{winner}")
    order = store.order(1)
    assert (order.completed_payment, order.completed_transaction) == (online.id, f"txn_race_{winner}")
    assert history(store, online.id) == [(None, "completed", "payment.completed")]
    assert history(store, 1) == [("pending", "failed", "superseded")]


# ---------------------------------------------------------------------- signatures


def test_a_missing_or_wrong_signature_is_401_and_changes_nothing(hook, store, subtests):
    raw = json.dumps(SPEC_EVENT)
    good = gateway_signature(raw)
    cases = {
        "missing": {"signed": False},
        "empty": {"signature": ""},
        "not hex": {"signature": "not-a-signature"},
        "wrong secret": {"secret": "pwh_someone_else_" + "q" * 20},
        "truncated": {"signature": good[:-2]},
        "one digit changed": {"signature": good[:-1] + ("0" if good[-1] != "0" else "1")},
        "prefix with a wrong digest": {"signature": "sha256=" + "0" * 64},
        "another algorithm's prefix": {"signature": "sha1=" + good},
        "signature of another body": {"signature": gateway_signature(raw + " ")},
        "oversized": {"signature": good * 40},
    }
    before = store.snapshot()
    for case, arguments in cases.items():
        with subtests.test(case=case):
            error(send_gateway(hook, raw, **arguments), 401)
    with subtests.test(case="tampered body"):
        error(send_gateway(hook, event(amount="1.00"), signature=good), 401)
    with subtests.test(case="unsigned and malformed: the signature is checked first"):
        error(send_gateway(hook, "{not json", signed=False), 401)
    assert store.snapshot() == before


def test_a_sha256_prefix_and_uppercase_hex_are_accepted(hook, store):
    processing = json.dumps(event("processing"))
    completed = json.dumps(event("completed"))

    first = send_gateway(hook, processing, signature="sha256=" + gateway_signature(processing))
    second = send_gateway(hook, completed, signature=gateway_signature(completed).upper())

    assert (first.status, second.status) == (200, 200), (first, second)
    assert store.order(1).status == OrderStatus.CONFIRMED


def test_during_a_rotation_either_secret_verifies_and_no_other(load_hook, store):
    hook = load_hook(PAYMENT_WEBHOOK_SECRET=f"{OLD_SECRET},{NEW_SECRET}")
    before = store.snapshot()
    error(send_gateway(hook, event("processing"), secret=PAYMENT_WEBHOOK_SECRET), 401)
    assert store.snapshot() == before

    assert send_gateway(hook, event("processing"), secret=NEW_SECRET).status == 200  # the second of the two
    assert send_gateway(hook, event("completed"), secret=OLD_SECRET).json == CONFIRMED
    assert store.order(1).status == OrderStatus.CONFIRMED


def test_without_a_configured_secret_every_delivery_is_503_and_logged(load_hook, store, output):
    hook = load_hook(PAYMENT_WEBHOOK_SECRET="")
    before = store.snapshot()
    output.clear()

    error(send_gateway(hook, SPEC_EVENT), 503)
    error(send_gateway(hook, SPEC_EVENT, signed=False), 503)

    assert store.snapshot() == before
    assert sum("PAYMENT_WEBHOOK_SECRET is not configured" in message for message in output.errors()) == 2


# ---------------------------------------------------------------------- malformed bodies


def _without(field: str) -> str:
    return json.dumps({k: v for k, v in SPEC_EVENT.items() if k != field})


MALFORMED = {
    "not JSON": '{"event_type": "payment.completed",',
    "empty body": "",
    "a JSON array": "[]",
    "JSON null": "null",
    **{f"missing {field}": _without(field) for field in SPEC_EVENT},
    "amount as a float": json.dumps({**SPEC_EVENT, "amount": 1598.0}),
    "amount as an integer": json.dumps({**SPEC_EVENT, "amount": 1598}),
    "amount with 3 decimals": json.dumps(event(amount="1598.001")),
    "amount with 3 decimals, zero": json.dumps(event(amount="1598.000")),
    "amount in exponent notation": json.dumps(event(amount="1.598E+3")),
    "negative amount": json.dumps(event(amount="-1598.00")),
    "amount not a number": json.dumps(event(amount="NaN")),
    "status inconsistent with event_type": json.dumps(event(status="failed")),
    "unknown event_type": json.dumps(event(event_type="payment.authorized", status="completed")),
    "non-numeric order_reference": json.dumps(event(order_reference="abc")),
    "order_reference as a number": json.dumps({**SPEC_EVENT, "order_reference": 1}),
    "order_reference zero": json.dumps(event(order_reference="0")),
    "naive timestamp": json.dumps(event(timestamp="2023-01-15T15:30:00")),
    "timestamp not a date": json.dumps(event(timestamp="yesterday")),
    "empty payment_id": json.dumps(event(payment_id="")),
    "payment_id with a space": json.dumps(event(payment_id="txn 1")),
}


def test_a_malformed_body_is_400_and_changes_nothing(hook, store, subtests):
    before = store.snapshot()
    for case, raw in MALFORMED.items():
        with subtests.test(case=case):
            error(send_gateway(hook, raw), 400)
    assert store.snapshot() == before


# ---------------------------------------------------------------------- the rules


def test_an_unknown_order_is_404(hook, store):
    before = store.snapshot()
    error(send_gateway(hook, event(order_reference="999")), 404)
    assert store.snapshot() == before


@pytest.mark.parametrize("amount", ["1597.99", "1598.01", "0.00", "15980.00"])
def test_money_other_than_the_order_total_is_422_held_on_the_books_and_settles_nothing(hook, store, output, amount):
    """Money the gateway took that is not the order's total cannot pay it: refused (422), the order and
    its payments untouched, and the money recorded once (an audit row naming the transaction and the
    amount, AmountMismatch once) so that someone gives it back (docs/money.md, the books contract)."""
    payments, orders = store.payments(), store.orders()
    output.clear()

    refused = error(send_gateway(hook, event(amount=amount)), 422)

    assert (store.payments(), store.orders()) == (payments, orders)
    assert output.metrics()["AmountMismatch"] == 1
    [row] = [r for r in store.audit(0) if r["reason"] == "amount_mismatch"]
    assert row["order"] == 1
    money = {"provider": "gateway", "transaction_id": "txn_123456789", "currency": "usd", "amount": amount}
    assert row["details"] == money
    recorded = store.snapshot(idempotency=False)
    # The refusal is remembered with the event: its replays get it again and raise no new alarm ...
    for _ in range(3):
        assert error(send_gateway(hook, event(amount=amount)), 422) == refused
    assert output.metrics()["AmountMismatch"] == 1
    assert output.metrics()["DuplicateDeliveries"] == 3
    # ... and the same event (transaction, order, type) with another amount is not a new event.
    assert "different body" in error(send_gateway(hook, event()), 422)
    assert store.snapshot(idempotency=False) == recorded


def test_a_replayed_refusal_for_an_order_paid_otherwise_raises_one_refund_alarm(hook, store, output):
    """Order 2 is paid; money reported for it under another transaction needs a refund: once."""
    paid_elsewhere = event(payment_id="txn_other", order_reference="2", amount="899.00")
    for _ in range(4):
        error(send_gateway(hook, paid_elsewhere), 409)
    assert output.metrics()["PaymentNeedsRefund"] == 1


def test_an_optional_maximum_age_refuses_stale_bodies(load_hook, store, output):
    hook = load_hook(PAYMENT_WEBHOOK_MAX_AGE_SECONDS="300")
    before = store.snapshot()

    stale = send_gateway(hook, SPEC_EVENT)  # the spec's example is from 2023

    assert "timestamp" in error(stale, 400)
    assert store.snapshot() == before
    fresh = event(timestamp=datetime.now(UTC).isoformat())
    assert send_gateway(hook, fresh).json == CONFIRMED


def test_an_order_paid_under_another_transaction_is_409(hook, store, output):
    """Order 2 is paid by ONLINE payment 2 under the demo's transaction. Only "completed" says that
    money moved: it is recorded for a refund (issue 18, finding 1: test_money_after_checkout.py)."""
    before = store.snapshot(idempotency=False)
    output.clear()
    for kind in ("processing", "failed", "refunded"):
        error(send_gateway(hook, event(kind, payment_id="txn_other", order_reference="2", amount="899.00")), 409)
    assert store.snapshot(idempotency=False) == before
    error(send_gateway(hook, event(payment_id="txn_other", order_reference="2", amount="899.00")), 409)
    assert output.metrics()["PaymentNeedsRefund"] == 1
    (row,) = [row for row in store.scan("PaymentAuditTable") if row["reason"] == "needs_refund"]
    assert row["details"]["transaction_id"] == "txn_other"
    before = store.snapshot(idempotency=False)

    same = send_gateway(hook, event(payment_id=DEMO_TRANSACTION, order_reference="2", amount="899.00"))
    assert (same.status, same.json) == (200, CONFIRMED)  # its own transaction again: nothing to do
    assert store.snapshot(idempotency=False) == before


def test_processing_then_completed(hook, store):
    reply = send_gateway(hook, event("processing", payment_id="txn_p1"))

    assert reply.json == {"status": "success", "message": "Payment processing recorded"}, reply
    (online,) = online_payments(store).values()
    assert (online.status, online.transaction_id) == (P.PROCESSING, "txn_p1")
    assert store.order(1).status == OrderStatus.PENDING
    assert store.payment(1).status == P.PENDING

    assert send_gateway(hook, event("completed", payment_id="txn_p1")).json == CONFIRMED
    assert store.payment(online.id).status == P.COMPLETED
    assert store.payment(1).status == P.FAILED
    assert store.order(1).status == OrderStatus.CONFIRMED
    assert history(store, online.id) == [
        (None, "processing", "payment.processing"),
        ("processing", "completed", "payment.completed"),
    ]


def test_a_failure_leaves_the_order_pending_and_a_late_success_completes_it(hook, store):
    reply = send_gateway(hook, event("failed", payment_id="txn_f1"))

    assert reply.json == {"status": "success", "message": "Payment failure recorded"}, reply
    (online,) = online_payments(store).values()
    assert online.status == P.FAILED
    assert store.order(1).status == OrderStatus.PENDING  # the customer may pay again
    assert store.payment(1).status == P.PENDING

    assert send_gateway(hook, event("completed", payment_id="txn_f1")).json == CONFIRMED
    assert online_payments(store) == {online.id: store.payment(online.id)}  # the same payment, updated
    assert store.payment(online.id).status == P.COMPLETED
    assert store.order(1).status == OrderStatus.CONFIRMED
    assert history(store, online.id)[-1] == ("failed", "completed", "payment.completed")


def test_a_refund_before_completion_is_409_for_a_retry_and_applies_after_it(hook, store):
    before = store.snapshot()

    message = error(send_gateway(hook, event("refunded")), 409)

    assert "retry" in message.lower()
    assert store.snapshot() == before
    assert send_gateway(hook, event("completed")).json == CONFIRMED
    refunded = send_gateway(hook, event("refunded"))  # the gateway's retry
    assert refunded.json == {"status": "success", "message": "Payment refund recorded"}, refunded
    assert store.payment(FIRST_NEW_PAYMENT).status == P.REFUNDED
    assert history(store, FIRST_NEW_PAYMENT)[-1] == ("completed", "refunded", "payment.refunded")


def test_the_same_event_with_a_different_body_is_422(hook, store):
    assert send_gateway(hook, SPEC_EVENT).json == CONFIRMED
    settled = store.snapshot()

    error(send_gateway(hook, event(timestamp="2023-01-15T15:31:00Z")), 422)

    assert store.snapshot() == settled


def test_one_gateway_transaction_settles_at_most_one_payment(hook, store, output):
    """The spec's transaction confirms order 1; the same transaction id completing another order is
    409 and settles nothing (claimed as Stripe PaymentIntents are). One of the two reports is wrong and
    we cannot tell which: the second is recorded for a refund and alarmed, once (the runbook checks the
    provider before refunding), so real money is never only a log line. For order 1 again: idempotent."""
    from halum_payments.models import Order, OrderItem
    from halum_payments.repositories import orders

    other = Order(
        id=40, user=1, shipping_address=1, status=OrderStatus.PENDING, total_price=Decimal("1598.00"), currency="usd",
        items=(OrderItem(1, 2, Decimal("799.00")),), created_at="2024-01-01T00:00:00Z", updated_at="2024-01-01",
    )  # fmt: skip
    store.put("OrdersTable", orders.encode(other))
    assert send_gateway(hook, SPEC_EVENT).json == CONFIRMED
    settled = store.snapshot(idempotency=False)
    output.clear()

    reused = send_gateway(hook, event(order_reference="40"))

    assert "another payment" in error(reused, 409)
    records = ("PaymentAuditTable", "GatewayTransactionsTable")  # the audit row and its once-only fact
    changed = store.snapshot(idempotency=False)
    assert {table: rows for table, rows in changed.items() if table not in records} == {
        table: rows for table, rows in settled.items() if table not in records
    }
    claims = store.scan("GatewayTransactionsTable")
    assert {row["transaction_id"]: row["payment"] for row in claims if row["transaction_id"].startswith("ONLINE#")} == {
        "ONLINE#txn_123456789": 4,
        "ONLINE#txn_987654321": 2,
    }  # the transaction still settles order 1's payment only
    (held,) = [row for row in store.scan("PaymentAuditTable") if row["reason"] == "needs_refund"]
    assert (held["order"], held["details"]["transaction_id"]) == (40, SPEC_EVENT["payment_id"])
    assert output.metrics()["PaymentNeedsRefund"] == 1
    assert send_gateway(hook, event(order_reference="40")).status == 409  # the replay: no second record
    assert output.metrics()["PaymentNeedsRefund"] == 1
    settled = store.snapshot(idempotency=False)
    again = send_gateway(hook, SPEC_EVENT)  # the same transaction for the same payment
    assert (again.status, again.json) == (200, CONFIRMED)
    assert store.snapshot(idempotency=False) == settled
