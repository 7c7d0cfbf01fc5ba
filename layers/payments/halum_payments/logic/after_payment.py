"""The money that moves after a payment completed: refunds (in part, several, or in full) and
disputes. The provider says which transaction the money belongs to (a PaymentIntent, a gateway
transaction id); the payment is the one that transaction settled (claimed when it completed),
never one named by metadata alone. Each fact is recorded once, whoever reports it (the webhook, a
redelivery, the reconciliation sweep): DynamoDB holds the fact's name under a condition.

Refund amounts are cumulative (what the transaction has had refunded so far, as Stripe's
`amount_refunded`): a report is idempotent and its order does not matter. Below the payment's amount
it is a partial refund (recorded, the payment stays completed, nothing alarms); equal to it, the
payment becomes `refunded`; above it, or in another currency, a mismatch (alarmed, nothing changes).

A dispute never changes the payment's status: the spec's statuses have no "disputed", and each
of the others would be false (the money was captured: not `failed`; the bank took it back under a
chargeback, which is not a refund: not `refunded`). The audit trail says what happened to it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from ..clock import now_text
from ..models import Payment, PaymentStatus
from ..money import amount_text
from ..observability import alarm, logger
from .rules import same_money
from .settlement import AuditEntry, Change, Facts, Money, Outcome, Settlement, SettlementStore, Source

DisputeReason = Literal[
    "dispute_opened", "dispute_funds_withdrawn", "dispute_funds_reinstated", "dispute_won", "dispute_lost"
]
# What each Stripe dispute event records (closed: by the dispute's final status).
DISPUTE_EVENTS: dict[str, DisputeReason] = {
    "charge.dispute.created": "dispute_opened",
    "charge.dispute.funds_withdrawn": "dispute_funds_withdrawn",
    "charge.dispute.funds_reinstated": "dispute_funds_reinstated",
}
DISPUTE_CLOSED: dict[str, DisputeReason] = {"won": "dispute_won", "lost": "dispute_lost"}


class AfterPayment:
    def __init__(self, settlement: Settlement, store: SettlementStore, clock: Callable[[], str] = now_text) -> None:
        self._settlement = settlement
        self._store = store
        self._clock = clock

    def refund(
        self, payment: Payment, money: Money, *, event_id: str | None, source: Source, reason: str = "refunded"
    ) -> Outcome:
        """`money.refunded` (cumulative) of the payment `money.transaction_id` settled went back;
        `reason`: the audit reason of the transition to `refunded`, when it is in full."""
        refunded = money.refunded
        if refunded is None or refunded <= 0:
            return Outcome("ignored", payment.id, payment.status, "Refund without a refunded amount.")
        if not same_money(money.amount, money.currency, payment.amount, payment.currency) or refunded > money.amount:
            # A refund that does not match the payment: no refund recorded; the money held (alarmed once).
            self._settlement.needs_refund(
                payment.order, payment.id, payment.status, money, source, event_id, "amount_mismatch"
            )
            return Outcome("mismatch", payment.id, payment.status, "Refund does not match the payment.")
        if refunded == money.amount:
            change = Change(
                order_id=payment.order,
                payment_id=payment.id,
                target=PaymentStatus.REFUNDED,
                source=source,
                event_id=event_id,
                # Only the payment this transaction settled, still for that amount and currency.
                facts=Facts(amount=payment.amount, currency=payment.currency, transaction_id=money.transaction_id),
                reason=reason,
                details=money.details(),
            )
            return self._settlement.apply(change)
        entry = self._entry(payment.id, payment.order, payment.status, "partial_refund", money, event_id, source)
        fact = money.fact("partial_refund", amount_text(refunded, money.currency))
        recorded = self._store.record_once(entry, fact)
        logger.info(
            "partial refund recorded" if recorded else "partial refund was recorded already",
            extra={"payment": payment.id, "order": payment.order, "refunded": str(refunded)},
        )
        return Outcome("unchanged", payment.id, payment.status, "Partial refund recorded.")

    def dispute(
        self, held: tuple[int, int], reason: DisputeReason, money: Money, *, event_id: str | None, source: Source
    ) -> Outcome:
        """A dispute of the money `held` (payment, order) holds: recorded once per dispute and step."""
        payment_id, order_id = held
        entry = self._entry(payment_id, order_id, None, reason, money, event_id, source)
        fact, opened = money.fact(reason, money.dispute or ""), reason == "dispute_opened"
        recorded = self._store.record_once(entry, fact, alarmed=opened)
        where = {"payment": payment_id, "order": order_id, "dispute": money.dispute, "amount": str(money.amount)}
        if opened and (recorded or self._store.alarm_pending(fact)):  # as Settlement.needs_refund
            alarm("PaymentDisputed")
            self._store.alarm_raised(fact)
            logger.error("a payment is disputed: answer the dispute", extra=where)
        elif not recorded:
            logger.info("dispute step was recorded already", extra={**where, "step": reason})
        elif reason == "dispute_lost":
            logger.error("a dispute was lost: the money is gone", extra=where)
        else:
            logger.info("dispute step recorded", extra={**where, "step": reason})
        return Outcome("unchanged", payment_id, None, f"Dispute recorded ({reason}).")

    def _entry(
        self,
        payment_id: int,
        order_id: int,
        status: PaymentStatus | None,
        reason: str,
        money: Money,
        event_id: str | None,
        source: Source,
    ) -> AuditEntry:
        at = self._clock()
        return AuditEntry(payment_id, order_id, status, status, source, event_id, reason, at, money.details())
