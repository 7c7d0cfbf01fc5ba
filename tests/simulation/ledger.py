"""The outside world's books: what happened outside the service, recorded as it happened, with no
help from the code under test. Stripe's side (every Checkout Session our checkout asked for, every
amount captured, refunded or disputed per PaymentIntent), the generic gateway's side (every
transaction it captured, refunded), what stock the shop had, and what each customer was told.

The invariants judge the service's tables against these books (invariants.py). Nothing here reads
the service's tables, and nothing here is imported from `layers/`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from .rules import from_minor


@dataclass
class SessionMade:
    """A Checkout Session Stripe created, as our checkout asked for it (before any Dashboard edit)."""

    id: str
    order: int | None
    payment: int | None
    user: str | None
    amount: Decimal
    currency: str
    created: float
    expires_at: float


@dataclass
class Dispute:
    id: str
    amount: Decimal
    opened: float
    status: str = "open"  # open | won | lost


@dataclass
class Money:
    """Money a provider captured for an order: one PaymentIntent at Stripe, one gateway transaction."""

    provider: str  # "stripe" | "gateway"
    transaction: str  # the PaymentIntent id, or the gateway's transaction id
    order: int  # the order the payer paid for
    amount: Decimal
    currency: str
    at: float
    payment: int | None = None  # Stripe: the payment our checkout made the session for
    session: str | None = None
    refunded: Decimal = Decimal(0)  # cumulative, as the provider reports it
    disputes: dict[str, Dispute] = field(default_factory=dict)

    @property
    def fully_refunded(self) -> bool:
        return self.refunded >= self.amount

    def describe(self) -> str:
        where = f" (session {self.session}, payment {self.payment})" if self.session else ""
        return f"{self.provider} {self.transaction}: {self.amount} {self.currency} for order {self.order}{where}"


@dataclass
class Promise:
    """What an answer told a customer, in the spec's terms."""

    kind: str  # "nothing_charged" | "will_be_refunded"
    payments: list[int]  # the payments the answer was about (those its checkout created)
    invocation: Any


class Ledger:
    def __init__(self) -> None:
        self.sessions: dict[str, SessionMade] = {}
        self.money: dict[tuple[str, str], Money] = {}
        self.bogus: list[tuple[str, int]] = []  # (gateway transaction, order) reported without money
        self.promises: list[Promise] = []
        self.seeded_stock: dict[int, int] = {}

    # ------------------------------------------------------------------ Stripe

    def session_created(self, obj: dict[str, Any], at: float) -> None:
        metadata = obj.get("metadata") or {}
        self.sessions[obj["id"]] = SessionMade(
            id=obj["id"],
            order=_int(metadata.get("order_id")),
            payment=_int(metadata.get("payment_id")),
            user=metadata.get("user_id"),
            amount=from_minor(int(obj["amount_total"]), obj["currency"]),
            currency=str(obj["currency"]).lower(),
            created=at,
            expires_at=float(obj["expires_at"]),
        )

    def stripe_captured(self, session_id: str, intent: str, minor: int, currency: str, at: float) -> None:
        made = self.sessions.get(session_id)
        self.money[("stripe", intent)] = Money(
            "stripe",
            intent,
            order=made.order if made and made.order is not None else -1,
            amount=from_minor(minor, currency),
            currency=currency.lower(),
            at=at,
            payment=made.payment if made else None,
            session=session_id,
        )

    def stripe_refunded(self, intent: str, cumulative_minor: int, currency: str) -> None:
        self.money[("stripe", intent)].refunded = from_minor(cumulative_minor, currency)

    def disputed(self, intent: str, dispute: str, minor: int, currency: str, at: float) -> None:
        self.money[("stripe", intent)].disputes[dispute] = Dispute(dispute, from_minor(minor, currency), at)

    def dispute_closed(self, intent: str, dispute: str, status: str) -> None:
        self.money[("stripe", intent)].disputes[dispute].status = status

    # ------------------------------------------------------------------ the generic gateway

    def gateway_captured(self, transaction: str, order: int, amount: Decimal, currency: str, at: float) -> None:
        self.money[("gateway", transaction)] = Money("gateway", transaction, order, amount, currency, at)

    def gateway_refunded(self, transaction: str, cumulative: Decimal) -> None:
        self.money[("gateway", transaction)].refunded = cumulative

    # ------------------------------------------------------------------ reading the books

    def captured(self, provider: str, transaction: str | None) -> Money | None:
        return self.money.get((provider, transaction)) if transaction else None

    def for_order(self, order: int) -> list[Money]:
        return [m for m in self.money.values() if m.order == order]

    def sessions_of(self, order: int) -> list[SessionMade]:
        return [s for s in self.sessions.values() if s.order == order]

    def charged_payment(self, payment: int) -> list[Money]:
        """Money Stripe took through any session made for this payment."""
        return [m for m in self.money.values() if m.provider == "stripe" and m.payment == payment]


def _int(value: Any) -> int | None:
    text = str(value) if value is not None else ""
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 18 else None
