"""The reconciliation sweep through its handler (functions/reconcile_payments), against the seeded
tables and the Stripe sandbox: what it settles, what it must leave alone, and how it stops."""

from __future__ import annotations

import contextlib
import threading
from typing import Any

from support.checkout import (
    RUI,
    STRIPE_KEY,
    Shop,
)

from halum_payments.repositories.sweep_state import SweepStateRepository
from local.events import LambdaContext


class Clock:
    """A Lambda context whose remaining time is whatever the test says."""

    def __init__(self, remaining_ms: int) -> None:
        self.remaining_ms = remaining_ms
        self.function_name = "reconcile"
        self.function_version = "$LATEST"
        self.invoked_function_arn = "arn:aws:lambda:us-east-1:000000000000:function:reconcile"
        self.memory_limit_in_mb = 512
        self.aws_request_id = "req-1"

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def sweeper(shop: Shop, **env: str) -> Any:
    return shop.load(
        "reconcile_payments",
        STRIPE_SECRET_KEY=STRIPE_KEY,
        STRIPE_API_BASE=shop.sandbox.base_url,
        STRIPE_TIMEOUT_SECONDS="1",
        RECONCILE_AFTER_MINUTES="0",
        **env,
    )


def sweep(module: Any, context: Any = None) -> dict[str, Any]:
    result: dict[str, Any] = module.lambda_handler({}, context or LambdaContext("reconcile", timeout_seconds=300))
    return result


def test_a_sweep_never_gives_up_a_checkout_that_is_still_waiting_for_stripe(shop):
    """RECONCILE_AFTER_MINUTES=0 sweeps every open payment at once, including one whose checkout is
    still talking to Stripe: a payment without a session is failed only after the checkout
    function's time limit (plus a margin) has passed, so the checkout's URL stays payable."""
    stripe = shop.stripe_function()
    waiting, release = threading.Event(), threading.Event()
    create = stripe.gateway.create_session

    def held(request: Any) -> Any:
        waiting.set()
        assert release.wait(20)
        return create(request)

    stripe.gateway.create_session = held
    replies: list[Any] = []
    checkout = threading.Thread(target=lambda: replies.append(shop.checkout(1, {"shipping_address": 1}, module=stripe)))
    checkout.start()
    assert waiting.wait(20)

    summary = sweep(sweeper(shop))

    assert summary["outcomes"] == {"open": 1}
    release.set()
    checkout.join(20)
    (reply,) = replies
    assert reply.status == 200, reply
    shop.sandbox.submit(f"/checkout/{reply.json['id']}/pay")  # delivers nothing: no webhook URL here
    assert shop.store.payment(4).status == "pending"
    assert sweep(sweeper(shop))["outcomes"] == {"completed": 1}  # the sweep reads it from Stripe
    assert shop.store.order(4).status == "confirmed"


def test_a_payment_whose_checkout_died_before_stripe_is_given_up_once_that_checkout_cannot_run(shop):
    stripe = shop.stripe_function()

    def killed(request: Any) -> Any:
        raise SystemExit("the function was killed")  # nothing after this runs, no give-back

    stripe.gateway.create_session = killed
    with contextlib.suppress(SystemExit):
        shop.checkout(1, {"shipping_address": 1}, module=stripe)
    assert shop.store.payment(4).status == "pending"

    assert sweep(sweeper(shop))["outcomes"] == {"open": 1}  # too young: its checkout may still run
    created_before(shop, 4, seconds=29 + 61)  # the checkout's time limit and the margin have passed
    assert sweep(sweeper(shop))["outcomes"] == {"failed": 1}
    assert shop.store.order(4).status == "cancelled"
    assert shop.store.stock(RUI) == 100  # given back


def created_before(shop: Shop, payment_id: int, seconds: int) -> None:
    """Make the payment `seconds` old (its created_at and the open index's sort key)."""
    from datetime import timedelta

    from halum_payments.clock import format_timestamp, utc_now
    from halum_payments.repositories.payments import sort_key

    created = format_timestamp(utc_now() - timedelta(seconds=seconds))
    shop.client.update_item(
        TableName=shop.tables["PaymentsTable"],
        Key={"user": {"N": "1"}, "id": {"N": str(payment_id)}},
        UpdateExpression="SET created_at = :c, created_sort = :s",
        ExpressionAttributeValues={":c": {"S": created}, ":s": {"S": sort_key(created, payment_id)}},
    )


def test_a_lost_async_failure_is_settled_from_stripes_event_log(shop):
    """A delayed method that failed: the session stays complete and unpaid at Stripe for ever, and its
    async_payment_failed event was lost; the sweep finds that event in Stripe's log (no lookup)."""
    hook = shop.load("stripe_webhook", STRIPE_SECRET_KEY=STRIPE_KEY, STRIPE_API_BASE=shop.sandbox.base_url)
    reply = shop.checkout(1, {"shipping_address": 1})
    session_id = reply.json["id"]
    shop.sandbox.submit(f"/checkout/{session_id}/pay-delayed")
    (completed,) = [e for e in shop.sandbox.events if e["type"] == "checkout.session.completed"]
    from support.webhooks import send_stripe

    assert send_stripe(hook, completed).status == 200
    assert shop.store.payment(4).status == "processing"
    shop.sandbox.submit(f"/checkout/{session_id}/decline")  # its async_payment_failed is never delivered
    looked_up = len(shop.sandbox.requests)

    assert sweep(sweeper(shop))["outcomes"] == {"failed": 1}
    assert shop.store.payment(4).status == "failed"
    assert shop.store.order(4).status == "cancelled"
    assert shop.store.stock(RUI) == 100
    assert [r.path for r in shop.sandbox.requests[looked_up:] if r.path != "/v1/events"] == []


def test_a_sweep_saves_its_progress_as_it_goes_and_never_starts_what_it_cannot_finish(shop):
    """Stopped anywhere (out of time, or killed), the next run resumes after the last payment done;
    a payment is started only if a whole Stripe lookup (with its retries) fits before the reserve."""
    for user in (1, 2):
        assert shop.checkout(user, {"shipping_address": user}).status == 200
    module = sweeper(shop)
    budget = module.reconciler._lookup_budget_ms
    cursor = SweepStateRepository(shop.tables["CountersTable"], shop.client)

    assert sweep(module, Clock(5000 + budget))["checked"] == 0  # not even one fits

    class Dies(Clock):
        def __init__(self) -> None:
            super().__init__(10**6)
            self.asked = 0

        def get_remaining_time_in_millis(self) -> int:
            self.asked += 1
            if cursor.load() is not None:
                raise SystemExit("killed at the time limit")
            return self.remaining_ms

    with contextlib.suppress(SystemExit):
        sweep(module, Dies())
    saved = cursor.load()
    assert saved is not None and saved["id"] == 4  # the first payment's progress was saved
    rest = sweep(sweeper(shop))
    assert rest["checked"] == 1 and rest["finished"]  # resumed after it
    assert cursor.load() is None
