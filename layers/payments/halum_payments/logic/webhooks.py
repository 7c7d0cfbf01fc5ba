"""What provider events mean for our payments. Signatures are verified before anything here runs."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal, Protocol

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema, model_validator

from ..clock import now_text, utc_now
from ..errors import BadRequest, Conflict, DomainError, NotFound, RequestInProgress, RetryLater, Unprocessable
from ..models import Order, Payment, PaymentMethod, PaymentStatus, WebhookAck
from ..money import MoneyError, from_minor_units, parse_amount
from ..observability import count, logger
from .settlement import AuditEntry, Change, Facts, Outcome, Settlement, Source, require_order_total

# ---------------------------------------------------------------- Stripe


# How long a delivered event is remembered, so that its redeliveries are answered, not re-run.
STRIPE_REPLAY_SECONDS = 4 * 24 * 3600  # Stripe retries for 3 days: a day longer
GATEWAY_REPLAY_SECONDS = 7 * 24 * 3600

StripeTargets = {
    "checkout.session.async_payment_succeeded": PaymentStatus.COMPLETED,
    "checkout.session.async_payment_failed": PaymentStatus.FAILED,
    "checkout.session.expired": PaymentStatus.FAILED,
}


class PaymentRecords(Protocol):
    """What a refund needs beyond settlement: finding the payment a charge was for, and noting a
    partial refund."""

    def payment_for_transaction(self, method: PaymentMethod, transaction_id: str) -> Payment | None: ...

    def payment(self, user: int, payment_id: int) -> Payment | None: ...

    def record(self, entries: list[AuditEntry]) -> None: ...


class StripeEvents:
    """Applies verified Stripe events. Every outcome but our own fault is acknowledged (200):
    Stripe retries only when a retry can help."""

    def __init__(self, settlement: Settlement, records: PaymentRecords, clock: Callable[[], str] = now_text) -> None:
        self._settlement = settlement
        self._records = records
        self._clock = clock

    def handle(self, event: Mapping[str, Any]) -> Outcome:
        kind = str(event.get("type"))
        obj = (event.get("data") or {}).get("object") or {}
        event_id = str(event.get("id"))
        if kind == "checkout.session.completed" or kind in StripeTargets:
            return self.apply_session(kind, obj, event_id)
        if kind == "charge.refunded":
            return self._refund(obj, event_id)
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
                count("AmountMismatch")
                logger.error("stripe session without a usable amount", extra={"event_id": event_id})
                return Outcome("mismatch", payment_id, None, "Session amount is missing or invalid.")
            facts = replace(facts, amount=amount, currency=str(session["currency"]).lower())
        intent = session.get("payment_intent")
        if isinstance(intent, Mapping):
            intent = intent.get("id")
        change = Change(
            order_id=order_id,
            payment_id=payment_id,
            target=target,
            source=source,
            event_id=event_id,
            transaction_id=intent if target == PaymentStatus.COMPLETED and isinstance(intent, str) else None,
            facts=facts,
            reason={"checkout.session.expired": "expired"}.get(kind, kind),
        )
        return self._settlement.apply(change)

    def _refund(self, charge: Mapping[str, Any], event_id: str) -> Outcome:
        intent = _object_id(charge.get("payment_intent"))
        payment = self._charged_payment(charge, intent)
        if payment is None:
            logger.info("refund for a charge that is not ours", extra={"event_id": event_id})
            return Outcome("unknown", None, None, "Not one of our payments.")
        refunded, total, currency = charge.get("amount_refunded"), charge.get("amount"), charge.get("currency")
        charged = _amount(total, currency)
        if charged is None or not isinstance(refunded, int) or refunded <= 0:
            return Outcome("ignored", payment.id, None, "Refund event without usable amounts.")
        if charged != payment.amount or str(currency).lower() != payment.currency:
            count("AmountMismatch")
            logger.error("refund amount/currency does not match the payment", extra={"payment": payment.id})
            return Outcome("mismatch", payment.id, None, "Charge does not match the payment.")
        details = {"amount_refunded_minor": refunded, "charge": str(charge.get("id"))}
        if not charge.get("refunded") or refunded < int(str(total)):
            # Partial refund: the payment stays completed; the refund is on the audit trail.
            note = AuditEntry(
                payment.id, payment.order, None, None, "stripe", event_id, "partial_refund", self._clock(), details
            )
            self._records.record([note])
            return Outcome("unchanged", payment.id, PaymentStatus.COMPLETED, "Partial refund recorded.")
        change = Change(
            order_id=payment.order,
            payment_id=payment.id,
            target=PaymentStatus.REFUNDED,
            source="stripe",
            event_id=event_id,
            # Only the payment this PaymentIntent settled: one found through metadata alone may
            # have been paid some other way (it is then recorded as a mismatch, never refunded).
            facts=Facts(amount=payment.amount, currency=payment.currency, transaction_id=intent),
            reason="refunded",
            details=details,
        )
        return self._settlement.apply(change)

    def _charged_payment(self, charge: Mapping[str, Any], intent: str | None) -> Payment | None:
        """The payment a charge paid: the one its PaymentIntent settled, else the one its metadata names."""
        payment = self._records.payment_for_transaction(PaymentMethod.STRIPE, intent) if intent else None
        if payment is not None:
            return payment
        metadata = charge.get("metadata")
        ids, user = _our_ids(metadata), _metadata_user(metadata)
        if ids is None or user is None:
            return None
        payment = self._records.payment(user, ids[1])
        return payment if payment is not None and payment.order == ids[0] else None


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
        return from_minor_units(minor, currency)
    except (MoneyError, ArithmeticError):
        return None


# ---------------------------------------------------------------- generic gateway


_DECIMAL_STRING = re.compile(r"[0-9]{1,16}(\.[0-9]{1,2})?")


def _decimal_string(value: Any) -> Decimal:
    # Plain digits with at most two decimals, as DRF's DecimalField(10, 2) renders and accepts:
    # "1598.000", "1.598E+3" or " 1598" are not amounts a gateway should send.
    if not isinstance(value, str) or not _DECIMAL_STRING.fullmatch(value):
        raise ValueError('must be a decimal string with at most two decimal places, such as "1598.00"')
    try:
        return parse_amount(value)
    except MoneyError as exc:
        raise ValueError(str(exc)) from None


def _order_reference(value: Any) -> int:
    if not isinstance(value, str) or not value.isascii() or not value.isdigit() or len(value) > 18 or int(value) < 1:
        raise ValueError('must be our order id as a string, e.g. "1"')
    return int(value)


GatewayEventType = Literal["payment.completed", "payment.processing", "payment.failed", "payment.refunded"]


class GatewayEvent(BaseModel):
    """The generic gateway's event, strictly typed. Unknown extra fields are ignored."""

    model_config = ConfigDict(extra="ignore", strict=True, frozen=True, defer_build=True)

    event_type: GatewayEventType
    payment_id: Annotated[str, Field(min_length=1, max_length=255, pattern=r"^[\x21-\x7e]+$")]
    # What the validators accept, for the OpenAPI document (their own type would say int / number).
    order_reference: Annotated[
        int,
        BeforeValidator(_order_reference),
        WithJsonSchema({"type": "string", "pattern": "^0*[1-9][0-9]*$", "maxLength": 18, "examples": ["1"]}),
    ]
    amount: Annotated[
        Decimal,
        BeforeValidator(_decimal_string),
        WithJsonSchema({"type": "string", "pattern": r"^[0-9]{1,16}(\.[0-9]{1,2})?$", "examples": ["1598.00"]}),
    ]
    status: Literal["completed", "processing", "failed", "refunded"]
    timestamp: Annotated[datetime, Field(strict=False)]

    @property
    def key(self) -> str:
        """What makes two deliveries the same event: one transaction's event about one order."""
        return f"{self.payment_id}:{self.order_reference}:{self.event_type}"

    @model_validator(mode="after")
    def _consistent(self) -> GatewayEvent:
        if self.event_type != f"payment.{self.status}":
            raise ValueError(f"status '{self.status}' contradicts event_type '{self.event_type}'")
        if self.timestamp.tzinfo is None:
            raise ValueError("timestamp needs a timezone (e.g. 2023-01-15T15:30:00Z)")
        return self


GATEWAY_MESSAGES = {
    PaymentStatus.COMPLETED: "Payment confirmed",
    PaymentStatus.PROCESSING: "Payment processing recorded",
    PaymentStatus.FAILED: "Payment failure recorded",
    PaymentStatus.REFUNDED: "Payment refund recorded",
}


def is_final_refusal(error: DomainError) -> bool:
    """A refusal that no redelivery of the same event can change (a mismatched amount, an order
    paid under another transaction): remembered with the event, so a replay raises no new alarm."""
    return isinstance(error, (Conflict, Unprocessable)) and not isinstance(error, (RetryLater, RequestInProgress))


class GatewayEvents:
    def __init__(
        self,
        settlement: Settlement,
        *,
        max_age_seconds: int | None = None,
        now: Callable[[], datetime] = utc_now,
    ) -> None:
        self._settlement = settlement
        self._max_age = timedelta(seconds=max_age_seconds) if max_age_seconds is not None else None
        self._now = now

    def handle(self, event: GatewayEvent) -> WebhookAck:
        if self._max_age is not None and abs(self._now() - event.timestamp) > self._max_age:
            # A body replayed long after it was sent (or dated far ahead): refused before anything.
            raise BadRequest(f"Event timestamp is more than {int(self._max_age.total_seconds())} s from now.")
        target = PaymentStatus(event.status)

        def decide(order: Order, change: Change) -> Change:
            try:
                require_order_total(order, event.amount, "Amount")
            except Unprocessable:
                count("AmountMismatch")
                logger.error("gateway amount does not match the order total", extra={"order": order.id})
                raise
            if order.completed_payment is not None and order.completed_transaction != event.payment_id:
                if target != PaymentStatus.COMPLETED:
                    raise Conflict(f"Order {order.id} already has a completed payment under another transaction.")
                # Money moved for an order that is paid already: settlement refuses it as
                # needs_refund (audit record on our ONLINE payment if there is one, metric, error
                # log), answered 409 below. It never completes a second payment.
                return replace(change, payment_id=_other_online_payment(order))
            return replace(change, payment_id=_online_payment(order))

        change = Change(
            order_id=event.order_reference,
            payment_id=None,
            target=target,
            source="gateway",
            event_id=event.key,
            transaction_id=event.payment_id,
            reason=event.event_type,
            details={"gateway_timestamp": event.timestamp.isoformat()},
        )
        outcome = self._settlement.apply(change, decide=decide)
        return self._answer(outcome, target)

    @staticmethod
    def _answer(outcome: Outcome, target: PaymentStatus) -> WebhookAck:
        if outcome.kind in ("applied", "unchanged") and (outcome.status == target or outcome.kind == "applied"):
            return WebhookAck(message=GATEWAY_MESSAGES[target])
        if outcome.kind == "unknown":
            raise NotFound("Order not found.")
        if outcome.kind == "ignored":
            return WebhookAck(message=f"No change: {outcome.message}")
        if outcome.kind == "retry_later":
            raise RetryLater(f"{outcome.message} Retry later.")
        raise Conflict(outcome.message)


def _other_online_payment(order: Order) -> int | None:
    """The order's newest ONLINE payment that is not its completed payment (e.g. one superseded)."""
    others = [
        pid
        for pid, ref in order.payments.items()
        if ref.method == PaymentMethod.ONLINE and pid != order.completed_payment
    ]
    return max(others, default=None)


def _online_payment(order: Order) -> int | None:
    """The order's ONLINE payment to update: the completed one, else the newest open one, else the newest."""
    online = sorted(pid for pid, ref in order.payments.items() if ref.method == PaymentMethod.ONLINE)
    if order.completed_payment in online:
        return order.completed_payment
    open_online = [
        pid for pid in online if order.payments[pid].status in (PaymentStatus.PENDING, PaymentStatus.PROCESSING)
    ]
    candidates = open_online or online
    return candidates[-1] if candidates else None
