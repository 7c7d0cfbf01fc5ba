"""The reconciliation sweep through its handler (functions/reconcile_payments), against the seeded
tables and the Stripe sandbox: what it settles, what it must leave alone, and how it stops."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from support.checkout import (
    RUI,
    STRIPE_KEY,
    Shop,
)

from halum_payments.clock import format_timestamp, utc_now
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


@contextlib.contextmanager
def killed_once_progress_is_saved(shop: Shop, remaining_ms: int = 10**6) -> Iterator[Clock]:
    """A context that has time until the sweep has saved its progress once (its cursor), and then
    kills the invocation (SystemExit, as Lambda stops it: nothing after runs) at its next look."""

    class Dies(Clock):
        saving = saved = False

        def get_remaining_time_in_millis(self) -> int:
            if self.saved:
                raise SystemExit("killed at the time limit")
            return self.remaining_ms

    dies = Dies(remaining_ms)

    def sending(params: dict[str, Any], **_: Any) -> None:
        dies.saving = params.get("Item", {}).get("name") == {"S": "reconciliation#cursor"}

    def sent(**_: Any) -> None:
        dies.saved = dies.saved or dies.saving

    events = shop.client.meta.events
    events.register("before-parameter-build.dynamodb.PutItem", sending, unique_id="dies-sending")
    events.register("after-call.dynamodb.PutItem", sent, unique_id="dies-sent")
    try:
        yield dies
    finally:
        events.unregister("before-parameter-build.dynamodb.PutItem", unique_id="dies-sending")
        events.unregister("after-call.dynamodb.PutItem", unique_id="dies-sent")


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

    with contextlib.suppress(SystemExit), killed_once_progress_is_saved(shop) as dies:
        sweep(module, dies)
    saved = cursor.load()
    assert saved is not None and saved["id"] == 4  # the first payment's progress was saved
    assert sweep(sweeper(shop))["skipped"]  # the killed sweep's lease runs until its deadline
    later = sweeper(shop)
    later.reconciler._now = lambda: format_timestamp(utc_now() + timedelta(seconds=10**3 + 10))
    rest = sweep(later)  # the next scheduled run, after that deadline
    assert rest["checked"] == 1 and rest["finished"]  # resumed after it
    assert cursor.load() is None


# ---------------------------------------------------------------------------- one sweep at a time
# Lambda keeps at least 100 units of an account's concurrency unreserved, so the reserved concurrency
# of 1 that kept sweeps from overlapping fails the deploy in new or low-quota accounts. Instead a
# sweep holds a lease in the counters table, taken with a conditional write and expiring when its
# own invocation must have ended; a sweep that finds it held does nothing.
def test_a_sweep_that_finds_another_running_does_nothing_and_says_so(shop):
    for user in (1, 2):
        assert shop.checkout(user, {"shipping_address": user}).status == 200
    lease = SweepStateRepository(shop.tables["CountersTable"], shop.client)
    now = int(time.time())
    assert lease.acquire("another-run", now=now, until=now + 300)  # a sweep that is still running

    skipped = sweep(sweeper(shop))

    assert skipped["skipped"] is True and skipped["checked"] == 0 and not skipped["finished"]
    assert [p.status for p in (shop.store.payment(4), shop.store.payment(5))] == ["pending", "pending"]
    assert not lease.acquire("a-third-run", now=now, until=now + 300)  # still the other run's


def test_a_sweep_releases_its_lease_so_the_next_one_runs(shop):
    assert shop.checkout(1, {"shipping_address": 1}).status == 200
    module = sweeper(shop)
    first, second = sweep(module), sweep(module)
    assert not first["skipped"] and not second["skipped"]
    assert first["checked"] == second["checked"] == 1


def test_the_lease_of_a_sweep_that_died_expires_when_its_invocation_must_have_ended(shop):
    """Killed at its time limit, a sweep releases nothing; its lease lasts until that limit only
    (plus a few seconds for the clocks of two Lambda hosts)."""
    assert shop.checkout(1, {"shipping_address": 1}).status == 200
    lease = SweepStateRepository(shop.tables["CountersTable"], shop.client)

    now = int(time.time())
    with contextlib.suppress(SystemExit), killed_once_progress_is_saved(shop, remaining_ms=300_000) as dies:
        sweep(sweeper(shop), dies)
    assert not lease.acquire("next-run", now=now + 1, until=now + 301)  # within the dead sweep's 300 s
    assert not lease.acquire("next-run", now=now + 299, until=now + 599)  # to its last second
    assert lease.acquire("next-run", now=now + 300 + 10, until=now + 610)  # past it
    assert not lease.acquire("third-run", now=now + 311, until=now + 611)


def test_a_lease_write_sent_again_after_its_answer_was_lost_is_still_the_senders(shop):
    """botocore resends a PutItem whose answer was lost; the resend meets the first write's lease.
    It is the same sweep's: taken, not "held by another" (which skipped the sweep, found by the
    simulation's sweep-lease checks)."""
    lease = SweepStateRepository(shop.tables["CountersTable"], shop.client)
    now = int(time.time())
    assert lease.acquire("run-a", now=now, until=now + 300)
    assert lease.acquire("run-a", now=now, until=now + 300)  # the resend
    assert not lease.acquire("run-b", now=now + 1, until=now + 301)


def test_two_sweeps_started_together_settle_each_payment_once(shop):
    """Released at once against one DynamoDB: exactly one takes the lease."""
    from support.environments import run_together

    for user in (1, 2):
        assert shop.checkout(user, {"shipping_address": user}).status == 200
    modules = [sweeper(shop), sweeper(shop)]
    results = run_together([lambda m=m: sweep(m) for m in modules])
    assert sorted(r["skipped"] for r in results) == [False, True]
    assert sum(r["checked"] for r in results) == 2
