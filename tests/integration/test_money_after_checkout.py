"""The money that moves after checkout (issue 18), through the real handlers: refunds in part and in
full (Stripe and the gateway), disputes, money that cannot be kept, the reconciliation sweep reading
Stripe's event log, and the seven findings of the attack on the service.

The rules are restated here from the spec and the books contract (docs/money.md), not imported: every
audit row about money that moved has `reason`, `order` and `details` with `provider`,
`transaction_id`, lower-case `currency` and decimal-string amounts (`amount`; `refunded`, cumulative,
for refunds; `dispute` for disputes; `session` for Stripe money to refund); each fact is recorded once
however often it is reported.

The Stripe sandbox has no webhook URL here: the tests deliver each event themselves (or lose it).
"""

from __future__ import annotations

import copy
import logging
import time
from typing import Any

import pytest
from support import STRIPE_WEBHOOK_SECRET
from support.checkout import RICE, RUI, STRIPE_KEY, Shop
from support.payment_data import SPEC_GATEWAY_EVENT
from support.webhooks import captured_output, send_gateway, send_stripe, with_object

from halum_payments.repositories.sweep_state import SweepStateRepository
from local.events import LambdaContext

CART_TOTAL = "2023.50"  # user 1's seeded cart: 2 x 799.00 + 1 x 425.50
ALL_SECRETS = (STRIPE_WEBHOOK_SECRET, STRIPE_KEY)


@pytest.fixture(autouse=True)
def output(capsys, caplog):
    with captured_output(capsys, caplog, level=logging.INFO) as out:
        yield out
        text = out.text
    assert not [secret for secret in ALL_SECRETS if secret in text], "a secret appeared in the output"


def sweep(shop: Shop) -> dict[str, Any]:
    module = shop.load(
        "reconcile_payments",
        STRIPE_SECRET_KEY=STRIPE_KEY,
        STRIPE_API_BASE=shop.sandbox.base_url,
        STRIPE_TIMEOUT_SECONDS="1",
        RECONCILE_AFTER_MINUTES="0",
    )
    summary: dict[str, Any] = module.lambda_handler({}, LambdaContext("reconcile", timeout_seconds=300))
    return summary


def checkout(shop: Shop, user: int = 1, **kwargs: Any) -> tuple[str, int, int]:
    """A Stripe checkout of the user's cart: (session, payment, order)."""
    reply = shop.checkout(user, {"shipping_address": user}, **kwargs)
    assert reply.status == 200, reply
    metadata = shop.sandbox.session(reply.json["id"])["metadata"]
    return reply.json["id"], int(metadata["payment_id"]), int(metadata["order_id"])


def press(shop: Shop, session: str, action: str, form: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """A button of the sandbox (nothing is delivered: no webhook URL); the events it made."""
    before = len(shop.sandbox.events)
    status, _ = shop.sandbox.submit(f"/checkout/{session}/{action}", form)
    assert status == 303, (action, status)
    return list(reversed(shop.sandbox.events[: len(shop.sandbox.events) - before]))


def deliver(hook: Any, event: dict[str, Any]) -> dict[str, Any]:
    reply = send_stripe(hook, event)
    assert reply.status == 200, reply
    return reply.json


def paid(shop: Shop, hook: Any, user: int = 1) -> tuple[str, int, int, str]:
    """A checkout paid and its completion delivered: (session, payment, order, PaymentIntent)."""
    session, payment, order = checkout(shop, user)
    (completed,) = press(shop, session, "pay")
    deliver(hook, completed)
    assert shop.store.payment(payment).status == "completed"
    return session, payment, order, shop.sandbox.session(session)["payment_intent"]


def rows(shop: Shop, payment: int, *reasons: str) -> list[dict[str, Any]]:
    return [row for row in shop.store.audit(payment) if not reasons or row["reason"] in reasons]


def money_rows(shop: Shop) -> list[tuple[Any, ...]]:
    """Every audit row about money, as (payment, order, reason, details), in any payment."""
    return sorted(
        (int(row["payment"]), int(row["order"]), row["reason"], row["details"])
        for row in shop.store.scan("PaymentAuditTable")
        if row["reason"] not in ("created", "superseded", "expired", "stripe_unavailable", "no_session")
        and isinstance(row.get("details"), dict)
        and "provider" in row["details"]
    )


def business(shop: Shop) -> dict[str, list[str]]:
    """Every table but the idempotency records and the sweep's own places: what the service holds."""
    tables = shop.store.snapshot(idempotency=False)
    return {name: [item for item in items if "reconciliation#" not in item] for name, items in tables.items()}


def stripe_money(intent: str, amount: str, **more: str) -> dict[str, str]:
    return {"provider": "stripe", "transaction_id": intent, "currency": "usd", "amount": amount, **more}


# ---------------------------------------------------------------------- Stripe refunds


def test_partial_refunds_are_recorded_once_each_and_the_full_amount_refunds_the_payment(shop, hook, output):
    session, payment, order, intent = paid(shop, hook)
    output.clear()

    (first,) = press(shop, session, "refund", {"amount": "1000"})
    (second,) = press(shop, session, "refund", {"amount": "50"})
    for event in (second, first, first, second):  # out of order, each twice
        assert deliver(hook, event)["status"] == "success"
    # The same refund reported under another event id (as the sweep or a duplicate Stripe event
    # could): the record is keyed by the cumulative amount in DynamoDB, not by the event.
    deliver(hook, {**copy.deepcopy(first), "id": "evt_test_same_refund_again"})

    assert shop.store.payment(payment).status == "completed"
    partial = rows(shop, payment, "partial_refund")
    assert sorted(row["details"]["refunded"] for row in partial) == ["10.00", "10.50"]
    for row in partial:
        assert row["details"] == stripe_money(intent, CART_TOTAL, refunded=row["details"]["refunded"])
        assert int(row["order"]) == order
    assert output.metrics()["AmountMismatch"] == 0

    (rest,) = press(shop, session, "refund")
    deliver(hook, rest)
    deliver(hook, rest)

    assert shop.store.payment(payment).status == "refunded"
    (transition,) = rows(shop, payment, "refunded")
    assert (transition["from"], transition["to"]) == ("completed", "refunded")
    assert transition["details"] == stripe_money(intent, CART_TOTAL, refunded=CART_TOTAL)
    assert output.metrics()["PaymentsRefunded"] == 1
    assert output.metrics()["AmountMismatch"] == 0


def test_a_refund_of_more_than_was_paid_is_a_mismatch_and_changes_nothing(shop, hook, output):
    session, payment, _, _ = paid(shop, hook)
    (refund,) = press(shop, session, "refund", {"amount": "100"})
    charge = refund["data"]["object"]
    forged = with_object(refund, amount_refunded=charge["amount"] + 1)
    output.clear()

    deliver(hook, forged)

    assert shop.store.payment(payment).status == "completed"
    assert [row["reason"] for row in rows(shop, payment)][-1] == "amount_mismatch"
    assert output.metrics()["AmountMismatch"] == 1


@pytest.mark.parametrize("intent", [None, "pi_test_settled_nothing_of_ours"])
def test_finding_2_a_refund_whose_metadata_names_an_online_payment_refunds_nothing(shop, hook, output, intent):
    """A signed charge.refunded whose PaymentIntent settled none of our payments (or which has none),
    its metadata naming the seeded ONLINE payment 2 of order 2: nothing is refunded or recorded."""
    charge = {
        "id": "ch_test_attacker",
        "object": "charge",
        "amount": 89900,
        "amount_refunded": 89900,
        "refunded": True,
        "currency": "usd",
        "payment_intent": intent,
        "metadata": {"order_id": "2", "payment_id": "2", "user_id": "1"},
    }
    before = shop.store.snapshot(idempotency=False)

    reply = deliver(hook, shop.sandbox.event("charge.refunded", charge))

    assert reply["status"] == "success"  # acknowledged: not ours, Stripe need not retry
    assert shop.store.payment(2).status == "completed"
    assert shop.store.snapshot(idempotency=False) == before
    assert output.metrics()["PaymentsRefunded"] == 0


def test_a_refund_before_its_payment_completed_is_retried_and_then_applied(shop, hook):
    session, payment, _ = checkout(shop)
    (completed,) = press(shop, session, "pay")
    (refund,) = press(shop, session, "refund", {"amount": "500"})

    early = send_stripe(hook, refund)
    assert early.status == 409, early  # Stripe retries: the completion may be on its way
    assert rows(shop, payment, "partial_refund") == []
    deliver(hook, completed)
    deliver(hook, refund)  # Stripe's retry

    assert [row["details"]["refunded"] for row in rows(shop, payment, "partial_refund")] == ["5.00"]


# ---------------------------------------------------------------------- disputes


def test_a_lost_dispute_is_recorded_once_per_step_with_its_money_and_alarmed_when_opened(shop, hook, output):
    session, payment, order, intent = paid(shop, hook)
    output.clear()

    opened = shop.sandbox.open_dispute(session, reason="product_not_received")
    events = [e for e in reversed(shop.sandbox.events) if e["type"].startswith("charge.dispute.")]
    for event in events + events:  # each delivered twice
        deliver(hook, event)
    shop.sandbox.close_dispute(session, won=False)
    (closed,) = [e for e in shop.sandbox.events if e["type"] == "charge.dispute.closed"]
    deliver(hook, closed)
    deliver(hook, {**copy.deepcopy(closed), "id": "evt_test_closed_again"})  # another id, the same step

    disputed = stripe_money(intent, CART_TOTAL, dispute=opened["id"])
    steps = [(row["reason"], row.get("details"), int(row["order"])) for row in rows(shop, payment)][-3:]
    assert steps == [
        ("dispute_opened", disputed, order),
        ("dispute_funds_withdrawn", disputed, order),
        ("dispute_lost", disputed, order),
    ]
    assert shop.store.payment(payment).status == "completed"  # the spec's statuses have no "disputed"
    assert output.metrics()["PaymentDisputed"] == 1


def test_a_won_dispute_records_its_funds_reinstated(shop, hook):
    session, payment, _, intent = paid(shop, hook)
    opened = shop.sandbox.open_dispute(session)
    shop.sandbox.close_dispute(session, won=True)
    for event in reversed(shop.sandbox.events):
        if event["type"].startswith("charge.dispute."):
            deliver(hook, event)

    reasons = [row["reason"] for row in rows(shop, payment)][-4:]
    assert reasons == ["dispute_opened", "dispute_funds_withdrawn", "dispute_won", "dispute_funds_reinstated"]
    assert rows(shop, payment, "dispute_won")[0]["details"] == stripe_money(intent, CART_TOTAL, dispute=opened["id"])


def test_a_dispute_before_its_payment_completed_is_retried_and_recorded_once_the_completion_applies(shop, hook):
    """The completion's event is late; the cardholder's dispute arrives first. Its PaymentIntent names
    our payment (its metadata), which has not completed yet: 409 so that Stripe delivers it again,
    nothing written. Once the completion applied, the redelivered dispute is recorded."""
    session, payment, _ = checkout(shop)
    (completed,) = press(shop, session, "pay")
    opened = shop.sandbox.open_dispute(session)
    (created,) = [e for e in shop.sandbox.events if e["type"] == "charge.dispute.created"]
    before = business(shop)

    early = send_stripe(hook, created)

    assert early.status == 409, early
    assert business(shop) == before
    deliver(hook, completed)
    deliver(hook, created)
    intent = shop.sandbox.session(session)["payment_intent"]
    (row,) = rows(shop, payment, "dispute_opened")
    assert row["details"] == stripe_money(intent, CART_TOTAL, dispute=opened["id"])


def test_a_dispute_of_a_charge_that_is_not_ours_is_acknowledged_and_writes_nothing(shop, hook):
    dispute = {"id": "dp_test_other", "object": "dispute", "amount": 100, "currency": "usd"}
    before = shop.store.snapshot(idempotency=False)
    for intent in ("pi_test_someone_elses", None):
        deliver(hook, shop.sandbox.event("charge.dispute.created", {**dispute, "payment_intent": intent}))
    assert shop.store.snapshot(idempotency=False) == before


# ---------------------------------------------------------------------- the gateway's refunds (finding 6)


def gateway_event(kind: str, **changes: str) -> dict[str, str]:
    return {**SPEC_GATEWAY_EVENT, "event_type": f"payment.{kind}", "status": kind, **changes}


def test_finding_6_gateway_refunds_in_parts_are_recorded_and_the_whole_amount_refunds_the_payment(
    shop, gateway, output
):
    """`amount` of payment.refunded is the transaction's cumulative refunded amount (as Stripe's
    amount_refunded): 500.00, then 1000.00, then the order's 1598.00."""
    assert send_gateway(gateway, gateway_event("completed")).json["message"] == "Payment confirmed"
    (online,) = [pid for pid, ref in shop.store.order(1).payments.items() if ref.method == "ONLINE"]
    txn = SPEC_GATEWAY_EVENT["payment_id"]
    output.clear()

    for amount in ("500.00", "500.00", "1000.00"):  # the first twice: the gateway's redelivery
        reply = send_gateway(gateway, gateway_event("refunded", amount=amount))
        assert (reply.status, reply.json) == (200, {"status": "success", "message": "Partial refund recorded"})

    assert shop.store.payment(online).status == "completed"
    partial = rows(shop, online, "partial_refund")
    gateway_money = {"provider": "gateway", "transaction_id": txn, "currency": "usd", "amount": "1598.00"}
    assert [row["details"] for row in partial] == [
        {**gateway_money, "refunded": "500.00"},
        {**gateway_money, "refunded": "1000.00"},
    ]
    assert output.metrics()["AmountMismatch"] == 0

    too_much = send_gateway(gateway, gateway_event("refunded", amount="1598.01"))
    assert too_much.status == 422, too_much
    assert output.metrics()["AmountMismatch"] == 1
    full = send_gateway(gateway, gateway_event("refunded", amount="1598.00"))
    assert full.json == {"status": "success", "message": "Payment refund recorded"}, full
    assert shop.store.payment(online).status == "refunded"
    assert rows(shop, online, "payment.refunded")[-1]["details"] == {**gateway_money, "refunded": "1598.00"}


# ---------------------------------------------------------------------- money that cannot be kept (finding 1)


def test_finding_1_gateway_money_for_a_paid_order_is_recorded_once_and_listed_for_the_runbook(shop, gateway, output):
    """Order 2 is paid (ONLINE payment 2). Gateway money for it under another transaction: 409, the
    refund alarm, and a durable record naming the money, once, however often it is reported."""
    body = gateway_event("completed", payment_id="txn_paid_twice", order_reference="2", amount="899.00")
    for _ in range(2):
        assert send_gateway(gateway, body).status == 409
    shop.client.delete_item(  # the idempotency record expires: the report runs again, the record does not
        TableName=shop.tables["IdempotencyTable"],
        Key={"id": {"S": shop.store.scan("IdempotencyTable")[0]["id"]}},
    )
    assert send_gateway(gateway, body).status == 409

    money = {"provider": "gateway", "transaction_id": "txn_paid_twice", "currency": "usd", "amount": "899.00"}
    assert money_rows(shop) == [(0, 2, "needs_refund", money)]  # no payment of ours holds it: payment 0
    assert output.metrics()["PaymentNeedsRefund"] == 1
    queue = shop.client.query(
        TableName=shop.tables["PaymentAuditTable"],
        IndexName="attention-at",
        KeyConditionExpression="attention = :r",
        ExpressionAttributeValues={":r": {"S": "needs_refund"}},
    )["Items"]
    assert [item["details"]["M"]["transaction_id"]["S"] for item in queue] == ["txn_paid_twice"]


def test_gateway_money_held_for_one_order_cannot_pay_another_order_under_the_same_transaction(shop, gateway):
    """txn_held's money came for order 2, which was paid already: it is held for a refund. The same
    transaction reported again as paying order 1 cannot spend that money a second time: 409, and
    order 1 stays unpaid (its payment untouched)."""
    held = gateway_event("completed", payment_id="txn_held", order_reference="2", amount="899.00")
    assert send_gateway(gateway, held).status == 409
    order, payments = shop.store.order(1), shop.store.payments()

    again = gateway_event("completed", payment_id="txn_held", order_reference="1", amount=str(order.total_price))
    answer = send_gateway(gateway, again)

    assert answer.status == 409, answer.body
    assert (shop.store.order(1), shop.store.payments()) == (order, payments)


def test_stripe_money_for_an_order_paid_another_way_is_recorded_once_with_its_session(shop, hook, gateway, output):
    """The customer paid the session, its event is late; the gateway's payment completes the order:
    expiring the superseded session finds it paid (the record and the alarm), and the late event
    and a duplicate of it under another id find it recorded."""
    session, payment, order = checkout(shop)
    (completed,) = press(shop, session, "pay")
    txn = {"payment_id": "txn_first", "order_reference": str(order), "amount": CART_TOTAL}
    assert send_gateway(gateway, gateway_event("completed", **txn)).status == 200  # paid through the gateway

    deliver(hook, completed)
    deliver(hook, {**copy.deepcopy(completed), "id": "evt_test_completed_again"})

    intent = shop.sandbox.session(session)["payment_intent"]
    (row,) = rows(shop, payment, "needs_refund")
    assert row["details"] == stripe_money(intent, CART_TOTAL, session=session)
    assert output.metrics()["PaymentNeedsRefund"] == 1
    assert shop.store.payment(payment).status == "failed"


# ---------------------------------------------------------------------- findings 3, 4, 5, 7


def test_finding_3_the_last_open_payment_failing_cancels_the_checkouts_order_and_gives_its_stock_back(
    shop, hook, gateway
):
    stock = shop.store.stocks()
    session, _, order = checkout(shop)
    txn = {"payment_id": "txn_slow", "order_reference": str(order), "amount": CART_TOTAL}
    assert send_gateway(gateway, gateway_event("processing", **txn)).status == 200
    (expired,) = press(shop, session, "cancel")
    deliver(hook, expired)
    assert shop.store.order(order).status == "pending"  # the gateway payment may still pay it

    assert send_gateway(gateway, gateway_event("failed", **txn)).status == 200

    assert shop.store.order(order).status == "cancelled"
    assert shop.store.stocks() == stock  # given back
    assert shop.store.order(order).stock_reserved is False


def test_finding_4_a_superseded_delayed_payment_is_watched_without_counting_stripe_errors(shop, hook, gateway):
    session, payment, order = checkout(shop)
    (completed,) = press(shop, session, "pay-delayed")
    deliver(hook, completed)
    assert shop.store.payment(payment).status == "processing"
    txn = {"payment_id": "txn_faster", "order_reference": str(order), "amount": CART_TOTAL}
    assert send_gateway(gateway, gateway_event("completed", **txn)).status == 200  # supersedes it

    for _ in range(3):
        summary = sweep(shop)
        assert (summary["stripe_errors"], summary["outcomes"]) == (0, {"processing": 1}), summary

    press(shop, session, "confirm")  # the bank pays, days later: the money must go back
    summary = sweep(shop)
    assert summary["outcomes"] == {"needs_refund": 1}, summary
    assert rows(shop, payment, "needs_refund")[0]["details"]["session"] == session
    assert sweep(shop)["checked"] == 0  # no longer watched


# Finding 5 (a cart in a shape we cannot read, answered 500 or read by guessing) is the data contract's
# now: tests/integration/test_record_contract.py refuses every such shape, and more (issue 20).


def test_finding_7_a_keyed_replay_of_an_expired_checkout_is_409_saying_to_check_out_again(shop, hook):
    first = shop.checkout(1, {"shipping_address": 1}, key="keyed-then-expired")
    assert first.status == 200, first
    (expired,) = press(shop, first.json["id"], "cancel")
    deliver(hook, expired)

    again = shop.checkout(1, {"shipping_address": 1}, key="keyed-then-expired")

    assert again.status == 409, again
    assert again.json == {
        "detail": "The checkout made with this Idempotency-Key has expired; check out again with a new key."
    }
    shop.store.set_cart(1, [{"variant": RUI, "quantity": 1}])
    assert shop.checkout(1, {"shipping_address": 1}, key="a-new-key").status == 200


def test_finding_7_a_keyed_replay_past_the_sessions_expiry_is_409_before_stripe_says_so(shop):
    first = shop.checkout(1, {"shipping_address": 1}, key="keyed-past-expiry")
    payment = int(shop.sandbox.session(first.json["id"])["metadata"]["payment_id"])
    shop.client.update_item(
        TableName=shop.tables["PaymentsTable"],
        Key={"user": {"N": "1"}, "id": {"N": str(payment)}},
        UpdateExpression="SET checkout_expires_at = :e",
        ExpressionAttributeValues={":e": {"N": str(int(time.time()) - 1)}},
    )
    assert shop.checkout(1, {"shipping_address": 1}, key="keyed-past-expiry").status == 409


# ---------------------------------------------------------------------- the sweep reads Stripe's event log


def test_a_lost_refund_is_settled_by_the_sweep_from_stripes_event_log(shop, hook, output):
    session, payment, _, intent = paid(shop, hook)
    press(shop, session, "refund", {"amount": "100"})  # lost
    press(shop, session, "refund")  # lost
    output.clear()

    summary = sweep(shop)

    assert shop.store.payment(payment).status == "refunded"
    assert summary["outcomes"] == {"unchanged": 1, "refunded": 1}, summary  # the partial, then the rest
    (partial,) = rows(shop, payment, "partial_refund")
    assert (partial["source"], partial["details"]) == (
        "reconciliation",
        stripe_money(intent, CART_TOTAL, refunded="1.00"),
    )
    assert rows(shop, payment, "refunded")[0]["source"] == "reconciliation"
    # The completion the webhook applied is listed too: answered by its idempotency record.
    assert summary["events"] == {"listed": 3, "already_applied": 1}, summary
    assert not [r for r in shop.sandbox.requests if r.path.startswith("/v1/checkout/sessions/")]  # no lookups
    assert output.metrics()["PaymentsRefunded"] == 1


def test_a_dispute_whose_events_were_lost_is_recorded_by_the_sweep(shop, hook, output):
    session, payment, _, intent = paid(shop, hook)
    opened = shop.sandbox.open_dispute(session)  # its events are lost
    shop.sandbox.close_dispute(session, won=False)
    output.clear()

    summary = sweep(shop)

    reasons = [(row["reason"], row["source"]) for row in rows(shop, payment)][-3:]
    assert reasons == [
        ("dispute_opened", "reconciliation"),
        ("dispute_funds_withdrawn", "reconciliation"),
        ("dispute_lost", "reconciliation"),
    ]
    assert rows(shop, payment, "dispute_lost")[0]["details"] == stripe_money(intent, CART_TOTAL, dispute=opened["id"])
    assert output.metrics()["PaymentDisputed"] == 1
    assert summary["outcomes"] == {"unchanged": 3}, summary


def test_events_the_webhook_applied_change_nothing_when_the_sweep_reads_them_and_the_other_way_round(
    shop, hook, output
):
    session, _, _, _ = paid(shop, hook)
    (refund,) = press(shop, session, "refund", {"amount": "100"})
    deliver(hook, refund)
    settled = business(shop)
    output.clear()

    summary = sweep(shop)

    assert (summary["outcomes"], summary["events"]) == ({}, {"listed": 2, "already_applied": 2}), summary
    assert business(shop) == settled

    (lost,) = press(shop, session, "refund", {"amount": "200"})
    assert sweep(shop)["outcomes"] == {"unchanged": 1}  # applied by the sweep: recorded
    recorded = business(shop)
    output.clear()
    deliver(hook, lost)  # Stripe's late delivery: answered from the sweep's record
    assert business(shop) == recorded
    assert output.metrics()["DuplicateDeliveries"] == 1


def test_a_refund_listed_before_its_payment_completes_holds_the_sweeps_place_until_it_applies(shop, hook):
    """The completion is nowhere in the log (it is delivered late, by Stripe's retries): the refund
    cannot apply yet. The sweep does not move its place past it, and applies it once it can."""
    session, payment, _ = checkout(shop)
    (completed,) = press(shop, session, "pay")
    with shop.sandbox._lock:  # our own stand-in: the completion is not listed (yet)
        shop.sandbox._events.remove(next(e for e in shop.sandbox._events if e["id"] == completed["id"]))
    press(shop, session, "refund", {"amount": "100"})

    first = sweep(shop)
    assert first["events"] == {"listed": 1, "deferred": 1}, first
    deliver(hook, completed)
    second = sweep(shop)

    assert second["outcomes"] == {"unchanged": 1}, second
    assert [row["details"]["refunded"] for row in rows(shop, payment, "partial_refund")] == ["1.00"]


def test_a_given_up_payment_whose_session_stripe_could_not_describe_is_watched_until_known_closed(shop):
    """Stripe fails the create, then the look for a session it may have made: the give-back cannot
    say whether anything was charged. The payment stays in the sweep's open index (watched) until
    its checkout's expiry has passed and the event log has been read past it."""
    shop.sandbox.fail_next(6, "500")  # the create's three attempts, then the give-back's look

    reply = shop.checkout(1, {"shipping_address": 1})

    assert reply.status == 502, reply
    assert "nothing was charged" not in reply.json["detail"]
    (given_up,) = [p for p in shop.store.payments().values() if p.method == "stripe"]
    assert given_up.status == "failed"
    assert watched(shop) == [given_up.id]
    assert sweep(shop)["outcomes"] == {"watching": 1}
    shop.client.update_item(
        TableName=shop.tables["PaymentsTable"],
        Key={"user": {"N": "1"}, "id": {"N": str(given_up.id)}},
        UpdateExpression="SET checkout_expires_at = :e",
        ExpressionAttributeValues={":e": {"N": str(int(time.time()) - 3600)}},
    )
    assert sweep(shop)["outcomes"] == {"closed": 1}
    assert watched(shop) == []
    assert shop.store.stock(RICE) == 200  # given back at the give-back


def watched(shop: Shop) -> list[int]:
    """The payments in the sweep's sparse open index."""
    items = shop.client.query(
        TableName=shop.tables["PaymentsTable"],
        IndexName="open-created",
        KeyConditionExpression="open_method = :m",
        ExpressionAttributeValues={":m": {"S": "stripe"}},
    )["Items"]
    return sorted(int(item["id"]["N"]) for item in items)


def test_money_whose_transaction_already_paid_another_order_is_recorded_for_a_refund(shop, gateway, output):
    """The gateway reports txn_twice as paying a new order of user 2's first (signed: we cannot tell it
    is wrong), then as the money for order 1, which is real. That money cannot complete order 1 (the
    transaction settles one payment, ever): 409, and it is recorded for a refund under order 1's payment
    with the refund alarm, never only a log line (the simulation's seed 687 of 2,000)."""
    placed = shop.cash(2, {"shipping_address": 2})
    assert placed.status == 201, placed
    other = placed.json["order_id"]
    total = str(shop.store.order(other).total_price)
    first = gateway_event("completed", payment_id="txn_twice", order_reference=str(other), amount=total)
    assert send_gateway(gateway, first).json["message"] == "Payment confirmed"
    assert send_gateway(gateway, gateway_event("processing", payment_id="txn_twice")).status == 200
    output.clear()

    assert send_gateway(gateway, gateway_event("completed", payment_id="txn_twice")).status == 409
    money = {"provider": "gateway", "transaction_id": "txn_twice", "currency": "usd", "amount": "1598.00"}
    held = [row for row in money_rows(shop) if row[1] == 1]
    assert [(order, reason, details) for _, order, reason, details in held] == [(1, "needs_refund", money)]
    assert output.metrics()["PaymentNeedsRefund"] == 1
    assert shop.store.order(1).status == "pending"


class Stopped(BaseException):
    """Lambda stopping the function (its time limit) at this point."""


def test_a_refund_alarm_is_raised_even_if_the_function_stopped_right_after_recording_the_money(
    shop, gateway, output, monkeypatch
):
    """Finding 1's money, reported while the function is stopped between the transaction that records
    it and the alarm: the record is durable, and the next report raises the alarm, once (the
    simulation's seed 1203 of 2,000, where the alarm was never raised)."""
    from halum_payments.logic import settlement

    body = gateway_event("completed", payment_id="txn_stopped", order_reference="2", amount="899.00")
    raise_alarm = settlement.alarm

    def stopped(name: str) -> None:
        raise Stopped(name)

    monkeypatch.setattr(settlement, "alarm", stopped)
    with pytest.raises(Stopped):
        send_gateway(gateway, body)
    monkeypatch.setattr(settlement, "alarm", raise_alarm)
    assert [row[2] for row in money_rows(shop)] == ["needs_refund"]
    assert output.metrics().get("PaymentNeedsRefund", 0) == 0
    for record in shop.store.scan("IdempotencyTable"):  # its in-progress record expires with the invocation
        shop.client.delete_item(TableName=shop.tables["IdempotencyTable"], Key={"id": {"S": record["id"]}})

    for _ in range(2):  # the gateway delivers again: the alarm once, the record still once
        assert send_gateway(gateway, body).status == 409
    assert output.metrics()["PaymentNeedsRefund"] == 1
    assert [row[2] for row in money_rows(shop)] == ["needs_refund"]


def test_the_sweep_saves_its_place_in_the_log_after_each_window_that_applied_an_event(shop, monkeypatch):
    """docs/money.md: the sweep "saves its place as it goes": a run stopped hard (its Lambda killed,
    no code left to run) resumes after the last 6-hour window it applied. Two events 18 hours apart:
    the place after the first is saved before the next window is listed."""
    now = int(time.time())
    not_ours = {"id": "cs_test_someone_elses", "object": "checkout.session", "metadata": {}}
    shop.sandbox.event("checkout.session.expired", not_ours, created=now - 20 * 3600)
    shop.sandbox.event("checkout.session.expired", not_ours, created=now - 2 * 3600)
    steps: list[tuple[str, int]] = []
    save = SweepStateRepository.save_events_read_before
    listing = shop.sandbox._list_events

    def saved(self: Any, created: int) -> None:
        steps.append(("saved", created))
        save(self, created)

    def listed(params: Any) -> Any:
        steps.append(("listed", int(params["created"]["gte"])))  # (the sandbox nests `created[gte]`)
        return listing(params)

    monkeypatch.setattr(SweepStateRepository, "save_events_read_before", saved)
    monkeypatch.setattr(shop.sandbox, "_list_events", listed)

    summary = sweep(shop)
    assert summary["events"] == {"listed": 2}, (str(summary), steps)
    first_window_end = min(start for step, start in steps if step == "listed") + 6 * 3600
    after_first = steps[: steps.index(("listed", first_window_end))]
    assert ("saved", first_window_end) in after_first, steps
