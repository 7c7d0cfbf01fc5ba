"""The actors: users checking out (and double-submitting, retrying, paying existing orders),
customers on Stripe's checkout page, Stripe delivering events (duplicated, late, lost, early, for
sessions that are not ours), the generic gateway (reused transaction ids, wrong amounts, replays),
refunds, reconciliation sweeps at any moment, and hostile-but-signed inputs.

Each actor is a scheduler task; everything it does to the service is a real request to a
function's handler (world.request and friends), and everything it does at Stripe goes through
the simulated Stripe's own dashboard/page actions.
"""

from __future__ import annotations

from decimal import Decimal
from functools import partial
from typing import Any

import jwt
from support import JWT_SECRET

from .functions import Invocation
from .world import CHECKOUT, COD, PRICES, CheckoutRecord, User, World

RETRY_STATUSES = frozenset({429, 500, 503, 504})
STRIPE_RETRY_DELAYS = (60.0, 300.0, 1800.0, 3600.0, 7200.0)  # Stripe backs off for up to 3 days


def start(world: World) -> None:
    """Spawn every actor of the run."""
    cfg = world.config
    active = sorted(world.users)
    for user in (world.users[u] for u in active[: max(cfg.users, cfg.rush)]):
        world.spawn(f"user{user.id}", partial(user_actor, world, user), delay=world.rng.uniform(0, 5))
    for user in (world.users[u] for u in (active[len(active) - cfg.backlog :] if cfg.backlog else ())):
        world.spawn(f"backlog{user.id}", partial(abandoned_checkout, world, user), delay=world.rng.uniform(0, 30))
    for n in range(world.rng.randint(0, 2)):
        world.spawn(f"foreign{n}", lambda: foreign_event(world), delay=world.rng.uniform(1, 600))
    if cfg.rush:
        world.spawn("rush", lambda: rush(world), delay=world.rng.uniform(20, 120))
    world.spawn("sweeps", lambda: scheduled_sweeps(world), delay=world.rng.uniform(0, cfg.sweep_every_minutes * 60))
    world.spawn("operator", lambda: operator(world), delay=world.rng.uniform(600, 1200))
    for n in range(cfg.extra_sweeps):
        world.spawn(f"sweep{n}", world.sweep, delay=world.rng.uniform(1, 3600))
    for n in range(cfg.gateway_events):
        world.spawn(f"gateway{n}", lambda: gateway(world), delay=world.rng.uniform(5, 900))
    for n in range(cfg.hostile):
        world.spawn(f"hostile{n}", partial(hostile, world, n), delay=world.rng.uniform(1, 300))
    for n in range(cfg.reprices):
        world.spawn(f"shop-price{n}", lambda: reprice(world), delay=world.rng.uniform(1, 600))


def connect_stripe(world: World) -> None:
    """Stripe's side of every run (scenarios too): events are delivered, sessions live their life."""
    world.stripe.on_event = lambda event: stripe_sends(world, event)
    world.stripe.on_created = lambda session: stripe_side(world, session)


# ---------------------------------------------------------------------- users


def user_actor(world: World, user: User) -> None:
    rng = world.rng
    cfg = world.config
    for _ in range(cfg.actions_per_user):
        world.sleep(rng.expovariate(1 / cfg.think_seconds))
        action = rng.choices(
            (stripe_checkout, cod_checkout, pay_order, impatient, reads),
            weights=(5, 2, 2 if user.platform_orders else 1, 10 * cfg.impatient, 1),
        )[0]
        action(world, user)


def fill_cart(world: World, user: User) -> None:
    carts = world.state.carts()
    if carts.get(user.id):
        return
    rng = world.rng
    variants = rng.sample(sorted(world.products), k=rng.randint(1, min(2, len(world.products))))
    world.put_cart(user.id, {v: rng.randint(1, 2) for v in sorted(variants)})


def stripe_checkout(world: World, user: User) -> None:
    fill_cart(world, user)
    checkout(world, user, CHECKOUT, {"shipping_address": user.address})


def cod_checkout(world: World, user: User) -> None:
    fill_cart(world, user)
    checkout(world, user, COD, {"shipping_address": user.address})


def checkout(world: World, user: User, path: str, body: dict[str, Any], *, keyed: bool | None = None) -> None:
    """One checkout as a client app makes it: maybe with an Idempotency-Key, maybe double-submitted
    (the same key, or none), retried under its key while the answer is a retryable one."""
    rng = world.rng
    key = user.new_key() if (keyed if keyed is not None else rng.random() < 0.5) else None
    if rng.random() < world.config.double_submit:
        twin = CheckoutRecord(user.id, path, body, key)
        world.checkouts.append(twin)
        world.spawn(f"user{user.id}-twin", lambda: submit(world, user, twin), delay=rng.uniform(0.0, 0.3))
    record = CheckoutRecord(user.id, path, body, key)
    world.checkouts.append(record)
    submit(world, user, record)


def submit(world: World, user: User, record: CheckoutRecord) -> None:
    rng = world.rng
    if record.path == CHECKOUT and rng.random() < world.config.sweep_race:
        world.spawn("sweep-race", world.sweep, delay=rng.uniform(0.1, 3.0))
    for attempt in range(8):
        invocation = world.checkout(user, record.path, record.body, record.key)
        record.invocations.append(invocation)
        if invocation.status == 200 and record.path == CHECKOUT:
            customer(world, invocation)
        if record.key is None or not _retryable(invocation):
            return
        # The same request again under its key: soon for "in progress", later after a kill.
        world.sleep(rng.uniform(1, 4) * (2**attempt) + (30 if invocation.status is None else 0))


def _retryable(invocation: Invocation) -> bool:
    """What a client retries under the same key: no answer, a 5xx "please retry", "in progress"."""
    if invocation.status is None or invocation.status in RETRY_STATUSES:
        return True
    return invocation.status == 409 and "retry-after" in invocation.headers


def abandoned_checkout(world: World, user: User) -> None:
    """A Stripe checkout whose customer never comes back (the sweep will have to look at it)."""
    record = CheckoutRecord(user.id, CHECKOUT, {"shipping_address": user.address}, None)
    world.checkouts.append(record)
    record.invocations.append(world.checkout(user, CHECKOUT, record.body, None))


def pay_order(world: World, user: User, order: int | None = None) -> None:
    """Pay an existing pending order ({"order": N}): one of the platform's, or one seen in the list."""
    rng = world.rng
    if order is None:
        listed = world.list_payments(user.id, "status=pending")
        candidates = sorted(
            {row["order"] for row in (listed.body or {}).get("results", [])} | set(user.platform_orders)
        )
        if rng.random() < 0.15:  # a guessed id: someone else's order (404, never paid)
            orders = world.state.orders()
            candidates = sorted(oid for oid, o in orders.items() if int(o["user"]) != user.id) or candidates
        if not candidates:
            return
        order = rng.choice(candidates)
    checkout(world, user, CHECKOUT, {"order": order})


def impatient(world: World, user: User) -> None:
    """Check out the cart with Stripe and, while it waits for Stripe, pay the new order again from
    another tab (defect 1's race)."""
    fill_cart(world, user)
    record = CheckoutRecord(user.id, CHECKOUT, {"shipping_address": user.address}, None)
    world.checkouts.append(record)
    world.spawn(f"user{user.id}-cart", lambda: submit(world, user, record))
    world.sleep(world.rng.uniform(0.01, 0.6))
    listed = world.list_payments(user.id, "status=pending&method=stripe&ordering=-id")
    rows = (listed.body or {}).get("results", [])
    if rows:
        pay_order(world, user, rows[0]["order"])


def reads(world: World, user: User) -> None:
    rng = world.rng
    query = rng.choice(("", "status=pending", "method=stripe", "ordering=-created_at&page_size=2"))
    listed = world.list_payments(user.id, query)
    rows = (listed.body or {}).get("results", [])
    if rows:
        world.get_payment(user.id, rng.choice(rows)["id"])
    world.get_payment(user.id, rng.randint(1, 40))  # maybe someone else's: 404


def rush(world: World) -> None:
    """Many users pay different existing orders at the same instant (defect 12's contention)."""
    payers = [u for u in world.users.values() if u.platform_orders][: world.config.rush]
    for user in payers:
        order = user.platform_orders[0]
        world.spawn(f"rush{user.id}", partial(pay_order, world, user, order))


# ---------------------------------------------------------------------- customers at Stripe


def customer(world: World, answer: Invocation) -> None:
    """What the customer does with a checkout URL we answered."""
    session = (answer.body or {}).get("id")
    if not isinstance(session, str) or session in world.answered_sessions:
        return
    world.answered_sessions[session] = answer
    rng = world.rng
    plan = (
        world.config.customer_plan
        or rng.choices(
            ("pay", "pay_late", "delayed_ok", "delayed_fail", "abandon", "cancel"), weights=(45, 8, 10, 10, 20, 7)
        )[0]
    )
    delay = {"pay_late": rng.uniform(20 * 60, 45 * 60)}.get(plan, rng.uniform(2, 120))
    if world.config.customer_delay is not None:
        delay = world.config.customer_delay
    world.spawn(f"customer-{session[-6:]}", lambda: pay(world, session, plan), delay=delay)


def pay(world: World, session: str, plan: str) -> None:
    rng = world.rng
    world.scheduler.io(rng.uniform(0.2, 1.0))  # the browser talks to Stripe
    if plan == "abandon":
        return
    if plan == "cancel":
        world.stripe.act(session, "cancel")
        return
    if plan.startswith("delayed"):
        if world.stripe.act(session, "pay-delayed") >= 400:
            return
        world.sleep(rng.uniform(60, 3 * 3600))
        world.stripe.act(session, "confirm" if plan == "delayed_ok" else "decline")
    elif world.stripe.act(session, "pay") >= 400:
        return  # expired meanwhile: Stripe refuses the payment
    if rng.random() < world.config.refunds:
        world.spawn(f"refund-{session[-6:]}", lambda: refund(world, session), delay=rng.uniform(60, 2 * 3600))
    elif rng.random() < world.config.disputes:
        world.spawn(f"dispute-{session[-6:]}", lambda: dispute(world, session), delay=rng.uniform(60, 2 * 3600))


def refund(world: World, session: str) -> None:
    state = world.stripe.session_state(session)
    charge = state["charge"]
    if not charge or charge["refunded"]:
        return
    remaining = charge["amount"] - charge["amount_refunded"]
    amount = remaining if world.rng.random() < 0.6 else max(remaining // 3, 1)
    world.scheduler.io(0.3)
    world.stripe.act(session, "refund", {"amount": str(amount)})


def dispute(world: World, session: str) -> None:
    """The cardholder disputes the charge; weeks later (here: hours) the bank decides."""
    world.scheduler.io(0.3)
    if (
        world.stripe.act(session, "dispute", {"reason": world.rng.choice(("fraudulent", "product_not_received"))})
        >= 400
    ):
        return  # refunded or disputed already
    world.sleep(world.rng.uniform(600, 6 * 3600))
    world.stripe.act(session, world.rng.choice(("dispute-won", "dispute-lost")))


def stripe_side(world: World, session: dict[str, Any]) -> None:
    """Things that happen at Stripe to a session as soon as it exists, whoever asked for it."""
    rng = world.rng
    # Stripe expires an open session at its `expires_at`, and says so (checkout.session.expired).
    world.spawn(
        f"expiry-{session['id'][-6:]}",
        world.stripe.expire_due,
        delay=max(session["expires_at"] - world.clock.now, 0) + 1,
    )
    if rng.random() < world.config.early_pay:
        # A wallet payment right away: its event may beat our record of the session (defect 2).
        world.spawn(
            f"wallet-{session['id'][-6:]}", lambda: pay(world, session["id"], "pay"), delay=rng.uniform(0.01, 1.5)
        )
    if rng.random() < world.config.metadata_edit:
        edit_metadata(world, session["id"], rng.choice(("another_user", "not_a_user")))


# Edited `user_id`s that name no user: something a Dashboard edit can leave behind. A payment whose
# session carries one is still correct (amount, currency and session match) and must settle.
NOT_A_USER = ("12345678901234567890", "\u00b2", "user-7")


def edit_metadata(world: World, session: str, kind: str) -> None:
    """Someone edits a session's metadata in Stripe's Dashboard: `another_user` names a user who
    is not the order's (a mismatch: an alarm, not a payment, is the right outcome), `not_a_user`
    leaves a value that names no user at all (the payment is still correct)."""
    value = str(world.rng.randint(900, 999)) if kind == "another_user" else world.rng.choice(NOT_A_USER)
    world.stripe.edit_metadata(session, user_id=value)
    world.metadata_edits[session] = kind


def stripe_sends(world: World, event: dict[str, Any]) -> None:
    """Stripe delivers an event: maybe late (reordered), maybe twice, maybe never."""
    rng = world.rng
    cfg = world.config
    if world.drop_event(event) or (rng.random() < cfg.event_loss and not world.closing):
        world.lost_events.append(event)
        world.trace.append(f"{world.clock.elapsed:.6f} event lost {event['type']} {event['id']}")
        return
    copies = 2 if rng.random() < cfg.event_dup else 1
    for n in range(copies):
        late = rng.random() < cfg.event_late
        delay = rng.uniform(30, 900) if late else rng.uniform(*cfg.event_delay)
        world.spawn(f"deliver-{event['id'][-6:]}-{n}", lambda: deliver(world, event), delay=delay)


def deliver(world: World, event: dict[str, Any]) -> None:
    for wait in (*STRIPE_RETRY_DELAYS, None):
        invocation = world.deliver_stripe(event)
        if invocation.status is not None and 200 <= invocation.status < 300:
            return
        if wait is None:
            world.lost_events.append(event)
            return
        world.sleep(wait * world.rng.uniform(0.8, 1.2))


def foreign_event(world: World) -> None:
    """An event for a session that is not ours (another integration on the same account), a refund
    of another integration's charge whose metadata happens to name one of our payments, or an event
    of a type we do not handle about our own money."""
    world.scheduler.io(0.01)
    ours = [p for p in world.state.payments().values() if p["status"] == "completed"]
    intents = sorted(p["transaction_id"] for p in ours if p["method"] == "stripe" and p.get("transaction_id"))
    if intents and world.rng.random() < 0.25:
        # A type we do not handle, about our own money: the endpoint subscribed to every event in the
        # Dashboard (docs/api.md: unknown types are 200 and logged).
        intent = world.stripe.payment_intent(world.rng.choice(intents))
        stripe_sends(world, world.stripe.event("payment_intent.succeeded", intent))
        return
    if ours and world.rng.random() < 0.5:
        named = world.rng.choice(ours)
        metadata = {"order_id": str(named["order"]), "payment_id": str(named["id"]), "user_id": str(named["user"])}
        charge = {
            "id": f"ch_foreign{world.rng.randint(1, 10**6)}",
            "object": "charge",
            "amount": int(Decimal(str(named["amount"])) * 100),
            "amount_refunded": int(Decimal(str(named["amount"])) * 100),
            "refunded": True,
            "currency": "usd",
            "payment_intent": None,
            "metadata": metadata,
        }
        stripe_sends(world, world.stripe.event("charge.refunded", charge))
        return
    obj = {
        "id": f"cs_test_foreign{world.rng.randint(1, 10**6)}",
        "object": "checkout.session",
        "amount_total": 1000,
        "currency": "usd",
        "payment_status": "paid",
        "status": "complete",
        "payment_intent": f"pi_foreign{world.rng.randint(1, 10**6)}",
        "metadata": world.rng.choice(({}, {"order_id": "abc"}, {"order_id": "424242", "payment_id": "424242"})),
    }
    stripe_sends(world, world.stripe.event("checkout.session.completed", obj))


def operator(world: World) -> None:
    """Someone on call follows the runbook: money recorded as needing a refund (an audit record
    naming a Stripe payment) is refunded in Stripe's Dashboard."""
    refunded: set[str] = set()
    while not world.closing and world.clock.elapsed < SWEEPING_HOURS * 3600:
        world.sleep(world.rng.uniform(600, 1800))
        flagged = {
            pid for pid, rows in world.state.audit().items() if any(r.get("reason") == "needs_refund" for r in rows)
        }
        for money in list(world.ledger.money.values()):
            if money.provider == "stripe" and money.payment in flagged and money.session not in refunded:
                refunded.add(str(money.session))
                world.stripe.act(str(money.session), "refund")


# ---------------------------------------------------------------------- the generic gateway


def gateway(world: World) -> None:
    """The generic gateway: a payment for some order (right or wrong amount, maybe failing, maybe
    money after a failure), a refund of a captured transaction (in parts or in full), an exact replay
    of an earlier body, or a captured transaction reported again for another order."""
    rng = world.rng
    gw = world.gateway
    previous = [inv.request["raw"] for inv in world.gateway_sends]
    captured = [t for t in gw.transactions.values() if t.status == "completed"]
    orders = world.state.orders()
    draw = rng.random()
    if previous and draw < 0.2:
        world.send_gateway(rng.choice(previous))  # a replay: the same bytes again
        return
    if not orders:
        return
    order = orders[rng.choice(sorted(orders))]
    total = Decimal(str(order["total_price"]))
    if captured and draw < 0.3:
        txn = rng.choice(captured)
        if txn.order != int(order["id"]):
            answer = gw.bogus(txn, int(order["id"]), total)
            _maybe_resend_refused(world, answer)
        return
    refundable = [t for t in captured if t.refunded < t.amount]
    if refundable and draw < 0.45:
        txn = rng.choice(refundable)
        left = txn.amount - txn.refunded
        part = left if rng.random() < 0.5 else max((left / 3).quantize(Decimal("0.01")), Decimal("0.01"))
        gw.refund(txn, part)
        return
    gateway_payment(world, int(order["id"]), total)


def gateway_payment(world: World, order: int, total: Decimal) -> None:
    rng = world.rng
    gw = world.gateway
    txn = gw.open(order)
    if rng.random() < 0.3:
        gw.processing(txn, total)
        world.sleep(rng.uniform(1, 300))
    outcome = rng.choices(("capture", "wrong_amount", "fail"), weights=(7, 1, 2))[0]
    if outcome == "fail":
        _maybe_resend_refused(world, gw.fail(txn, total))
        if rng.random() < 0.25:  # money that moved after the gateway reported a failure
            world.sleep(rng.uniform(10, 600))
            gw.capture(txn, total)
        return
    # A wrong amount: a unit off, a cent off, minor units sent as major ones.
    wrong = total + rng.choice((Decimal(1), Decimal("0.01"), Decimal("-0.01"), total * 99))
    answer = gw.capture(txn, total if outcome == "capture" else wrong)
    _maybe_resend_refused(world, answer)


def _maybe_resend_refused(world: World, answer: Invocation | None) -> None:
    if answer is not None and answer.status is not None and 400 <= answer.status < 500 and world.rng.random() < 0.5:
        world.sleep(world.rng.uniform(1, 120))
        world.send_gateway(answer.request["raw"])  # the gateway (or an attacker) sends the refused body again


# ---------------------------------------------------------------------- sweeps and hostile input


SWEEPING_HOURS = 1.0  # the schedule runs while the actors do; quiescence has its own final sweeps


def scheduled_sweeps(world: World) -> None:
    every = world.config.sweep_every_minutes * 60
    while not world.closing and world.clock.elapsed < SWEEPING_HOURS * 3600:
        world.sweep()
        world.sleep(every)


def reprice(world: World) -> None:
    """The shop changes a product's price (checkouts racing it read again and pay the new one)."""
    rng = world.rng
    variant = rng.choice(sorted(world.products))
    world.reprice(variant, rng.choice(PRICES))


def hostile(world: World, n: int) -> None:
    """Signed or well-formed input that must be refused with a 4xx (defect 5)."""
    if n % 2 == 0:
        huge = "9" * 4400
        payload = (
            '{"id": "evt_huge", "type": "checkout.session.completed", "data": {"object": {"amount_total": '
            + huge
            + "}}}"
        )
        world.deliver_stripe({"id": "evt_huge", "type": "hostile"}, payload=payload)
        nested = '{"id": "evt_deep", "data": ' + "[" * 100_000 + "]" * 100_000 + "}"  # past Python's recursion limit
        world.deliver_stripe({"id": "evt_deep", "type": "hostile"}, payload=nested)
    else:
        now = int(world.clock.now)
        claims = {"token_type": "access", "exp": 10**309, "iat": now, "jti": "hostile", "user_id": "1"}
        token = jwt.encode(claims, JWT_SECRET, algorithm="HS256")
        world.request("ListPaymentsFunction", "GET", "/orders/api/payments/", user=1, token=token, kind="hostile")
