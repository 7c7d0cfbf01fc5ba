"""What Stripe's events mean for our payments. The signature is verified before anything here runs."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol

from ..models import Payment, PaymentMethod, PaymentStatus
from ..money import from_minor_units
from ..observability import alarm, logger
from .after_payment import DISPUTE_CLOSED, DISPUTE_EVENTS, AfterPayment
from .rules import OPEN_STATUSES
from .settlement import Change, Facts, Money, Outcome, Settlement, Source

if TYPE_CHECKING:
    from ..gateways.stripe_checkout import StripeCheckoutGateway

# How long a delivered event is remembered, so that its redeliveries are answered, not re-run.
STRIPE_REPLAY_SECONDS = 4 * 24 * 3600  # Stripe retries for 3 days: a day longer

StripeTargets = {
    "checkout.session.async_payment_succeeded": PaymentStatus.COMPLETED,
    "checkout.session.async_payment_failed": PaymentStatus.FAILED,
    "checkout.session.expired": PaymentStatus.FAILED,
}


# Every Stripe event type this service applies (the webhook endpoint's subscription, and what the
# reconciliation sweep lists from Stripe's event log).
STRIPE_EVENT_TYPES = (
    "checkout.session.completed",
    *StripeTargets,
    "charge.refunded",
    *DISPUTE_EVENTS,
    "charge.dispute.closed",
)


class PaymentRecords(Protocol):
    """What refunds and disputes need beyond settlement: the payment (or the refund record) that
    holds a provider transaction's money."""

    def payment_for_transaction(self, method: PaymentMethod, transaction_id: str) -> Payment | None: ...

    def payment(self, user: int, payment_id: int) -> Payment | None: ...

    def holder(self, method: PaymentMethod, transaction_id: str) -> tuple[int, int] | None: ...


class StripeEvents:
    """Applies verified Stripe events. Every outcome but our own fault is acknowledged (200):
    Stripe retries only when a retry can help."""

    def __init__(
        self,
        settlement: Settlement,
        records: PaymentRecords,
        after: AfterPayment,
        intents: Callable[[], StripeCheckoutGateway | None] = lambda: None,
    ) -> None:
        self._settlement = settlement
        self._records = records
        self._after = after
        self._intents = intents  # Stripe, asked only about a dispute of money no payment holds yet

    def handle(self, event: Mapping[str, Any], source: Source = "stripe") -> Outcome:
        kind = str(event.get("type"))
        obj = (event.get("data") or {}).get("object") or {}
        event_id = str(event.get("id"))
        if kind == "checkout.session.completed" or kind in StripeTargets:
            return self.apply_session(kind, obj, event_id, source)
        if kind == "charge.refunded":
            return self._refund(obj, event_id, source)
        if kind in DISPUTE_EVENTS or kind == "charge.dispute.closed":
            return self._dispute(kind, obj, event_id, source)
        logger.info("stripe event type not handled", extra={"event_type": kind, "event_id": event_id})
        return Outcome("ignored", None, None, f"Event type {kind} is not handled.")

    def apply_session(self, kind: str, session: Mapping[str, Any], event_id: str, source: Source = "stripe") -> Outcome:
        """What a session event means; the reconciler calls this too, with the session it fetched."""
        ids = _our_ids(session.get("metadata"))
        if ids is None or not isinstance(session.get("id"), str):
            logger.info("stripe session is not ours", extra={"event_id": event_id})
            return Outcome("unknown", None, None, "Not one of our checkout sessions.")
        order_id, payment_id = ids
        if kind == "checkout.session.completed":
            paid = session.get("payment_status") in ("paid", "no_payment_required")
            target = PaymentStatus.COMPLETED if paid else PaymentStatus.PROCESSING
        else:
            target = StripeTargets[kind]
        metadata = session.get("metadata")
        user, key = _metadata_user(metadata), _metadata_text(metadata, "checkout_key")
        facts = Facts(session_id=session["id"], checkout_key=key, user=user)
        if target != PaymentStatus.FAILED:
            amount = _amount(session.get("amount_total"), session.get("currency"))
            if amount is None:
                alarm("AmountMismatch")
                logger.error("stripe session without a usable amount", extra={"event_id": event_id})
                return Outcome("mismatch", payment_id, None, "Session amount is missing or invalid.")
            facts = replace(facts, amount=amount, currency=str(session["currency"]).lower())
        intent = _object_id(session.get("payment_intent"))
        change = Change(
            order_id=order_id,
            payment_id=payment_id,
            target=target,
            source=source,
            event_id=event_id,
            transaction_id=intent if target == PaymentStatus.COMPLETED else None,
            facts=facts,
            reason={"checkout.session.expired": "expired"}.get(kind, kind),
            money=_session_money(session["id"], intent, facts) if target == PaymentStatus.COMPLETED else None,
            closes_session=target == PaymentStatus.FAILED,
        )
        return self._settlement.apply(change)

    def _refund(self, charge: Mapping[str, Any], event_id: str, source: Source) -> Outcome:
        """`charge.refunded`: the charge's cumulative `amount_refunded`, for the payment its
        PaymentIntent settled (never one its metadata names: finding 2 of issue 18)."""
        intent = _object_id(charge.get("payment_intent"))
        currency = charge.get("currency")
        charged, refunded = _amount(charge.get("amount"), currency), _amount(charge.get("amount_refunded"), currency)
        if intent is None or charged is None or refunded is None:
            logger.info("refund without a PaymentIntent or usable amounts", extra={"event_id": event_id})
            return Outcome("ignored", None, None, "Refund event without a PaymentIntent or usable amounts.")
        payment = self._records.payment_for_transaction(PaymentMethod.STRIPE, intent)
        if payment is None or payment.method != PaymentMethod.STRIPE or payment.transaction_id != intent:
            return self._refund_before_completion(charge, event_id)
        money = Money("stripe", intent, str(currency).lower(), charged, refunded=refunded)
        return self._after.refund(payment, money, event_id=event_id, source=source)

    def _refund_before_completion(self, charge: Mapping[str, Any], event_id: str) -> Outcome:
        """No payment of ours was settled by this PaymentIntent (yet): if the charge's metadata names
        a Stripe payment of ours that is still open, its completion may be on its way (retry
        later); anything else is not ours to refund."""
        metadata = charge.get("metadata")
        ids, user = _our_ids(metadata), _metadata_user(metadata)
        payment = self._records.payment(user, ids[1]) if ids is not None and user is not None else None
        if payment is not None and ids is not None and payment.order == ids[0] and _open_stripe(payment):
            return Outcome("retry_later", payment.id, payment.status, "The refunded payment has not completed yet.")
        logger.info("refund for a charge that settled no payment of ours", extra={"event_id": event_id})
        return Outcome("unknown", None, None, "Not a payment this charge settled.")

    def _dispute(self, kind: str, dispute: Mapping[str, Any], event_id: str, source: Source) -> Outcome:
        """A dispute's step, recorded against the money its PaymentIntent brought."""
        reason = DISPUTE_EVENTS.get(kind) or DISPUTE_CLOSED.get(str(dispute.get("status")))
        intent, dispute_id = _object_id(dispute.get("payment_intent")), dispute.get("id")
        currency = dispute.get("currency")
        amount = _amount(dispute.get("amount"), currency)
        if reason is None or intent is None or amount is None or not isinstance(dispute_id, str):
            logger.info("dispute event not recorded", extra={"event_id": event_id, "event_type": kind})
            return Outcome("ignored", None, None, "Dispute event without a usable outcome, PaymentIntent or amount.")
        held = self._records.holder(PaymentMethod.STRIPE, intent)
        if held is None:
            return self._dispute_before_completion(intent, event_id)
        money = Money("stripe", intent, str(currency).lower(), amount, dispute=dispute_id)
        return self._after.dispute(held, reason, money, event_id=event_id, source=source)

    def _dispute_before_completion(self, intent: str, event_id: str) -> Outcome:
        """No payment holds this PaymentIntent's money yet. A dispute carries no metadata of ours, but
        its PaymentIntent does (our checkout writes it there): if it names one of our Stripe payments
        that is not completed, its completion (or its refund record) is still on its way: retry later
        (the sweep applies the log's older completion first). Anything else is not ours."""
        source = self._intents()
        metadata = source.intent_metadata(intent) if source is not None else None
        ids, user = _our_ids(metadata), _metadata_user(metadata)
        payment = self._records.payment(user, ids[1]) if ids is not None and user is not None else None
        pending = payment is not None and ids is not None and payment.order == ids[0]
        if (
            pending
            and payment is not None
            and payment.method == PaymentMethod.STRIPE
            and payment.status in OPEN_STATUSES | {PaymentStatus.FAILED}
        ):
            return Outcome("retry_later", payment.id, payment.status, "The disputed payment has not settled yet.")
        logger.warning("dispute of a charge that is not ours", extra={"event_id": event_id})
        return Outcome("unknown", None, None, "Not a payment of ours.")


def _session_money(session_id: str, intent: str | None, facts: Facts) -> Money | None:
    """The money a paid session took: recorded for a refund if it cannot complete the payment."""
    if facts.amount is None or facts.currency is None:
        return None
    return Money("stripe", intent or session_id, facts.currency, facts.amount, session=session_id)


def _open_stripe(payment: Payment) -> bool:
    return payment.method == PaymentMethod.STRIPE and payment.status in OPEN_STATUSES


def _object_id(value: Any) -> str | None:
    """A Stripe reference: an id, or an expanded object."""
    if isinstance(value, Mapping):
        value = value.get("id")
    return value if isinstance(value, str) else None


def _metadata_text(metadata: Any, name: str) -> str | None:
    value = metadata.get(name) if isinstance(metadata, Mapping) else None
    return value if isinstance(value, str) and value else None


def _metadata_user(metadata: Any) -> int | None:
    """The user our checkout wrote into the session's metadata (checked against the order)."""
    user = metadata.get("user_id") if isinstance(metadata, Mapping) else None
    return int(user) if isinstance(user, str) and user.isascii() and user.isdigit() and len(user) <= 18 else None


def _our_ids(metadata: Any) -> tuple[int, int] | None:
    if not isinstance(metadata, Mapping):
        return None
    order, payment = metadata.get("order_id"), metadata.get("payment_id")
    if not (isinstance(order, str) and order.isdigit() and isinstance(payment, str) and payment.isdigit()):
        return None
    if len(order) > 18 or len(payment) > 18:
        return None
    return int(order), int(payment)


def _amount(minor: Any, currency: Any) -> Decimal | None:
    if isinstance(minor, bool) or not isinstance(minor, int) or minor < 0 or not isinstance(currency, str):
        return None
    try:
        return from_minor_units(minor, currency)  # (it never raises MoneyError: any whole number converts)
    except ArithmeticError:
        return None
