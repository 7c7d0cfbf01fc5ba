"""Scripted schedules: for each defect of issue 12 (and those the simulation found since), the exact
interleaving and faults that show it, through the same world, handlers and invariants as the
random runs; and, marked "mutant", what the random runs rarely or never do, which `make mutants`
showed the simulation blind to (a broken record, a botched secret rotation, sweeps that overlap, a
transaction cancelled on every attempt...). Each scenario must end with every invariant holding: on
the code before the fix, or with the mutant in, each one fails with the invariant named in `expect`.

    python -m simulation --scenario all        # or one name; --trace prints every request
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from functools import partial
from typing import Any

from . import actors
from .config import Config
from .dynamodb import Rule
from .runner import Simulation
from .stripe_world import StripeRule
from .world import CHECKOUT, COD, CheckoutRecord, Result, World

ORDERS = "OrdersTable"


@dataclass(frozen=True)
class Scenario:
    name: str
    defect: str  # issue 12's defect number, or "new" for what the simulation found besides
    title: str
    expect: tuple[str, ...]  # the invariants it breaks on the code before the fix
    script: Callable[[World], None]
    config: dict[str, Any] = field(default_factory=dict)


def run_scenario(scenario: Scenario) -> Result:
    from .runner import warm_up

    warm_up()
    config = Config.quiet(**scenario.config)
    return Simulation(config, scenario.script).run()


# ---------------------------------------------------------------------- helpers


def _submit(world: World, user: int, path: str, body: dict[str, object], key: str | None = None) -> CheckoutRecord:
    record = CheckoutRecord(user, path, body, key)
    world.checkouts.append(record)
    actors.submit(world, world.users[user], record)
    return record


def _spawn_checkout(
    world: World, user: int, path: str, body: dict[str, object], *, key: str | None = None, at: float = 0.0
) -> None:
    world.spawn(f"user{user}-{path.strip('/').split('/')[-1]}", lambda: _submit(world, user, path, body, key), delay=at)


def _cart(user: int) -> dict[str, object]:
    return {"shipping_address": user}


def _gateway_pays_newest_order(world: World) -> None:
    """The customer pays the newest order through the generic gateway, its whole total."""
    order = max(world.state.orders().values(), key=lambda o: int(o["id"]))
    world.gateway.capture(world.gateway.open(int(order["id"])), order["total_price"])


def _of(function: str) -> Callable[[object], bool]:
    return lambda call: getattr(call, "function", None) == function


# ---------------------------------------------------------------------- the defects


def give_back_strands_paid_session(world: World) -> None:
    """1. A cart checkout waits for a slow Stripe; the same order is paid from another tab, whose
    Stripe call fails (the key is in use): it gives everything back and answers 502. Then the first
    answers 200 with a live URL, and the customer pays it."""
    world.stripe.rules.append(StripeRule(lambda c: c.kind == "create", "slow:5", times=1))
    _spawn_checkout(world, 1, CHECKOUT, _cart(1))

    def other_tab() -> None:
        world.sleep(1.0)
        listed = world.list_payments(1, "status=pending&method=stripe")
        order = listed.body["results"][0]["order"]
        _submit(world, 1, CHECKOUT, {"order": order})

    world.spawn("user1-other-tab", other_tab)


def early_event_dropped(world: World) -> None:
    """2. The customer pays with a wallet as soon as the session exists; its event arrives while
    our checkout's write of the session id is still slow (throttled): acknowledged as a mismatch."""
    world.dynamo.rules.append(Rule(lambda c: c.op == "UpdateItem" and _of("CreateStripeOrderFunction")(c), "slow:3"))
    world.stripe.on_created = lambda session: world.spawn(
        "wallet", lambda: actors.pay(world, session["id"], "pay"), delay=0.05
    )
    _spawn_checkout(world, 1, CHECKOUT, _cart(1))


def gateway_transaction_twice(world: World) -> None:
    """3. A gateway transaction id that already paid one order (before the run, as the spec's demo
    data) is sent for another order: it settles a second payment."""
    state = world.state
    orders = state.orders()
    paid = next(o for o in orders.values() if o["status"] == "confirmed")
    transaction = next(p for p in state.payments().values() if int(p["order"]) == int(paid["id"]))["transaction_id"]
    pending = next(o for o in orders.values() if o["status"] == "pending")

    def gateway() -> None:
        world.gateway.bogus(world.gateway.transactions[transaction], int(pending["id"]), pending["total_price"])

    world.spawn("gateway", gateway, delay=10)


def refused_body_replayed(world: World) -> None:
    """4. A gateway body with the wrong amount is refused (422, AmountMismatch); the same bytes
    again raise the alarm again. Sent a minute later, and again just within the week docs/money.md
    says a delivered body is remembered."""
    order = next(iter(world.state.orders().values()))

    def gateway() -> None:
        answer = world.gateway.capture(world.gateway.open(int(order["id"])), order["total_price"] + 1)
        world.sleep(60)
        assert answer is not None
        world.send_gateway(answer.request["raw"])
        world.sleep(7 * 24 * 3600 - 3600)
        world.send_gateway(answer.request["raw"])

    world.spawn("gateway", gateway, delay=10)


def signed_hostile_input(world: World) -> None:
    """5. A validly signed Stripe body with a 4,400-digit number (and one nested 100,000 deep), and a
    validly signed token whose `exp` is 10**309 (fixed at ec16237; fails at its parent 8bc3875)."""
    world.spawn("hostile-stripe", lambda: actors.hostile(world, 0), delay=1)
    world.spawn("hostile-token", lambda: actors.hostile(world, 1), delay=2)


def edited_metadata_mismatch(world: World) -> None:
    """6. The session's metadata is edited in the Dashboard: its `user_id` names no user (a 20-digit
    number); the customer pays; the completion is read against an order guessed from that
    metadata and acknowledged as a mismatch, forever, for a payment that is correct."""

    def edit(session: dict[str, Any]) -> None:
        world.stripe.edit_metadata(session["id"], user_id=actors.NOT_A_USER[0])
        world.metadata_edits[session["id"]] = "not_a_user"

    world.stripe.on_created = edit
    _spawn_checkout(world, 1, CHECKOUT, _cart(1))


def lost_commit_answer(world: World) -> None:
    """7. A COD checkout's transaction commits but its answer is lost; botocore's retry (same
    ClientRequestToken) is throttled as a cancellation, and the layer's own retry sends it again
    without the token: its conditions fail, and the placed order is answered "cart is empty"."""
    first_txn = lambda c: c.op == "TransactWriteItems" and _of("CreateCodOrderFunction")(c)  # noqa: E731
    world.dynamo.rules += [Rule(first_txn, "lost"), Rule(first_txn, "throttle_txn")]
    _spawn_checkout(world, 1, COD, _cart(1))


def committed_answered_503(world: World) -> None:
    """8. A keyed COD checkout commits; completing its idempotency record is throttled past every
    retry (5 attempts: botocore's max_attempts=4 counts retries): 503 "please retry"; the
    retry with the same key answers 400 "cart is empty"."""
    idempotency = world.state.tables["IdempotencyTable"]
    world.dynamo.rules.append(
        Rule(
            lambda c: c.op == "UpdateItem" and idempotency in c.tables and _of("CreateCodOrderFunction")(c),
            "throttle",
            5,
        )
    )
    _spawn_checkout(world, 1, COD, _cart(1), key="double-click-1")


def committed_then_killed(world: World) -> None:
    """8 (the same rule, a Lambda stopped): a keyed Stripe checkout is stopped right after its
    order committed; the client's retry with the same key answers 400 "cart is empty"."""

    # The keyed checkout's I/O points: idempotency put, snapshot, variants, the order transaction.
    world.functions.next_kill["CreateStripeOrderFunction"] = (4, "after")
    _spawn_checkout(world, 1, CHECKOUT, _cart(1), key="double-click-2")


def sweep_fails_live_checkout(world: World) -> None:
    """9. With RECONCILE_AFTER_MINUTES=0 a sweep runs while a checkout waits for Stripe: the
    payment without a session is failed (no_session); the checkout then answers 200 and the
    customer pays."""
    world.stripe.rules.append(StripeRule(lambda c: c.kind == "create", "slow:5", times=1))
    _spawn_checkout(world, 1, CHECKOUT, _cart(1))
    world.spawn("sweep", world.sweep, delay=1.0)


def lost_async_failure(world: World) -> None:
    """10. A delayed payment method: checkout.session.completed (unpaid) arrives, the bank
    declines, and the async_payment_failed event is lost: the sweep reads complete/unpaid as still
    processing, forever."""
    world.drop_event = lambda event: event["type"] == "checkout.session.async_payment_failed"
    _spawn_checkout(world, 1, CHECKOUT, _cart(1))


def sweep_past_time_limit(world: World) -> None:
    """11. Fifteen abandoned checkouts and a Stripe that answers every lookup after the client's
    timeout: each lookup takes 8 s x 3 tries; the sweep starts one with less than that left and is
    stopped by its 300 s timeout, its resume point never saved, its summary never sent."""
    for user in sorted(world.users):
        world.spawn(f"user{user}", partial(actors.abandoned_checkout, world, world.users[user]), delay=user * 0.5)

    def slow_lookups() -> None:
        world.sleep(60)
        world.stripe.rules.append(StripeRule(lambda c: c.kind == "retrieve", "slow:10", times=10**6))
        world.sweep()
        world.stripe.rules.clear()

    world.spawn("sweep", slow_lookups)


def concurrent_payers(world: World) -> None:
    """12. Twelve users pay twelve different orders at the same instant: they contend on the one
    payment-id sequence item and some are refused although nothing of theirs changed."""
    for user in sorted(world.users):
        order = world.users[user].platform_orders[0]
        world.spawn(f"payer{user}", partial(_submit, world, user, CHECKOUT, {"order": order}))


# ---------------------------------------------------------------------- found by the simulation


def superseded_paid_session(world: World) -> None:
    """New: the customer pays a Stripe session but its event is lost; the gateway then pays the
    order: the Stripe payment is superseded, expiring its session is refused (it is complete),
    and nothing ever records that the Stripe money must be refunded."""
    world.drop_event = lambda event: event["type"] == "checkout.session.completed"
    _spawn_checkout(world, 1, CHECKOUT, _cart(1))

    world.spawn("gateway", partial(_gateway_pays_newest_order, world), delay=120)


def attach_conflicts(world: World) -> None:
    """New: a wallet payment's settlement transaction is in flight on the payment when the
    checkout writes the session id: DynamoDB refuses that write (TransactionConflictException),
    which nothing handles: the checkout answers 500 for a session the customer has paid."""
    world.stripe.on_created = lambda session: world.spawn(
        "wallet", lambda: actors.pay(world, session["id"], "pay"), delay=0.01
    )
    world.dynamo.rules.append(
        Rule(lambda c: c.op == "TransactWriteItems" and _of("StripeWebhookFunction")(c), "slow:5")
    )
    world.stripe.rules.append(StripeRule(lambda c: c.kind == "create", "slow:3", times=1))
    _spawn_checkout(world, 1, CHECKOUT, _cart(1))


def sweep_record_answer_lost(world: World) -> None:
    """New (soak seeds 505, 937): a checkout is abandoned and its expiry event never delivered, so the
    sweep applies it from Stripe's log. The sweep's idempotency record for that event is written but
    the answer is lost; botocore's resend finds the record "in progress" (its own, until its
    invocation ends), and the event waited for the next sweep: the order kept its stock past the bound."""
    idempotency = world.state.tables["IdempotencyTable"]
    world.drop_event = lambda event: event["type"] == "checkout.session.expired"
    world.dynamo.rules.append(
        Rule(
            lambda c: c.op == "PutItem" and idempotency in c.tables and _of("ReconcilePaymentsFunction")(c),
            "lost",
        )
    )
    _spawn_checkout(world, 1, CHECKOUT, _cart(1))
    world.spawn("schedule", world.sweep, delay=2300)  # the session expired at 1,800 s; the log is read to 5 min ago


# ---------------------------------------------------------------------- shown by mutants (make mutants)


def overlapping_sweeps(world: World) -> None:
    """A sweep stalls on a slow DynamoDB read of the open payments for 100 s; the next schedule fires
    70 s after it started: the second must find the lease held (for the first one's whole remaining
    time) and do nothing. A lease that expires early lets both work the same payments."""
    for user in sorted(world.users):
        world.spawn(f"user{user}", partial(actors.abandoned_checkout, world, world.users[user]), delay=user * 0.5)
    sweeps_query = lambda c: c.op == "Query" and _of("ReconcilePaymentsFunction")(c)  # noqa: E731
    world.dynamo.rules.append(Rule(sweeps_query, "slow:100"))
    world.spawn("sweep", world.sweep, delay=60)
    world.spawn("next-schedule", world.sweep, delay=130)


def checkout_answers_lost(world: World) -> None:
    """Stripe makes the checkout's session, but its answer is lost on the first try and on both of
    stripe-python's retries (same key): the checkout gives back. Its last call under that key gets
    the session and expires it, unpaid: the answer may say nothing was charged, and must not
    promise a refund of money nobody paid."""
    world.stripe.rules.append(StripeRule(lambda c: c.kind == "create", "lost", times=3))
    _spawn_checkout(world, 1, CHECKOUT, _cart(1))


def checkout_stripe_down(world: World) -> None:
    """Stripe answers 500 to the checkout's session, on every retry, and to the give-back's last
    call under the same key: Stripe cannot say whether a session exists. The answer is a 502/503
    that says the checkout was cancelled and claims nothing about charges; never a 500."""
    world.stripe.rules.append(StripeRule(lambda c: c.kind == "create", "server_error", times=4))
    _spawn_checkout(world, 1, CHECKOUT, _cart(1))


def _lease_write(call: Any) -> bool:  # the sweep's lease is an item of the counters table
    return bool(call.op == "PutItem" and call.body.get("Item", {}).get("name") == {"S": "reconciliation#lease"})


def sweep_lease_denied(world: World) -> None:
    """A deploy drops the sweep's grant on its lease table: DynamoDB answers the lease's PutItem with
    AccessDeniedException. The sweep must fail loudly (a crash, retried and alarmed), never report
    that another sweep holds the lease when none runs."""
    world.dynamo.rules.append(Rule(_lease_write, "denied"))
    world.spawn("schedule", world.sweep, delay=60)


def sweep_lease_answer_lost(world: World) -> None:
    """New: the lease's PutItem is written but its answer lost; botocore sends it again, and the
    condition (no lease, or an expired one) failed on the sweep's own lease: it skipped itself."""
    world.dynamo.rules.append(Rule(_lease_write, "lost"))
    world.spawn("schedule", world.sweep, delay=60)


def given_up_session_expires(world: World) -> None:
    """A Stripe checkout is abandoned; the gateway pays the order, and expiring the superseded
    session fails (Stripe 500s past stripe-python's retries), so the sweep watches it. Stripe then
    expires the session itself and its event is acknowledged: the watch must end there, with no
    more calls to Stripe about that session."""
    world.stripe.rules.append(StripeRule(lambda c: c.kind == "expire", "server_error", times=3))
    _spawn_checkout(world, 1, CHECKOUT, _cart(1))

    world.spawn("gateway", partial(_gateway_pays_newest_order, world), delay=120)
    world.spawn("schedule", world.sweep, delay=35 * 60)  # before the session is over for the sweep anyway


def sweep_races_late_delivery(world: World) -> None:
    """The customer pays, but the completion's delivery fails until the first sweep runs, two days
    later: that sweep cannot list so old an event, asks Stripe for the session (paid) and applies it
    just as Stripe's retry arrives. The webhook commits first; the sweep (throttled once more)
    finds its condition failed on a payment that event completed: a lost race, never a mismatch."""
    held: list[dict[str, Any]] = []

    def drop(event: dict[str, Any]) -> bool:
        if event["type"] == "checkout.session.completed" and not held:
            held.append(event)
            return True
        return False

    def retry_delivery(call: Any, outcome: str) -> None:
        asks = call.function == "ReconcilePaymentsFunction" and call.method == "GET"
        if asks and call.path.startswith("/v1/checkout/sessions/") and held:
            event = held.pop()
            world.spawn("stripe-retries", lambda: world.deliver_stripe(event), delay=0.0)

    world.drop_event = drop
    world.stripe.observers.append(retry_delivery)
    sweeps_txn = lambda c: c.op == "TransactWriteItems" and _of("ReconcilePaymentsFunction")(c)  # noqa: E731
    world.dynamo.rules.append(Rule(sweeps_txn, "throttle", times=2))
    _spawn_checkout(world, 1, CHECKOUT, _cart(1))
    world.spawn("first-schedule", world.sweep, delay=2 * 24 * 3600)


def expiry_listed_late(world: World) -> None:
    """New: abandoned sessions expire; their webhooks are lost and Stripe lists each event 89 s late.
    Sweeps in those 89 s find a payment pending past its session's `expires_at`, the log silent:
    they wait for the log (its 15-minute grace), with no call to Stripe; a later sweep reads it.
    (Four checkouts, some minutes apart: expiry times of every kind.)"""
    world.drop_event = lambda event: event["type"] == "checkout.session.expired"
    world.stripe.listing_lag = lambda event: 89 if event["type"] == "checkout.session.expired" else 0

    def created(session: dict[str, Any]) -> None:
        actors.stripe_side(world, session)
        for after in (3, 15, 40, 65, 88):
            delay = session["expires_at"] + 1 + after - world.clock.now
            world.spawn(f"sweep-{after}", world.sweep, delay=delay)

    world.stripe.on_created = created
    for user in sorted(world.users):
        _spawn_checkout(world, user, CHECKOUT, _cart(user), at=(user - 1) * 250.0)


def price_changes_mid_checkout(world: World) -> None:
    """New: the shop changes the price of a product in the cart while a COD checkout's transaction
    is on its way: the transaction's check of the product fails; the checkout reads again and
    places the order at the new price (never "out of stock": the stock is there)."""
    txn = lambda c: c.op == "TransactWriteItems" and _of("CreateCodOrderFunction")(c)  # noqa: E731
    world.dynamo.rules.append(Rule(txn, "slow:2"))

    def reprice() -> None:
        variant = sorted(world.state.carts()[1])[0]
        price = world.state.variants()[variant]["price"]
        world.reprice(variant, f"{Decimal(str(price)) + 1:.2f}")

    world.spawn("shop", reprice, delay=0.5)
    _spawn_checkout(world, 1, COD, _cart(1))


def broken_order_for_hours(world: World) -> None:
    """New: the shop breaks an order's record just as its customer pays; the payment's completion and
    its refund (the Dashboard, 10 minutes later) never reach our webhook. Every sweep meets them in
    the log and holds its place there (an event that cannot apply yet holds it 3 days); the shop
    repairs the record two hours later, and the next sweep applies both."""
    world.drop_event = lambda event: event["type"] in ("checkout.session.completed", "charge.refunded")

    def created(session: dict[str, Any]) -> None:
        actors.stripe_side(world, session)
        world.break_record("OrdersTable", int(session["metadata"]["order_id"]), currency={"S": "USD"})

        def refund() -> None:
            charge = world.stripe.session_state(session["id"])["charge"]
            world.stripe.act(session["id"], "refund", {"amount": str(charge["amount"])})

        world.spawn("dashboard-refund", refund, delay=600)
        world.spawn("shop-repairs", world.repair_records, delay=2 * 3600)

    def sweeps() -> None:
        for _ in range(16):
            world.sleep(600)
            world.sweep()

    world.stripe.on_created = created
    world.spawn("schedule", sweeps)
    _spawn_checkout(world, 1, CHECKOUT, _cart(1))


def settlers_race(world: World) -> None:
    """New: the gateway reports a payment as processing for an order at the moment its customer pays
    the order's Stripe session; the gateway's transaction is slow. One of the two settlements finds
    the order moved under it and plans again from what is there: no alarm, no money held."""
    slow = lambda c: c.op == "TransactWriteItems" and _of("PaymentWebhookFunction")(c)  # noqa: E731
    world.dynamo.rules.append(Rule(slow, "slow:2"))

    def created(session: dict[str, Any]) -> None:
        actors.stripe_side(world, session)
        order = int(session["metadata"]["order_id"])

        def processing() -> None:
            total = Decimal(str(world.state.orders()[order]["total_price"]))
            world.gateway.processing(world.gateway.open(order), total)

        world.spawn("gateway", processing, delay=1.5)

    world.stripe.on_created = created
    _spawn_checkout(world, 1, CHECKOUT, _cart(1))


def retry_attaches_during_give_up(world: World) -> None:
    """New: a keyed Stripe checkout is stopped right after its order committed; 95 s later (past the
    checkout's time limit and a minute) a sweep gives its sessionless payment up, its read of the
    order slow, while the client's retry under the same key opens and records a session for that
    payment. The sweep's give-up finds a session attached: the payment stays open, no alarm."""
    world.functions.next_kill["CreateStripeOrderFunction"] = (5, "after")  # right after the order commits

    def first_attempt() -> None:  # one request: the client comes back only later
        record = CheckoutRecord(1, CHECKOUT, _cart(1), "retry-later-1")
        world.checkouts.append(record)
        record.invocations.append(world.checkout(world.users[1], CHECKOUT, record.body, record.key))

    world.spawn("user1-first", first_attempt)
    orders = world.state.tables["OrdersTable"]
    slow_load = lambda c: c.op == "GetItem" and orders in c.tables and _of("ReconcilePaymentsFunction")(c)  # noqa: E731
    world.dynamo.rules.append(Rule(slow_load, "slow:3"))
    world.spawn("schedule", world.sweep, delay=95.0)
    _spawn_checkout(world, 1, CHECKOUT, _cart(1), key="retry-later-1", at=95.5)


def key_next_day(world: World) -> None:
    """New: a COD checkout with an Idempotency-Key; the same request a couple of minutes before the
    key's 24 hours end replays it; five minutes after them, with a new cart, the key names nothing
    any more and places a new order. DynamoDB still holds the expired claim (its TTL deletes within
    days, and reads see the item until then): it was replayed for ever."""

    def customer() -> None:
        _submit(world, 1, COD, _cart(1), key="next-day")
        world.sleep(24 * 3600 - 120)
        _submit(world, 1, COD, _cart(1), key="next-day")
        world.sleep(300)
        world.put_cart(1, {1: 1})
        _submit(world, 1, COD, _cart(1), key="next-day")

    world.spawn("user1", customer)


def paid_while_given_up(world: World) -> None:
    """A checkout waits for a slow Stripe; meanwhile the gateway pays its order, so its Stripe payment
    is superseded; the customer pays the session with a wallet the moment Stripe makes it. The
    checkout's expiry call then finds the session paid: its answer says the order is already paid
    and this money will be refunded (recorded and alarmed); it said "this checkout was cancelled",
    of an order placed and paid. Never that the payment provider is unavailable, either."""
    world.stripe.rules.append(StripeRule(lambda c: c.kind == "create", "slow:5", times=1))
    world.stripe.on_created = lambda session: world.spawn(
        "wallet", lambda: actors.pay(world, session["id"], "pay"), delay=0.01
    )
    _spawn_checkout(world, 1, CHECKOUT, _cart(1))

    world.spawn("gateway", partial(_gateway_pays_newest_order, world), delay=0.5)


def first_sweep_after_lookback(world: World) -> None:
    """A checkout is abandoned and its expiry event never delivered; the sweep first runs two days
    later (deployed late, or its schedule was off). Its first read of Stripe's log starts a day back,
    after that event: only asking Stripe about the long-expired session settles the payment and
    gives the order's stock back."""
    world.drop_event = lambda event: event["type"] == "checkout.session.expired"
    _spawn_checkout(world, 1, CHECKOUT, _cart(1))
    world.spawn("first-schedule", world.sweep, delay=2 * 24 * 3600)


def transaction_never_commits(world: World) -> None:
    """A COD checkout's transaction is cancelled (throttled) on every attempt the layer makes: the
    honest answer is 503 "please retry" with nothing placed, never a 201 for an order that is not."""
    txn = lambda c: c.op == "TransactWriteItems" and _of("CreateCodOrderFunction")(c)  # noqa: E731
    world.dynamo.rules.append(Rule(txn, "throttle_txn", times=10))
    _spawn_checkout(world, 1, COD, _cart(1))


def checkout_dies_before_stripe(world: World) -> None:
    """A Stripe checkout (no key) is stopped right after its order committed, before Stripe heard of
    it: no session, no event will ever come. Only the sweep's walk of open payments can give the
    order's stock back."""
    # The unkeyed checkout's I/O points: snapshot, variants, two id blocks, the order transaction.
    world.functions.next_kill["CreateStripeOrderFunction"] = (5, "after")
    _spawn_checkout(world, 1, CHECKOUT, _cart(1))


def broken_records(world: World) -> None:
    """The shop writes records that break their contract (docs/data-model.md), one per customer: a
    cart line of quantity 0, a product without a sku, an address whose country is not ISO (its owner
    and another user send it), an order whose currency is upper case; and it deletes a product, whose
    stock stays as a stub (not broken: a product that is not available, in user 6's cart). Everyone checks out; then the
    shop repairs the records and everyone checks out again."""
    orders = {int(o["user"]): int(o["id"]) for o in world.state.orders().values()}
    for user in range(1, 7):
        world.put_cart(user, {4 if user == 6 else user: 1})
    world.break_record("CartsTable", 1, items={"L": [{"M": {"variant": {"N": "1"}, "quantity": {"N": "0"}}}]})
    world.break_record("ProductVariantsTable", 2, sku={"S": ""})
    world.break_record("ShippingAddressesTable", 3, country={"S": "Bangladesh"})
    world.break_record("ShippingAddressesTable", 5, country={"S": "Bangladesh"})
    world.break_record("OrdersTable", orders[6], currency={"S": "USD"})
    world.delete_variant(4)
    bodies = {1: _cart(1), 2: _cart(2), 3: _cart(3), 4: {"shipping_address": 5}, 5: _cart(5), 6: _cart(6)}
    for user, body in bodies.items():
        _spawn_checkout(world, user, COD, body, at=1.0 + user)
    _spawn_checkout(world, 6, CHECKOUT, {"order": orders[6]}, at=8.0)

    def repair() -> None:
        world.repair_records()
        for user in (1, 2, 3, 5):
            _submit(world, user, COD, _cart(user))
        _submit(world, 6, CHECKOUT, {"order": orders[6]})

    world.spawn("shop-repairs", repair, delay=60)


def unchargeable_order(world: World) -> None:
    """The shop writes an order in yen whose product costs 425.50: no yen amount is that. Paying it
    must be refused before Stripe is asked for a session (a session for 425 or 426 yen would charge
    another amount than the order's)."""
    order = next(iter(world.state.orders().values()))
    line = {"M": {"variant": {"N": "1"}, "quantity": {"N": "1"}, "price": {"N": "425.50"}}}
    world.rewrite_record(
        "OrdersTable", int(order["id"]), currency={"S": "jpy"}, total_price={"N": "425.50"}, items={"L": [line]}
    )
    _spawn_checkout(world, int(order["user"]), CHECKOUT, {"order": int(order["id"])}, at=1.0)


def three_decimal_order(world: World) -> None:
    """New: the shop writes an order in Kuwaiti dinar (three decimal places at Stripe, charged in
    multiples of 10 fils) at 425.50: 425500 fils, which Stripe charges. Paying it gets a session for
    that amount, and the customer pays."""
    order = next(iter(world.state.orders().values()))
    line = {"M": {"variant": {"N": "1"}, "quantity": {"N": "1"}, "price": {"N": "425.50"}}}
    world.rewrite_record(
        "OrdersTable", int(order["id"]), currency={"S": "kwd"}, total_price={"N": "425.50"}, items={"L": [line]}
    )
    _spawn_checkout(world, int(order["user"]), CHECKOUT, {"order": int(order["id"])}, at=1.0)


def empty_webhook_secret(world: World) -> None:
    """A botched rotation puts a blank value (a line break) in the Stripe webhook secret. The environments read it
    again once theirs is SECRETS_MAX_AGE_SECONDS old: an empty value is no secret, so they keep the
    one they have (and log the failed read), and the events Stripe signs go on being applied. (At a
    cold start the same value fails the start, as the template's docs say: not scripted here.)"""
    _spawn_checkout(world, 1, CHECKOUT, _cart(1))  # paid at once: the webhook's environment starts
    world.spawn("operator", lambda: world.set_webhook_secret("\n"), delay=10)  # AWS refuses ""
    _spawn_checkout(world, 2, CHECKOUT, _cart(2), at=390)  # paid when that environment's value is old


PAY = {"customer_plan": "pay", "customer_delay": 2.0}
SCENARIOS = [
    Scenario("give-back-strands-paid-session", "1", "a give-back undoes a payment another request opens a session for",
             ("answered_session_completes",), give_back_strands_paid_session, PAY),
    Scenario("early-event-dropped", "2", "an event before our write of the session id is acknowledged and dropped",
             ("webhook_effect", "false_amount_alarm"), early_event_dropped),
    Scenario("gateway-transaction-twice", "3", "one gateway transaction id settles two payments",
             ("gateway_transaction_unique",), gateway_transaction_twice,
             {"platform_orders": 2, "platform_paid": 1.0, "txn_pool": 1}),
    Scenario("refused-body-replayed", "4", "a refused gateway body raises its alarm again when replayed",
             ("refused_replay_alarm",), refused_body_replayed, {"platform_orders": 1, "platform_paid": 0.0}),
    Scenario("signed-hostile-input", "5", "signed/well-formed input that overflowed into a 500",
             ("documented_answer",), signed_hostile_input),
    Scenario("edited-metadata-mismatch", "6", "a guessed order turns a correct payment into a permanent mismatch",
             ("webhook_effect", "false_amount_alarm", "captured_money_accounted"), edited_metadata_mismatch, PAY),
    Scenario("lost-commit-answer", "7", "a committed transaction whose answer is lost is sent again and fails",
             ("committed_checkout_answered",), lost_commit_answer),
    Scenario("committed-answered-503", "8", "a committed keyed checkout answered 503, then 400 on its retry",
             ("committed_checkout_answered",), committed_answered_503),
    Scenario("committed-then-killed", "8", "a keyed checkout stopped after its commit: its retry answers 400",
             ("committed_checkout_answered",), committed_then_killed),
    Scenario("sweep-fails-live-checkout", "9", "a sweep fails a payment whose session is still being created",
             ("answered_session_completes",), sweep_fails_live_checkout, {**PAY, "reconcile_after_minutes": 0}),
    Scenario("lost-async-failure", "10", "a lost async_payment_failed is never settled by the sweep",
             ("stripe_converged",), lost_async_failure, {"customer_plan": "delayed_fail", "customer_delay": 2.0}),
    Scenario("sweep-past-time-limit", "11", "a sweep stopped at its time limit loses its progress",
             ("sweep_time_limit",), sweep_past_time_limit, {"users": 15, "reconcile_after_minutes": 0}),
    Scenario("concurrent-payers", "12", "paying different orders at once gives spurious conflicts",
             ("spurious_conflict",), concurrent_payers, {"users": 12, "platform_orders": 1, "platform_paid": 0.0}),
    Scenario("superseded-paid-session", "new", "a superseded Stripe payment whose session was paid raises no alarm",
             ("captured_money_accounted",), superseded_paid_session, PAY),
    Scenario("attach-conflicts", "new", "the session-id write conflicts with a settlement in flight: 500",
             ("documented_answer",), attach_conflicts),
    Scenario("sweep-record-answer-lost", "new", "the sweep's own lost idempotency answer defers an event a sweep",
             ("dead_order_released",), sweep_record_answer_lost),
    Scenario("overlapping-sweeps", "mutant", "a sweep started while another runs works too (the lease never holds)",
             ("one_sweep_at_a_time",), overlapping_sweeps, {"users": 4, "reconcile_after_minutes": 0}),
    Scenario("checkout-dies-before-stripe", "mutant", "a payment Stripe never heard of is never given up",
             ("no_payment_left_open",), checkout_dies_before_stripe),
    Scenario("broken-records", "mutant", "records that break their contract are answered wrongly, or alarmed falsely",
             ("broken_record_answered",), broken_records, {"users": 6, "products": 6, "platform_orders": 1}),
    Scenario("unchargeable-order", "mutant", "an order no amount of its currency can pay gets a session",
             ("session_asks_order_total",), unchargeable_order, {**PAY, "platform_orders": 1}),
    Scenario("three-decimal-order", "mutant", "an order in a three-decimal currency is refused as unchargeable",
             ("needless_refusal",), three_decimal_order, {**PAY, "platform_orders": 1}),
    Scenario("empty-webhook-secret", "mutant", "an empty secret value replaces the one that works",
             ("signed_event_accepted",), empty_webhook_secret, {**PAY, "users": 2}),
    Scenario("checkout-answers-lost", "mutant", "a given-back checkout whose session expired unpaid promises a refund",
             ("promise_kept",), checkout_answers_lost),
    Scenario("sweep-lease-denied", "mutant", "a lease write refused by IAM is read as a lease held by another",
             ("one_sweep_at_a_time",), sweep_lease_denied),
    Scenario("sweep-lease-answer-lost", "new", "a sweep whose lease write's answer was lost skips itself",
             ("one_sweep_at_a_time",), sweep_lease_answer_lost),
    Scenario("given-up-session-expires", "mutant", "a watched session's expiry event does not end its watch",
             ("watch_ends",), given_up_session_expires, {"reconcile_after_minutes": 0}),
    Scenario("sweep-races-late-delivery", "mutant", "a settlement that lost a race to the same payment's "
             "completion is read as a mismatch", ("false_amount_alarm",), sweep_races_late_delivery, PAY),
    Scenario("expiry-listed-late", "mutant", "a pending payment is looked up before its session's expiry could be "
             "listed", ("no_call_per_live_session",), expiry_listed_late,
             {"customer_plan": "abandon", "reconcile_after_minutes": 0, "users": 4}),
    Scenario("price-changes-mid-checkout", "new", "a price stored as a decimal string is answered out of stock",
             ("needless_refusal",), price_changes_mid_checkout),
    Scenario("broken-order-for-hours", "mutant", "events held for a broken order are passed after an hour",
             ("refunds_recorded",), broken_order_for_hours, {**PAY, "reconcile_after_minutes": 0}),
    Scenario("settlers-race", "mutant", "a settlement that lost a race is taken for a claimed transaction",
             ("needless_refund",), settlers_race, PAY),
    Scenario("retry-attaches-during-give-up", "mutant", "a give-up that meets an attached session alarms a "
             "mismatch", ("false_amount_alarm",), retry_attaches_during_give_up, {**PAY, "reconcile_after_minutes": 0}),
    Scenario("key-next-day", "new", "an Idempotency-Key replays its checkout past its 24 hours",
             ("idempotent_replay",), key_next_day),
    Scenario("checkout-stripe-down", "mutant", "a give-back that cannot find out about its session crashes",
             ("documented_answer",), checkout_stripe_down),
    Scenario("paid-while-given-up", "new", "a checkout superseded by a gateway payment says its order was cancelled",
             ("committed_checkout_answered",), paid_while_given_up),
    Scenario("first-sweep-after-lookback", "mutant", "a pending payment whose events are older than the log read",
             ("no_payment_left_open",), first_sweep_after_lookback),
    Scenario("transaction-never-commits", "mutant", "a transaction cancelled on every attempt is answered as placed",
             ("placed_answer_true",), transaction_never_commits),
]  # fmt: skip
BY_NAME = {scenario.name: scenario for scenario in SCENARIOS}


def main(which: str, *, show: bool = False) -> int:
    chosen = SCENARIOS if which == "all" else [BY_NAME[which]]
    failed = 0
    for scenario in chosen:
        result = run_scenario(scenario)
        found = [v.invariant for v in result.violations]
        status = "FAILS" if found or result.error else "holds"
        failed += bool(found or result.error)
        expected = "as the code before the fix does" if set(scenario.expect) <= set(found) else ""
        print(f"{scenario.name} (defect {scenario.defect}): {status} {expected}; trace {result.trace_hash}")
        for violation in result.violations:
            print(f"    {violation.invariant}: {violation.detail[:240]}")
        if result.error is not None:
            print(f"    HARNESS ERROR {type(result.error).__name__}: {result.error}")
        if show:
            print("\n".join(result.story))
    print(f"\n{failed} of {len(chosen)} scenarios break an invariant" if failed else "\nevery scenario holds")
    sys.stdout.flush()
    return 1 if failed else 0
