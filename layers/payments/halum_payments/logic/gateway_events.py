"""What the generic gateway's events mean for our payments. The signature is verified before
anything here runs."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal, Protocol

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema, model_validator

from ..clock import utc_now
from ..errors import BadRequest, Conflict, DomainError, NotFound, RetryLater, Unprocessable
from ..models import Order, Payment, PaymentMethod, PaymentStatus, WebhookAck
from ..money import MoneyError, parse_amount
from ..observability import alarm, logger
from .after_payment import AfterPayment
from .rules import require_order_total
from .settlement import Change, Money, Outcome, Settlement

# How long a delivered event is remembered, so that its redeliveries are answered, not re-run.
GATEWAY_REPLAY_SECONDS = 7 * 24 * 3600

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
        """What makes two deliveries the same event: one transaction's event about one order; for a
        refund, also its (cumulative) amount, so that each refund in part is an event of its own."""
        key = f"{self.payment_id}:{self.order_reference}:{self.event_type}"
        return f"{key}:{self.amount}" if self.event_type == "payment.refunded" else key

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
PARTIAL_REFUND_MESSAGE = "Partial refund recorded"


class GatewayRecords(Protocol):
    def payment_for_transaction(self, method: PaymentMethod, transaction_id: str) -> Payment | None: ...

    def load(self, order_id: int) -> Order | None: ...


class GatewayEvents:
    def __init__(
        self,
        settlement: Settlement,
        records: GatewayRecords,
        after: AfterPayment,
        *,
        max_age_seconds: int | None = None,
        now: Callable[[], datetime] = utc_now,
    ) -> None:
        self._settlement = settlement
        self._records = records
        self._after = after
        self._max_age = timedelta(seconds=max_age_seconds) if max_age_seconds is not None else None
        self._now = now

    def handle(self, event: GatewayEvent) -> WebhookAck:
        if self._max_age is not None and abs(self._now() - event.timestamp) > self._max_age:
            # A body replayed long after it was sent (or dated far ahead): refused before anything.
            raise BadRequest(f"Event timestamp is more than {int(self._max_age.total_seconds())} s from now.")
        if event.event_type == "payment.refunded":
            return self._refund(event)
        target = PaymentStatus(event.status)

        def decide(order: Order, change: Change) -> Change:
            money = Money("gateway", event.payment_id, order.currency, event.amount)
            try:
                require_order_total(order, event.amount, "Amount")
            except Unprocessable:
                logger.error("gateway amount does not match the order total", extra={"order": order.id})
                if target == PaymentStatus.COMPLETED:  # money moved: on the books, alarmed, once
                    pid = _online_payment(order)
                    status = order.payments[pid].status if pid is not None else None
                    self._settlement.needs_refund(order.id, pid, status, money, "gateway", event.key, "amount_mismatch")
                else:
                    alarm("AmountMismatch")
                raise
            # The money this event brings, recorded for a refund if it cannot complete a payment.
            change = replace(change, money=money)
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

    def _refund(self, event: GatewayEvent) -> WebhookAck:
        """`payment.refunded`: its `amount` is what the transaction has had refunded so far (as
        Stripe's `amount_refunded`), for the ONLINE payment that transaction completed."""
        if event.amount <= 0:
            raise Unprocessable("A refund's amount must be more than 0.")
        payment = self._records.payment_for_transaction(PaymentMethod.ONLINE, event.payment_id)
        if payment is None or payment.order != event.order_reference:
            raise self._refund_refusal(event, payment)
        money = Money("gateway", event.payment_id, payment.currency, payment.amount, refunded=event.amount)
        outcome = self._after.refund(payment, money, event_id=event.key, source="gateway", reason=event.event_type)
        if outcome.kind == "mismatch":
            raise Unprocessable(f"Refunded amount {event.amount} is more than the payment's {payment.amount}.")
        if outcome.kind not in ("applied", "unchanged"):
            return self._answer(outcome, PaymentStatus.REFUNDED)
        full = event.amount == payment.amount
        return WebhookAck(message=GATEWAY_MESSAGES[PaymentStatus.REFUNDED] if full else PARTIAL_REFUND_MESSAGE)

    def _refund_refusal(self, event: GatewayEvent, settled: Payment | None) -> DomainError:
        """Why a refund of a transaction that settled no payment of this order cannot apply (yet)."""
        if settled is not None:
            return Conflict(f"Transaction {event.payment_id} paid another order.")
        order = self._records.load(event.order_reference)
        if order is None:
            return NotFound("Order not found.")
        if order.completed_payment is not None:
            return Conflict(f"Order {order.id} already has a completed payment under another transaction.")
        return RetryLater("No completed payment to refund yet. Retry later.")

    @staticmethod
    def _answer(outcome: Outcome, target: PaymentStatus) -> WebhookAck:
        if outcome.kind in ("applied", "unchanged"):  # unchanged: the payment is `target` already
            return WebhookAck(message=GATEWAY_MESSAGES[target])
        if outcome.kind == "unknown":
            raise NotFound("Order not found.")
        if outcome.kind == "ignored":
            return WebhookAck(message=f"No change: {outcome.message}")
        if outcome.kind == "retry_later":
            raise RetryLater(f"{outcome.message} Retry later.")
        raise Conflict(outcome.message)


def _other_online_payment(order: Order) -> int | None:
    """The order's ONLINE payment unless it is the order's completed payment."""
    pid = _online_payment(order)
    return pid if pid != order.completed_payment else None


def _online_payment(order: Order) -> int | None:
    """The order's ONLINE payment, if any. An order has at most one: a gateway event creates it only
    when there is none (settlement's `_plan_new_online_payment`), and later events update it."""
    return next((pid for pid, ref in order.payments.items() if ref.method == PaymentMethod.ONLINE), None)
