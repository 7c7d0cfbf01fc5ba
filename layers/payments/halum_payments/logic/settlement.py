"""Settlement: applying what a provider (or the reconciler) says happened to a payment.

Every change is planned from a snapshot of the order (which lists its payments) and committed as
ONE DynamoDB transaction whose conditions assert that snapshot: each payment's current status, the
order's status and payment count, and "no completed payment yet" when completing. If anything
moved in between, the transaction is refused and the change is re-planned from a fresh snapshot.
Duplicates and late events therefore change nothing twice, whatever the interleaving.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal, Protocol

from ..clock import now_text
from ..errors import TransientFault
from ..models import OrderStatus, PaymentMethod, PaymentStatus, payment_for
from ..money import amount_text, from_minor_units
from ..observability import alarm, count, logger
from .domain_events import NO_PAYMENT
from .rules import gives_up, may_move, may_move_later, open_payments, settles_for, unpayable

if TYPE_CHECKING:
    from ..gateways.stripe_checkout import CheckoutSession
    from ..models import CartItem, Order, Payment, PaymentRef, RequestKey

Source = Literal["stripe", "gateway", "reconciliation", "checkout"]
OutcomeKind = Literal[
    "applied", "unchanged", "ignored", "retry_later", "needs_refund", "mismatch", "unknown", "conflict", "has_session"
]
Provider = Literal["stripe", "gateway"]
# What became of a given-up payment's Checkout Session when we tried to close it.
SessionFate = Literal["closed", "refund", "processing", "unknown"]


@dataclass(frozen=True, slots=True)
class Money:
    """Money at a provider, as the books record it (docs/money.md): a PaymentIntent or a gateway
    transaction, what it was for, and, for refunds and disputes, how much of it went back."""

    provider: Provider
    transaction_id: str  # the PaymentIntent (pi_...) for Stripe, the gateway's payment_id
    currency: str
    amount: Decimal  # the money in question: captured (needs_refund, refunds) or disputed
    refunded: Decimal | None = None  # refunds: cumulative so far
    dispute: str | None = None  # the dispute's id (dp_...)
    session: str | None = None  # Stripe: the Checkout Session that took the money

    @property
    def method(self) -> PaymentMethod:
        return PaymentMethod.STRIPE if self.provider == "stripe" else PaymentMethod.ONLINE

    def details(self) -> dict[str, str]:
        """The audit row's `details`: decimal strings in the currency's places, currency in lower case."""
        currency = self.currency.lower()
        refunded = amount_text(self.refunded, currency) if self.refunded is not None else None
        optional = {"refunded": refunded, "dispute": self.dispute, "session": self.session}
        return {
            "provider": self.provider,
            "transaction_id": self.transaction_id,
            "currency": currency,
            "amount": amount_text(self.amount, currency),
            **{name: value for name, value in optional.items() if value is not None},
        }

    def fact(self, reason: str, *qualifiers: str) -> str:
        """The name of one fact about this money (`needs_refund#ONLINE#txn_1`): DynamoDB records
        each at most once, whoever reports it and however often."""
        return "#".join((reason, str(self.method), self.transaction_id, *qualifiers))


def session_money(session: CheckoutSession) -> Money:
    """The money a paid Checkout Session took (its PaymentIntent; the session's id if it has none)."""
    currency = str(session.currency or "").lower()
    return Money(
        "stripe",
        session.payment_intent or session.id,
        currency,
        from_minor_units(session.amount_total or 0, currency),
        session=session.id,
    )


@dataclass(frozen=True, slots=True)
class Facts:
    """What must be true of the payment, checked inside the transaction that changes it."""

    amount: Decimal | None = None
    currency: str | None = None
    # The provider's checkout session: the payment's own, or none recorded yet (an event can
    # overtake the checkout that is about to record it); the change then records it.
    session_id: str | None = None
    checkout_key: str | None = None  # our name for the attempt, from the session's metadata
    transaction_id: str | None = None  # the provider transaction the payment must already carry
    user: int | None = None  # the owner the provider was told about (our metadata)
    # No checkout session recorded: giving a checkout up must never undo a payment that a
    # concurrent request has attached a payable session to.
    without_session: bool = False


@dataclass(frozen=True, slots=True)
class Change:
    order_id: int
    payment_id: int | None  # None: create the order's ONLINE payment (generic gateway)
    target: PaymentStatus
    source: Source
    event_id: str | None = None
    transaction_id: str | None = None
    facts: Facts = Facts()
    reason: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    money: Money | None = None  # the provider money a completion brings (recorded if it cannot be kept)
    closes_session: bool = False  # the event says the payment's Checkout Session can no longer be paid


@dataclass(frozen=True, slots=True)
class AuditEntry:
    payment_id: int
    order_id: int
    from_status: PaymentStatus | None
    to_status: PaymentStatus | None
    source: str
    event_id: str | None
    reason: str | None
    at: str
    details: dict[str, Any] = field(default_factory=dict)
    # The order's status after this transaction, when it places or changes the order: the audit row
    # then says so too (the domain events read it from the table's stream: logic/domain_events.py).
    order_to: OrderStatus | None = None


@dataclass(frozen=True, slots=True)
class Transition:
    payment_id: int
    method: PaymentMethod
    from_status: PaymentStatus
    to_status: PaymentStatus
    transaction_id: str | None = None
    facts: Facts | None = None
    # A Stripe payment given up (another payment completed its order, or its checkout gave it back
    # not knowing whether Stripe made a session): its session may still be open (or paid) until
    # Stripe confirms otherwise, so the sweep keeps watching it (until `session_closed`).
    watch_session: bool = False


@dataclass(frozen=True, slots=True)
class Plan:
    """Everything one transaction writes; built from `order` and conditioned on it."""

    order: Order
    user: int
    at: str
    transitions: tuple[Transition, ...] = ()
    new_payment: Payment | None = None
    order_status: OrderStatus | None = None
    completed_payment: int | None = None
    completed_transaction: str | None = None
    release_stock: bool = False
    claim: tuple[PaymentMethod, str, int] | None = None  # provider transaction id -> payment
    audit: tuple[AuditEntry, ...] = ()


@dataclass(frozen=True, slots=True)
class GiveBack:
    """What a checkout that Stripe refused puts back besides its payment, order and stock: the lines
    into its user's cart (none: the order was not the cart's), and its Idempotency-Key (it may try
    again)."""

    user: int
    lines: tuple[CartItem, ...] = ()
    key: RequestKey | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    kind: OutcomeKind
    payment_id: int | None
    status: PaymentStatus | None
    message: str
    superseded: tuple[int, ...] = ()


class CommitConflict(Exception):
    """The transaction's conditions no longer hold. `facts_mismatch` when the payment is in the
    expected status but does not match the change's facts (amount, currency, session)."""

    def __init__(self, *, facts_mismatch: Payment | None = None, claimed: bool = False) -> None:
        super().__init__("settlement conflict")
        self.facts_mismatch = facts_mismatch
        self.claimed = claimed


class SettlementStore(Protocol):
    def load(self, order_id: int) -> Order | None: ...

    def new_payment_id(self) -> int: ...

    def commit(self, plan: Plan, give_back: GiveBack | None = None) -> None: ...

    def record(self, entries: list[AuditEntry]) -> None: ...

    def record_once(self, entry: AuditEntry, fact: str, *, alarmed: bool = False) -> bool:
        """Write `entry` unless `fact` was recorded already (one conditional transaction): True if written."""
        ...

    def alarm_pending(self, fact: str) -> bool:
        """`fact` was recorded with an alarm that no invocation has said it raised."""
        ...

    def alarm_raised(self, fact: str) -> None: ...

    def payments(self, user: int, payment_ids: list[int]) -> list[Payment]: ...

    def session_closed(self, user: int, payment_id: int) -> None:
        """A given-up payment's session is known closed (or alarmed): the sweep stops watching it."""
        ...


def plan_change(
    order: Order, change: Change, *, at: str, new_payment_id: Callable[[], int] | None = None
) -> Plan | Outcome:
    """Pure: what `change` means for this snapshot of the order. `new_payment_id` gives the id of
    the order's ONLINE payment, asked only once the change is sure to create it."""
    if change.payment_id is None:
        return _plan_new_online_payment(order, change, at=at, new_payment_id=new_payment_id)
    pid, target = change.payment_id, change.target
    ref = order.payments.get(pid)
    if ref is None:
        return Outcome("unknown", pid, None, f"Payment {pid} does not belong to order {order.id}.")
    refusal = _refusal(order, change, ref)
    if refusal is not None:
        return refusal
    main = Transition(pid, ref.method, ref.status, target, transaction_id=change.transaction_id, facts=change.facts)
    plan = Plan(
        order=order,
        user=order.user,
        at=at,
        transitions=(main,),
        audit=(_entry(order, pid, ref.status, target, change, at),),
    )
    if target == PaymentStatus.COMPLETED:
        return _completing(plan, change, pid, ref.method)
    if target == PaymentStatus.FAILED and gives_up(order, pid):
        # The last open payment of an order our Stripe checkout created failed (its session
        # expired, or a gateway payment begun meanwhile failed): nothing can pay the order any
        # more, so it is given up and its stock given back. Orders from elsewhere stay pending:
        # the customer may pay another way.
        return _cancelling(plan, order)
    return plan


def _cancelling(plan: Plan, order: Order) -> Plan:
    """`plan` giving its order up: cancelled, its stock given back, as its main audit row says."""
    main, *others = plan.audit
    audit = (replace(main, order_to=OrderStatus.CANCELLED), *others)
    return replace(plan, order_status=OrderStatus.CANCELLED, release_stock=order.stock_reserved, audit=audit)


def _refusal(order: Order, change: Change, ref: PaymentRef) -> Outcome | None:
    """Why `change` cannot apply to the payment `ref` of `order`, if it cannot."""
    pid, target, current = change.payment_id, change.target, ref.status
    if not settles_for(change.facts.user, order, target):
        return Outcome("mismatch", pid, current, f"Order {order.id} belongs to another user.")
    if current == target:
        return Outcome("unchanged", pid, current, f"Payment is already {current}.")
    if target == PaymentStatus.COMPLETED:
        why = unpayable(order, pid)
        if why is not None:
            return Outcome("needs_refund", pid, current, why)
    if may_move(ref.method, current, target):
        return None
    if target == PaymentStatus.COMPLETED:
        return Outcome("needs_refund", pid, current, f"Money arrived for a {current} payment.")
    if may_move_later(current, target):
        return Outcome("retry_later", pid, current, f"Payment is {current}; {target} cannot apply yet.")
    return Outcome("ignored", pid, current, f"Payment is already {current}; {target} ignored.")


def _completing(plan: Plan, change: Change, payment_id: int, method: PaymentMethod) -> Plan:
    """`plan` completing `payment_id`: the order's other open payments fail (superseded), the order
    is confirmed and records its completed payment, and the provider transaction is claimed."""
    order, at = plan.order, plan.at
    superseded = [(pid, ref) for pid, ref in sorted(open_payments(order).items()) if pid != payment_id]
    transitions = [
        Transition(pid, ref.method, ref.status, PaymentStatus.FAILED, watch_session=True) for pid, ref in superseded
    ]
    audit = [
        _entry(order, pid, ref.status, PaymentStatus.FAILED, change, at, reason="superseded") for pid, ref in superseded
    ]
    claimed = change.transaction_id and method != PaymentMethod.COD
    confirms = order.status == OrderStatus.PENDING
    main, *others = plan.audit
    if confirms:
        main = replace(main, order_to=OrderStatus.CONFIRMED)
    return replace(
        plan,
        transitions=(*plan.transitions, *transitions),
        audit=(main, *others, *audit),
        order_status=OrderStatus.CONFIRMED if confirms else None,
        completed_payment=payment_id,
        completed_transaction=change.transaction_id,
        claim=(method, change.transaction_id, payment_id) if claimed and change.transaction_id else None,
    )


def _plan_new_online_payment(
    order: Order, change: Change, *, at: str, new_payment_id: Callable[[], int] | None
) -> Plan | Outcome:
    target = change.target
    why = unpayable(order, None) if target == PaymentStatus.COMPLETED or order.completed_payment else None
    if why is not None:
        return Outcome("needs_refund", None, None, why)
    if target == PaymentStatus.REFUNDED:
        return Outcome("retry_later", None, None, "No completed payment to refund yet.")
    if new_payment_id is None:
        raise ValueError("creating a payment needs its id")
    payment = payment_for(order, new_payment_id(), PaymentMethod.ONLINE, target, at, change.transaction_id)
    audit = (_entry(order, payment.id, None, target, change, at, reason=change.reason or "created"),)
    plan = Plan(order=order, user=order.user, at=at, new_payment=payment, audit=audit)
    if target == PaymentStatus.COMPLETED:
        return _completing(plan, change, payment.id, payment.method)
    if target == PaymentStatus.FAILED and gives_up(order, payment.id):
        return _cancelling(plan, order)
    return plan


def _entry(
    order: Order,
    payment_id: int,
    old: PaymentStatus | None,
    new: PaymentStatus | None,
    change: Change,
    at: str,
    *,
    reason: str | None = None,
) -> AuditEntry:
    why = reason or change.reason
    return AuditEntry(payment_id, order.id, old, new, change.source, change.event_id, why, at, dict(change.details))


class Settlement:
    """Applies changes with optimistic concurrency: plan from a snapshot, commit conditioned on it."""

    ATTEMPTS = 5

    def __init__(
        self,
        store: SettlementStore,
        *,
        expire_session: Callable[[str], CheckoutSession | None] | None = None,
        clock: Callable[[], str] = now_text,
    ) -> None:
        self._store = store
        self._expire_session = expire_session
        self._clock = clock

    def apply(self, change: Change, *, decide: Callable[[Order, Change], Change] | None = None) -> Outcome:
        """Apply `change`. `decide` sees the order as read and may refine the change (or raise a
        domain error to refuse it)."""
        return self._apply(change, decide, None)

    def give_back(self, order_id: int, payment_id: int, returned: GiveBack, failure: str) -> Outcome:
        """The request that created a Stripe payment gives its checkout back when Stripe refused it:
        the payment failed, the order cancelled, stock, cart lines and key back; unless a concurrent
        request attached a session meanwhile (`has_session`: that session is the answer). A failed
        create may still have made a session nobody knows of: the payment stays watched by the sweep
        until that is known (`stop_watching`, `paid_after_giving_up`)."""
        change = Change(
            order_id,
            payment_id,
            PaymentStatus.FAILED,
            "checkout",
            reason="stripe_unavailable",
            facts=Facts(without_session=True),
            details={"error": failure},
        )
        return self._apply(change, None, returned)

    def _apply(
        self, change: Change, decide: Callable[[Order, Change], Change] | None, give_back: GiveBack | None
    ) -> Outcome:
        new_payment_id = functools.cache(self._store.new_payment_id)  # one id, whatever the attempts
        for _ in range(self.ATTEMPTS):
            order = self._store.load(change.order_id)
            if order is None:
                return Outcome("unknown", change.payment_id, None, f"Order {change.order_id} not found.")
            wanted = decide(order, change) if decide else change
            at = self._clock()
            planned = plan_change(order, wanted, at=at, new_payment_id=new_payment_id)
            if isinstance(planned, Outcome):
                return self._settle_without_change(order, wanted, planned, at)
            plan = planned
            if give_back is not None:
                watched = tuple(replace(t, watch_session=t.payment_id == change.payment_id) for t in plan.transitions)
                plan = replace(plan, transitions=watched)
            try:
                self._store.commit(plan, give_back)
            except CommitConflict as conflict:
                if conflict.facts_mismatch is not None and wanted.facts.without_session:
                    payment = conflict.facts_mismatch
                    return Outcome("has_session", payment.id, payment.status, "A checkout session was attached.")
                if conflict.facts_mismatch is not None:
                    payment = conflict.facts_mismatch
                    why = "Amount or currency does not match the payment."
                    return self._mismatched(order, wanted, payment.id, payment.status, at, "amount_mismatch", why)
                if conflict.claimed:
                    # Two reports give one transaction to two orders: the one that came first holds
                    # it; this money cannot be kept, so it is recorded for a refund and alarmed.
                    logger.error("provider transaction already settled another payment", extra={"order": order.id})
                    self._refuse_money(order, wanted)
                    return Outcome(
                        "conflict", wanted.payment_id, None, "This transaction already paid another payment."
                    )
                continue  # someone else moved first: re-plan from what is there now
            return self._applied(plan, wanted)
        raise TransientFault("settlement kept conflicting with concurrent updates")

    # ------------------------------------------------------------------ outcomes

    def _applied(self, plan: Plan, change: Change) -> Outcome:
        main = plan.new_payment.id if plan.new_payment else change.payment_id
        superseded = tuple(t.payment_id for t in plan.transitions if t.payment_id != main)
        for transition in plan.transitions:
            count(f"Payments{transition.to_status.capitalize()}")
        if plan.new_payment:
            count(f"Payments{plan.new_payment.status.capitalize()}")
        logger.info(
            "payment settled",
            extra={
                "payment": main,
                "order": plan.order.id,
                "to": str(change.target),
                "source": change.source,
                "superseded": list(superseded),
                "order_status": plan.order_status,
            },
        )
        stripe_superseded = [
            t.payment_id for t in plan.transitions if t.watch_session and t.method == PaymentMethod.STRIPE
        ]
        if stripe_superseded:
            self._expire_superseded(plan.user, stripe_superseded)
        return Outcome("applied", main, change.target, f"Payment {main} is now {change.target}.", superseded)

    def _expire_superseded(self, user: int, payment_ids: list[int]) -> None:
        """Best effort right after the commit; whatever stays unknown, the sweep settles later."""
        try:
            for payment in self._store.payments(user, payment_ids):
                self.close_given_up_session(payment)
        except Exception:  # noqa: BLE001 - the payments stay in the sweep's open index
            logger.warning("could not expire superseded checkout sessions", extra={"payments": payment_ids})

    def close_given_up_session(self, payment: Payment) -> SessionFate:
        """Make sure nobody can pay the Checkout Session of a payment given up: expire it. "closed"
        (expired, or a delayed method that failed), "refund" (it was paid: the refund alarm is
        raised), "processing" (a delayed method is still deciding: its event will tell), "unknown"
        (no session recorded, or Stripe could not say): the sweep keeps watching it."""
        if not payment.checkout_session_id or self._expire_session is None:
            return "unknown"
        session = self._expire_session(payment.checkout_session_id)
        if session is None:
            return "unknown"
        if session.paid:
            self.paid_after_giving_up(payment, "stripe", session_money(session))
            return "refund"
        if session.closed:
            self._store.session_closed(payment.user, payment.id)
            return "closed"
        return "processing"

    def stop_watching(self, payment: Payment) -> None:
        """A given-up payment's session is known closed: out of the sweep's open index."""
        self._store.session_closed(payment.user, payment.id)

    def paid_after_giving_up(self, payment: Payment, source: Source, money: Money) -> bool:
        """A payment given up (superseded, failed) whose Checkout Session turned out paid: that
        money must be refunded (the alarm and a durable record naming it, once)."""
        recorded = self.needs_refund(payment.order, payment.id, payment.status, money, source, None)
        self._store.session_closed(payment.user, payment.id)  # alarmed: the sweep need not watch it
        return recorded

    def needs_refund(
        self,
        order_id: int,
        payment_id: int | None,
        status: PaymentStatus | None,
        money: Money,
        source: Source,
        event_id: str | None,
        reason: Literal["needs_refund", "amount_mismatch"] = "needs_refund",
    ) -> bool:
        """Money arrived that cannot complete a payment (its order is paid another way, or closed;
        its payment was given up; or it is not the order's total: `amount_mismatch`): recorded once
        per provider transaction under the payment it came for (or NO_PAYMENT), alarmed once
        (`PaymentNeedsRefund`, or `AmountMismatch`). True if recorded now."""
        at, details = self._clock(), money.details()
        entry = AuditEntry(payment_id or NO_PAYMENT, order_id, status, status, source, event_id, reason, at, details)
        fact = money.fact(reason)
        recorded = self._store.record_once(entry, fact, alarmed=True)
        where = {
            "order": order_id,
            "payment": payment_id,
            "provider": money.provider,
            "transaction": money.transaction_id,
        }
        # Raised once it is recorded, and again by a later report if the invocation that recorded it
        # was stopped before raising it (the fact says so): an alarm is never lost, rarely doubled.
        if recorded or self._store.alarm_pending(fact):
            alarm("PaymentNeedsRefund" if reason == "needs_refund" else "AmountMismatch")
            self._store.alarm_raised(fact)
            logger.error("money arrived that cannot be kept: refund it", extra={**where, "amount": str(money.amount)})
        else:
            logger.info("money to refund was recorded already", extra=where)
        return recorded

    def _settle_without_change(self, order: Order, change: Change, outcome: Outcome, at: str) -> Outcome:
        pid = change.payment_id
        if outcome.kind == "needs_refund":
            self._refuse_money(order, change)
        elif outcome.kind == "mismatch":
            return self._mismatched(order, change, pid, outcome.status, at, "mismatch", outcome.message)
        elif outcome.kind == "unknown":
            logger.warning("change for a payment that is not ours", extra={"order": order.id, "payment": pid})
        else:
            logger.info(
                "no change",
                extra={"order": order.id, "payment": pid, "kind": outcome.kind, "reason": outcome.message},
            )
            if change.closes_session and pid is not None and outcome.status == PaymentStatus.FAILED:
                self._store.session_closed(order.user, pid)  # a given-up payment's session is over
        return outcome

    def _refuse_money(self, order: Order, change: Change) -> None:
        """Money for a payment that cannot complete: recorded and alarmed (once), never kept."""
        pid = change.payment_id
        ref = order.payments.get(pid) if pid is not None else None
        if change.money is None:
            raise ValueError("a completion must name the provider money it brings")  # a bug of ours: a 5xx, retried
        status = ref.status if ref is not None else None
        self.needs_refund(
            order.id, pid if ref is not None else None, status, change.money, change.source, change.event_id
        )
        if pid is not None and ref is not None and ref.method == PaymentMethod.STRIPE:
            self._store.session_closed(order.user, pid)  # alarmed: the sweep need not watch it

    def _mismatched(
        self, order: Order, change: Change, pid: int | None, status: PaymentStatus | None, at: str, kind: str, why: str
    ) -> Outcome:
        """Provider facts that do not match the payment (amount, currency, session, user): nothing
        settles; what was reported, and the money if any moved, is recorded for someone to look at."""
        alarm("AmountMismatch")
        logger.error("provider facts do not match the payment; not settled", extra={"order": order.id, "reason": why})
        facts = change.facts
        reported = {
            "reported_amount": str(facts.amount) if facts.amount is not None else None,
            "reported_currency": facts.currency,
            "reported_session": facts.session_id,
            "reported_transaction": facts.transaction_id,
        }
        details = {**change.details, **{k: v for k, v in reported.items() if v is not None}}
        if change.money is not None:  # money that moved: the record names it (docs/money.md)
            details.update(change.money.details())
        if pid is not None:
            self._store.record(
                [AuditEntry(pid, order.id, status, status, change.source, change.event_id, kind, at, details)]
            )
        return Outcome("mismatch", pid, status, why)
