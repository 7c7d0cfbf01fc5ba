"""The money rules, each in exactly one function that every other place calls (README "Where each
rule lives"). They say what must be true; the repositories make DynamoDB enforce it atomically, in
the conditions of the transaction that changes the money."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from ..errors import Conflict, Unprocessable
from ..models import Order, OrderItem, OrderOrigin, OrderStatus, PaymentMethod, PaymentRef
from ..models import PaymentStatus as P

OPEN_STATUSES = frozenset({P.PENDING, P.PROCESSING})  # money may still come (or be given up)
CLOSED_ORDER = frozenset({OrderStatus.CANCELLED, OrderStatus.FAILED})  # takes no money, holds no stock
_NEXT = {
    P.PENDING: {P.PROCESSING, P.COMPLETED, P.FAILED},
    P.PROCESSING: {P.COMPLETED, P.FAILED},
    P.COMPLETED: {P.REFUNDED},
    P.FAILED: set(),
    P.REFUNDED: set(),
}


def may_move(method: PaymentMethod, current: P, target: P) -> bool:
    """Statuses move forward only; a gateway may report money that moved after it reported a
    failure (failed -> completed, ONLINE only). Stripe never does."""
    if current == P.FAILED and target == P.COMPLETED:
        return method == PaymentMethod.ONLINE
    return target in _NEXT[current]


def may_move_later(current: P, target: P) -> bool:
    """Cannot apply yet, but may once an earlier event arrives (a refund before its completion)."""
    return target == P.REFUNDED and current in OPEN_STATUSES


def open_payments(order: Order) -> dict[int, PaymentRef]:
    return {pid: ref for pid, ref in order.payments.items() if ref.status in OPEN_STATUSES}


def order_total(items: Iterable[OrderItem]) -> Decimal:
    """An order's total: the sum of its lines (unit price x quantity), exactly."""
    return sum((item.subtotal for item in items), Decimal(0))


def require_order_total(order: Order, amount: Decimal, what: str) -> None:
    """Money for an order is exactly its total (spec: "Payment amount must match the order total")."""
    if amount != order.total_price:
        raise Unprocessable(f"{what} {amount} does not match the order total {order.total_price}.")


def same_money(amount: Decimal, currency: str, expected_amount: Decimal, expected_currency: str) -> bool:
    """A provider's report is about this money: the same amount in the same currency."""
    return amount == expected_amount and currency.lower() == expected_currency.lower()


def require_payable(order: Order) -> None:
    """An order a checkout may pay: pending, no completed payment (spec: "Order must not have an
    existing completed payment"), and its total is its lines'."""
    if order.completed_payment is not None:
        raise Conflict(f"Order {order.id} already has a completed payment.")
    if order.status != OrderStatus.PENDING:
        raise Conflict(f"Order {order.id} is {order.status} and cannot be paid.")
    if not order.items or order_total(order.items) != order.total_price:
        raise Unprocessable(f"Order {order.id} total {order.total_price} does not match its items.")


def unpayable(order: Order, payment_id: int | None) -> str | None:
    """Why money for `payment_id` cannot complete `order`: an order has at most one completed
    payment, ever, and a closed order takes no money."""
    if order.completed_payment not in (None, payment_id):
        return f"Order {order.id} is already paid by payment {order.completed_payment}."
    if order.status in CLOSED_ORDER:
        return f"Order {order.id} is {order.status}; it cannot be paid."
    return None


def settles_for(named_user: int | None, order: Order, target: P) -> bool:
    """A provider report naming another user than the order's settles no money; a session that
    closed unpaid fails its payment whatever it names."""
    return named_user in (None, order.user) or target == P.FAILED


def gives_up(order: Order, payment_id: int) -> bool:
    """Failing `payment_id` leaves the order our Stripe checkout created with no way to be paid:
    it is cancelled and its stock given back (orders from elsewhere stay pending)."""
    still_open = [p for p in open_payments(order) if p != payment_id]
    return (
        order.origin == OrderOrigin.STRIPE_CHECKOUT
        and order.status == OrderStatus.PENDING
        and not still_open
        and order.completed_payment is None
    )
