"""Paths whose AWS permissions no other integration test reaches, run through the deployed handlers
so that the IAM conformance verdicts (test_iam_conformance.py) judge every grant on a real call:
the reconciler settling checkouts whose webhooks were lost (from Stripe's event log, and by a
session lookup when the log no longer holds a payment's events), and a keyed COD refusal."""

from __future__ import annotations

import contextvars
import time
from typing import Any

from support.checkout import (
    STRIPE_KEY,
    Shop,
)

from local.events import LambdaContext, scheduled_event

RUI = 1


def sweep(shop: Shop, context: LambdaContext | None = None, **env: str) -> dict[str, Any]:
    """One scheduled run of the reconciler as deployed, checking every open payment now."""
    module = shop.load(
        "reconcile_payments",
        STRIPE_SECRET_KEY=STRIPE_KEY,
        STRIPE_API_BASE=shop.sandbox.base_url,
        RECONCILE_AFTER_MINUTES="0",
        **env,
    )
    summary: dict[str, Any] = module.lambda_handler(scheduled_event(), context or LambdaContext("reconcile", 300))
    return summary


def checkout(shop: Shop, body: dict[str, Any]) -> tuple[str, int]:
    reply = shop.checkout(1, body)
    assert reply.status == 200, reply
    session = shop.sandbox.session(reply.json["id"])
    return session["id"], int(session["metadata"]["payment_id"])


def press(shop: Shop, session_id: str, button: str) -> None:
    status, _ = shop.sandbox.submit(f"/checkout/{session_id}/{button}")  # no webhook is delivered
    assert status == 303


def test_the_sweep_completes_a_paid_checkout_and_fails_a_cancelled_one_giving_stock_back(shop):
    paid_session, paid_payment = checkout(shop, {"shipping_address": 1})
    press(shop, paid_session, "pay")
    stock = shop.store.stock(RUI)
    shop.seed({"carts": [{"user": 1, "items": [{"variant": RUI, "quantity": 3}]}]})
    cancelled_session, cancelled_payment = checkout(shop, {"shipping_address": 1})
    assert shop.store.stock(RUI) == stock - 3
    press(shop, cancelled_session, "cancel")

    summary = sweep(shop)

    assert (summary["events"]["listed"], summary["outcomes"]) == (2, {"completed": 1, "failed": 1}), summary
    assert shop.store.payment(paid_payment).status == "completed"
    assert shop.store.payment(cancelled_payment).status == "failed"
    assert shop.store.stock(RUI) == stock


def test_the_sweep_completes_a_stripe_payment_of_an_existing_order_reading_the_order(shop):
    """Order 1 (seeded, with its COD payment) is not shaped as a checkout predicts: the order is read."""
    session, payment = checkout(shop, {"order": 1})
    press(shop, session, "pay")

    sweep(shop)

    assert shop.store.payment(payment).status == "completed"
    assert shop.store.order(1).status == "confirmed"


def test_a_keyed_cod_refusal_is_forgotten_so_the_corrected_request_runs(shop):
    refused = shop.cash(1, {"shipping_address": 999}, key="cod-fix-the-address")
    assert refused.status == 400, refused
    placed = shop.cash(1, {"shipping_address": 1}, key="cod-fix-the-address")
    assert placed.status == 201, placed


def test_an_amount_stripe_reports_differently_is_audited_and_not_settled(shop):
    session, payment = checkout(shop, {"shipping_address": 1})
    press(shop, session, "pay")
    with shop.sandbox._lock:  # our own stand-in: Stripe reporting another amount than we asked for
        shop.sandbox._events[-1]["data"]["object"]["amount_total"] += 100

    sweep(shop)

    assert shop.store.payment(payment).status == "pending"
    assert [entry["reason"] for entry in shop.store.audit(payment)][-1] == "amount_mismatch"


class OutOfTimeOnce(LambdaContext):
    """Time enough until `done()` says so, then below what the sweep needs to start another event
    (its reserve and one event's budget), though still enough to finish the AWS calls in flight."""

    def __init__(self, done: Any) -> None:
        super().__init__("reconcile", 300)
        self.done = done

    def get_remaining_time_in_millis(self) -> int:
        return 6_000 if self.done() else 60_000


def test_a_sweep_out_of_time_saves_where_it_stopped_and_the_next_run_resumes_there(shop):
    first, first_payment = checkout(shop, {"shipping_address": 1})
    shop.seed({"carts": [{"user": 1, "items": [{"variant": RUI, "quantity": 1}]}]})
    second, second_payment = checkout(shop, {"shipping_address": 1})
    for session in (first, second):
        press(shop, session, "pay")

    def first_done() -> bool:  # read outside the function's attribution: the sweep's role need not Scan
        return contextvars.Context().run(lambda: shop.store.payment(first_payment).status == "completed")

    stopped = sweep(shop, OutOfTimeOnce(first_done))  # the oldest event only, then out of time
    assert (stopped["outcomes"], stopped["finished"]) == ({"completed": 1}, False), stopped
    assert shop.store.payment(second_payment).status == "pending"

    resumed = sweep(shop)
    assert (resumed["outcomes"], resumed["finished"]) == ({"completed": 1}, True), resumed
    assert resumed["events"]["already_applied"] == 1  # the first one, read again past the saved place
    assert shop.store.payment(second_payment).status == "completed"


def test_a_payment_whose_events_stripe_no_longer_holds_is_looked_up(shop):
    """Pending long after its session expired, the log read past that, and no event of it in Stripe's
    log (older than the log's 30 days, or than the sweep's first run): the one case the sweep asks
    Stripe about a payment. The open index is walked in batches, saving its place as it goes."""
    sessions = []
    for _ in range(2):
        shop.seed({"carts": [{"user": 1, "items": [{"variant": RUI, "quantity": 1}]}]})
        sessions.append(checkout(shop, {"shipping_address": 1}))
    for session, payment in sessions:
        press(shop, session, "pay")
        expired_long_ago(shop, payment)
    with shop.sandbox._lock:
        shop.sandbox._events.clear()  # Stripe's log no longer holds them

    summary = sweep(shop, RECONCILE_BATCH_SIZE="1")

    assert (summary["checked"], summary["outcomes"], summary["finished"]) == (2, {"completed": 2}, True), summary
    assert [shop.store.payment(payment).status for _, payment in sessions] == ["completed", "completed"]


def expired_long_ago(shop: Shop, payment_id: int) -> None:
    shop.client.update_item(
        TableName=shop.tables["PaymentsTable"],
        Key={"user": {"N": "1"}, "id": {"N": str(payment_id)}},
        UpdateExpression="SET checkout_expires_at = :e",
        ExpressionAttributeValues={":e": {"N": str(int(time.time()) - 3600)}},
    )
