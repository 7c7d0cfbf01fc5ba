"""A Stripe checkout: the order placed (placing.py), then its Checkout Session opened and attached
to the payment; a session that turns out to belong to a payment given up is cancelled; a checkout
Stripe refused is given back.

Who may give a Stripe checkout back: only the request that created its payment, only while no
session is attached to it (a condition of the give-back's transaction), and a session is attached
only while the payment is pending (a condition of the attach). Another request paying the same
order (`{"order": N}`, a keyed retry) may open the same session (same Stripe idempotency key) but
never gives anything back. So no session a caller was given can belong to a payment given up.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, NamedTuple

from ..errors import (
    BadRequest,
    Conflict,
    GatewayNotConfigured,
    RequestInProgress,
    TransientFault,
    Unprocessable,
    UnreadableRecord,
    UpstreamUnavailable,
)
from ..models import CartItem, Order, Payment, PaymentMethod, PaymentStatus, RequestKey
from ..money import to_minor_units
from ..observability import count, logger
from .placing import ATTEMPTS, CheckoutOptions, CheckoutStore, KeyedCheckout, OrderPlacement, require_chargeable
from .rules import open_payments, require_order_total, require_payable
from .settlement import GiveBack, Settlement, session_money

if TYPE_CHECKING:
    from ..gateways.stripe_checkout import CheckoutSession, SessionRequest, StripeCheckoutGateway

KEY_CHECKOUT_EXPIRED = "The checkout made with this Idempotency-Key has expired; check out again with a new key."


class StartedCheckout(NamedTuple):
    session_id: str
    url: str


class StripeCheckout:
    def __init__(
        self,
        placing: OrderPlacement,
        store: CheckoutStore,
        settlement: Settlement,
        options: CheckoutOptions,
        gateway: Callable[[], StripeCheckoutGateway | None] = lambda: None,
    ) -> None:
        self._placing = placing
        self._store = store
        self._settlement = settlement
        self._options = options
        self._gateway = gateway

    def from_cart(self, user: int, address_id: int, key: str | None = None) -> StartedCheckout:
        gateway = self._require_gateway()
        request_key = self._placing.request_key(user, key, "stripe", {"shipping_address": address_id})
        placed = self._placing.place(user, address_id, PaymentMethod.STRIPE, request_key)
        if isinstance(placed, KeyedCheckout):
            return self._replay(gateway, placed, request_key)
        order, payment = placed
        count("PaymentsCreated")
        logger.append_keys(order=order.id, payment=payment.id)
        lines = tuple(CartItem(item.variant, item.quantity) for item in order.items)
        return self._open_session(gateway, order, payment, GiveBack(user, lines, request_key))

    def for_order(self, user: int, order_id: int, key: str | None = None) -> StartedCheckout:
        """Pay an existing pending order of the caller's; reuses its open Stripe payment (a key is
        then not claimed: paying that order again answers the same session anyway)."""
        gateway = self._require_gateway()
        request_key = self._placing.request_key(user, key, "stripe", {"order": order_id})
        payment_id: int | None = None
        for attempt in range(ATTEMPTS):
            order, keyed = self._order(user, order_id, request_key)
            if keyed is not None:
                return self._replay(gateway, keyed, request_key)
            if order is None or order.user != user:
                raise BadRequest(f"Order {order_id} not found.")
            require_payable(order)
            for item in order.items:  # before any write: Stripe must be able to charge every price exactly
                require_chargeable(item.price, order.currency, f"Order {order.id}'s product {item.variant}")
            open_stripe = [pid for pid, ref in open_payments(order).items() if ref.method == PaymentMethod.STRIPE]
            if open_stripe:
                return self._resume(gateway, order, open_stripe[0])
            payment_id = payment_id or self._store.next_id("payment")
            payment = self._placing.add_payment(order, payment_id, request_key)
            if payment is None:  # a concurrent request added a payment or moved the order: look again
                self._placing.backoff(attempt)
                continue
            logger.append_keys(order=order.id, payment=payment.id)
            return self._open_session(gateway, order, payment, GiveBack(user, (), request_key))
        raise Conflict("The order changed while paying for it; please retry.")

    def _order(self, user: int, order_id: int, key: RequestKey | None) -> tuple[Order | None, KeyedCheckout | None]:
        """The order as read; another user's that breaks its contract as if it did not exist (the
        caller's own stays the shop's fault: 503)."""
        try:
            return self._store.order(order_id, key)
        except UnreadableRecord as broken:
            if broken.owner == user:
                raise
            return None, None

    def _resume(self, gateway: StripeCheckoutGateway, order: Order, payment_id: int) -> StartedCheckout:
        payment = self._store.payment(order.user, payment_id)
        if payment is None:
            raise TransientFault("order lists a payment that is not readable yet")
        require_order_total(order, payment.amount, "Payment amount")
        if (payment.checkout_expires_at or 0) <= time.time() + 60:
            raise Conflict(f"The checkout for order {order.id} has expired.")
        if payment.checkout_session_id and payment.checkout_url:
            return StartedCheckout(payment.checkout_session_id, payment.checkout_url)
        # No session recorded: its creator is still talking to Stripe, or died. The same idempotency
        # key makes Stripe return the session if it exists, or create it now.
        return self._open_session(gateway, order, payment, creator=None)

    def _replay(self, gateway: StripeCheckoutGateway, keyed: KeyedCheckout, key: RequestKey | None) -> StartedCheckout:
        order, payment = self._placing.replayed(keyed, key)
        if order.completed_payment is not None and order.completed_payment != payment.id:
            raise Conflict(f"Order {order.id} is already paid.")
        if payment.checkout_session_id and payment.checkout_url:
            if _checkout_over(payment):  # its session expired: its URL would only say so
                raise Conflict(KEY_CHECKOUT_EXPIRED)
            return StartedCheckout(payment.checkout_session_id, payment.checkout_url)
        if order.completed_payment is not None:
            raise Conflict(f"Order {order.id} is already paid.")
        if payment.status != PaymentStatus.PENDING:
            raise Conflict("The checkout made with this Idempotency-Key was cancelled; check out again with a new key.")
        return self._open_session(gateway, order, payment, creator=None)

    def _open_session(
        self, gateway: StripeCheckoutGateway, order: Order, payment: Payment, creator: GiveBack | None
    ) -> StartedCheckout:
        """`creator`: what the request that created `payment` gives back if Stripe refuses it."""
        request = self._session_request(order, payment)
        try:
            session = gateway.create_session(request)
        except Exception as exc:
            count("StripeErrors")
            logger.warning("Stripe checkout failed", extra={"failure": getattr(exc, "kind", "error")})
            if creator is not None:
                return self._give_back(gateway, order, payment, creator, request, exc)
            if getattr(exc, "kind", None) == "in_use":
                raise RequestInProgress("This checkout is being started by another request; retry shortly.") from exc
            raise UpstreamUnavailable("The payment provider is unavailable; please retry.") from exc
        if not session.url:
            raise TransientFault("Stripe returned a session without a URL")
        attached = self._store.attach_session(payment, session.id, session.url)
        if attached == "attached":
            return StartedCheckout(session.id, session.url)
        current = self._store.payment(payment.user, payment.id)
        if current is not None and current.checkout_session_id == session.id:
            # Recorded already: by a concurrent request, or by the session's own webhook (a fast payment).
            return StartedCheckout(session.id, session.url)
        if attached == "busy" and current is not None and _still_this_checkouts(current):
            # Another transaction held the payment through every attempt: in practice its own
            # webhook completing a fast payment. The order is placed and the session is its own:
            # say so. (Should that transaction fail the payment instead, a payment of this
            # session raises the refund alarm.)
            return StartedCheckout(session.id, session.url)
        return self._cancel_unattached(gateway, payment, session.id)

    def _cancel_unattached(self, gateway: StripeCheckoutGateway, payment: Payment, session_id: str) -> StartedCheckout:
        """The payment was given up meanwhile (its creator's give-back, the sweep): nobody may pay
        the session made for it. Always raises, saying what is known about charges."""
        session = gateway.expire_session(session_id)
        if session is None or not (session.paid or session.closed):  # Stripe cannot say whether it is paid
            raise UpstreamUnavailable("The payment provider is unavailable: this checkout was cancelled. Please retry.")
        # Given up because the order was paid another way (the gateway), or by its creator's give-back:
        # the answer says which, so that a placed and paid order is never read as cancelled.
        paid_elsewhere = self._paid_another_way(payment)
        if session.paid:
            given_up = replace(payment, checkout_session_id=session_id)
            self._settlement.paid_after_giving_up(given_up, "checkout", session_money(session))
            if paid_elsewhere:
                raise Conflict(
                    f"Order {payment.order} is already paid another way; "
                    "the payment made in this checkout will be refunded."
                )
            raise Conflict("This checkout was cancelled, but it was paid: the payment will be refunded.")
        if paid_elsewhere:
            raise Conflict(f"Order {payment.order} is already paid another way; this checkout was cancelled.")
        raise Conflict("This checkout was cancelled before its payment page opened; please check out again.")

    def _paid_another_way(self, payment: Payment) -> bool:
        try:
            order, _ = self._store.order(payment.order, None)
        except UnreadableRecord:
            return False  # no claim about the order, only about this checkout
        return order is not None and order.completed_payment not in (None, payment.id)

    def _give_back(
        self,
        gateway: StripeCheckoutGateway,
        order: Order,
        payment: Payment,
        creator: GiveBack,
        request: SessionRequest,
        failure: Exception,
    ) -> StartedCheckout:
        """Compensate a checkout Stripe refused (settlement's give-back); if a concurrent request
        attached a session meanwhile, that session is the answer."""
        outcome = self._settlement.give_back(order.id, payment.id, creator, type(failure).__name__)
        if outcome.kind != "applied":
            current = self._store.payment(payment.user, payment.id)
            if current is not None and current.checkout_session_id and current.checkout_url:
                return StartedCheckout(current.checkout_session_id, current.checkout_url)
            raise UpstreamUnavailable("The payment provider is unavailable; please retry.") from failure
        logger.info("checkout given back")
        # A failed call may still have made the session (an answer lost, then an error): find it
        # under the same idempotency key and expire it, so that "nothing was charged" is true.
        session = self._possible_session(gateway, request)
        given_up = replace(payment, status=PaymentStatus.FAILED)
        what = "your cart is as it was" if creator.lines else "the order is as it was"
        if session is not None and session.paid:
            self._settlement.paid_after_giving_up(given_up, "checkout", session_money(session))
            message = f"this checkout was cancelled and its payment will be refunded; {what}"
        elif session is not None and session.closed:
            self._settlement.stop_watching(given_up)
            message = f"nothing was charged and {what}"
        else:  # Stripe cannot say: no claim about charges, and the sweep keeps watching the payment
            message = f"this checkout was cancelled and {what}"
        raise UpstreamUnavailable(f"The payment provider is unavailable: {message}. Please retry.") from failure

    @staticmethod
    def _possible_session(gateway: StripeCheckoutGateway, request: SessionRequest) -> CheckoutSession | None:
        """Expire the session a failed create may have made; the session as it then is (closed, or
        paid already), or None if Stripe cannot say (still failing)."""
        try:
            # Same key, same parameters: Stripe answers with the session if the first call made one
            # (or makes it now, to be expired at once).
            session = gateway.create_session(request)
            return gateway.expire_session(session.id)
        except Exception:  # noqa: BLE001 - nobody was given a link to it; the sweep watches it, alarms remain
            logger.info("could not expire a possibly created session")
            return None

    def _session_request(self, order: Order, payment: Payment) -> SessionRequest:
        from ..gateways.stripe_checkout import LineItem, SessionRequest

        if payment.checkout_key is None:
            raise Unprocessable(f"Payment {payment.id} was not created for a Stripe checkout.")
        names = self._names_for(order)
        # Every price was checked chargeable before its payment was made (placing, for_order).
        line_items = tuple(
            LineItem(names[item.variant], to_minor_units(item.price, order.currency), item.quantity)
            for item in order.items
        )
        metadata = {
            "order_id": str(order.id),
            "payment_id": str(payment.id),
            "user_id": str(order.user),
            "checkout_key": payment.checkout_key,
        }
        return SessionRequest(
            currency=order.currency,
            line_items=line_items,
            metadata=metadata,
            client_reference_id=str(order.id),
            success_url=self._options.success_url,
            cancel_url=self._options.cancel_url,
            expires_at=payment.checkout_expires_at or 0,
            idempotency_key=payment.checkout_key,
        )

    def _names_for(self, order: Order) -> dict[int, str]:
        names = {item.variant: f"{item.name} ({item.sku})" for item in order.items if item.name}
        missing = [item.variant for item in order.items if item.variant not in names]
        if missing:  # orders written by the platform carry no product names
            for variant in self._store.variants(missing).values():
                names[variant.id] = variant.label
        return {item.variant: names.get(item.variant, f"Product {item.variant}") for item in order.items}

    def _require_gateway(self) -> StripeCheckoutGateway:
        gateway = self._gateway()
        if gateway is None:
            raise GatewayNotConfigured("Stripe payment gateway is not configured")
        return gateway


def _checkout_over(payment: Payment) -> bool:
    """Its Checkout Session can no longer be paid: failed (expired), or past its expiry unpaid."""
    if payment.status == PaymentStatus.FAILED:
        return True
    return payment.status == PaymentStatus.PENDING and (payment.checkout_expires_at or 0) <= time.time()


def _still_this_checkouts(payment: Payment) -> bool:
    return payment.status != PaymentStatus.FAILED and payment.checkout_session_id is None
