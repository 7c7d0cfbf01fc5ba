"""Checkout: the caller's cart becomes an order and a pending payment in one transaction; for
Stripe, a Checkout Session follows, and if Stripe fails everything is given back."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Protocol

from ..clock import format_timestamp, parse_timestamp, utc_now
from ..errors import (
    BadRequest,
    Conflict,
    GatewayNotConfigured,
    OutOfStock,
    TransientFault,
    Unprocessable,
    UpstreamUnavailable,
)
from ..models import (
    Cart,
    CartItem,
    Order,
    OrderItem,
    OrderOrigin,
    OrderStatus,
    Payment,
    PaymentMethod,
    PaymentRef,
    PaymentStatus,
    Variant,
)
from ..money import MoneyError, to_minor_units
from ..observability import count, logger
from ..repositories.checkout_store import CheckoutConflict, DynamoCheckoutStore, NewOrder, NewPayment
from .settlement import AuditEntry, Change, Plan, Settlement

if TYPE_CHECKING:
    from ..gateways.stripe_checkout import CheckoutSession, SessionRequest

MAX_LINES = 50  # keeps an order's transaction well under DynamoDB's 100 items
ATTEMPTS = 5


class CheckoutGateway(Protocol):
    def create_session(self, request: SessionRequest) -> CheckoutSession: ...

    def expire_session(self, session_id: str) -> None: ...


@dataclass(frozen=True, slots=True)
class CheckoutOptions:
    currency: str
    success_url: str
    cancel_url: str
    expires_minutes: int


@dataclass(frozen=True, slots=True)
class StartedCheckout:
    session_id: str
    url: str


class CheckoutService:
    def __init__(
        self,
        store: DynamoCheckoutStore,
        settlement: Settlement,
        options: CheckoutOptions,
        gateway: Callable[[], CheckoutGateway | None] = lambda: None,
        clock: Callable[[], str] = lambda: format_timestamp(utc_now()),
    ) -> None:
        self._store = store
        self._settlement = settlement
        self._options = options
        self._gateway = gateway
        self._clock = clock

    # ------------------------------------------------------------------ COD

    def cash_on_delivery(self, user: int, address_id: int) -> tuple[Order, Payment]:
        order, payment, _ = self._place_order(user, address_id, PaymentMethod.COD)
        count("PaymentsCreated")
        logger.info("COD order placed", extra={"order": order.id, "payment": payment.id})
        return order, payment

    # ------------------------------------------------------------------ Stripe

    def stripe_from_cart(self, user: int, address_id: int) -> StartedCheckout:
        gateway = self._require_gateway()
        order, payment, _ = self._place_order(user, address_id, PaymentMethod.STRIPE)
        count("PaymentsCreated")
        logger.append_keys(order=order.id, payment=payment.id)
        return self._open_session(gateway, order, payment, restore_cart=True)

    def stripe_for_order(self, user: int, order_id: int) -> StartedCheckout:
        """Pay an existing pending order of the caller's; reuses its open Stripe payment."""
        gateway = self._require_gateway()
        for _ in range(ATTEMPTS):
            order, sequence = self._store.order_with_sequence(order_id)
            if order is None or order.user != user:
                raise BadRequest(f"Order {order_id} not found.")
            self._check_payable(order)
            open_stripe = [pid for pid, ref in order.open_payments().items() if ref.method == PaymentMethod.STRIPE]
            if open_stripe:
                payment = self._store.payment(open_stripe[0])
                if payment is None:
                    raise TransientFault("order lists a payment that is not readable yet")
                return self._resume(gateway, order, payment)
            payment = self._new_payment(order, sequence + 1, PaymentMethod.STRIPE)
            try:
                self._store.add_payment(NewPayment(order, payment, sequence, self._audit(order, payment, "created")))
            except CheckoutConflict:
                continue  # a concurrent request added a payment or moved the order: look again
            count("PaymentsCreated")
            logger.append_keys(order=order.id, payment=payment.id)
            return self._open_session(gateway, order, payment, restore_cart=False)
        raise Conflict("The order changed while paying for it; please retry.")

    def _check_payable(self, order: Order) -> None:
        if order.completed_payment is not None:
            raise Conflict(f"Order {order.id} already has a completed payment.")
        if order.status != OrderStatus.PENDING:
            raise Conflict(f"Order {order.id} is {order.status} and cannot be paid.")
        items_total = sum((item.subtotal for item in order.items), Decimal(0))
        if not order.items or items_total != order.total_price:
            raise Unprocessable(f"Order {order.id} total {order.total_price} does not match its items.")
        for item in order.items:  # before any write: Stripe must be able to charge every price exactly
            _require_chargeable(item.price, order.currency, f"Order {order.id}'s product {item.variant}")

    def _resume(self, gateway: CheckoutGateway, order: Order, payment: Payment) -> StartedCheckout:
        if payment.amount != order.total_price:
            raise Unprocessable(f"Payment amount {payment.amount} does not match the order total {order.total_price}.")
        expires_at = payment.checkout_expires_at or 0
        if expires_at <= time.time() + 60:
            raise Conflict(f"The checkout for order {order.id} has expired.")
        if payment.checkout_session_id and payment.checkout_url:
            return StartedCheckout(payment.checkout_session_id, payment.checkout_url)
        # The session was never stored (a crash after the transaction): the same idempotency
        # key and parameters make Stripe return the session if it exists, or create it now.
        return self._open_session(gateway, order, payment, restore_cart=False)

    def _open_session(
        self, gateway: CheckoutGateway, order: Order, payment: Payment, *, restore_cart: bool
    ) -> StartedCheckout:
        request = self._session_request(order, payment)
        try:
            session = gateway.create_session(request)
        except Exception as exc:
            self._give_back(order, payment, restore_cart=restore_cart, reason=type(exc).__name__)
            if getattr(exc, "kind", None) == "timeout":
                self._expire_possible_session(gateway, request)
            count("StripeErrors")
            logger.warning("Stripe checkout failed; order given back", extra={"failure": getattr(exc, "kind", "error")})
            raise UpstreamUnavailable(
                "The payment provider is unavailable. Nothing was charged and your cart is as it was; please retry."
            ) from exc
        if not session.url:
            raise TransientFault("Stripe returned a session without a URL")
        self._store.attach_session(payment.id, session.id, session.url)
        return StartedCheckout(session.id, session.url)

    def _session_request(self, order: Order, payment: Payment) -> SessionRequest:
        from ..gateways.stripe_checkout import LineItem, SessionRequest

        names = self._names_for(order)
        try:
            line_items = tuple(
                LineItem(names[item.variant], to_minor_units(item.price, order.currency), item.quantity)
                for item in order.items
            )
        except MoneyError as exc:
            raise Unprocessable(str(exc)) from None
        if payment.checkout_key is None:
            raise Unprocessable(f"Payment {payment.id} was not created for a Stripe checkout.")
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

    def _give_back(self, order: Order, payment: Payment, *, restore_cart: bool, reason: str) -> None:
        """Compensate a checkout Stripe refused: payment failed, order cancelled, stock and cart back."""
        items = tuple(CartItem(item.variant, item.quantity) for item in order.items)

        def with_cart(plan: Plan) -> Plan:
            return replace(plan, restore_cart=(self._store.cart(order.user), items)) if restore_cart else plan

        change = Change(
            order.id,
            payment.id,
            PaymentStatus.FAILED,
            "checkout",
            reason="stripe_unavailable",
            details={"error": reason},
        )
        outcome = self._settlement.apply(change, adjust=with_cart)
        logger.info("checkout compensated", extra={"outcome": outcome.kind})

    @staticmethod
    def _expire_possible_session(gateway: CheckoutGateway, request: SessionRequest) -> None:
        try:
            # Same key, same parameters: Stripe answers with the session if the first call made one.
            session = gateway.create_session(request)
            gateway.expire_session(session.id)
        except Exception:  # noqa: BLE001 - best effort; an unexpired session of a failed payment is harmless
            logger.info("could not expire a possibly created session")

    def _require_gateway(self) -> CheckoutGateway:
        gateway = self._gateway()
        if gateway is None:
            raise GatewayNotConfigured("Stripe payment gateway is not configured")
        return gateway

    # ------------------------------------------------------------------ placing orders

    def _place_order(self, user: int, address_id: int, method: PaymentMethod) -> tuple[Order, Payment, Cart]:
        for _ in range(ATTEMPTS):
            snapshot = self._store.snapshot(user, address_id)
            address = snapshot.address
            if address is None or address.user != user:
                raise BadRequest(f"Invalid shipping address: {address_id} is not one of your addresses.")
            cart = snapshot.cart
            lines = _merge_lines(cart.items if cart else ())
            if cart is None or not lines:
                raise BadRequest("Your cart is empty.")
            if len(lines) > MAX_LINES:
                raise BadRequest(f"Your cart has more than {MAX_LINES} different products.")
            variants = self._store.variants(list(lines))
            items = self._order_items(lines, variants)
            now = self._clock()
            order_id, payment_id = snapshot.order_sequence + 1, snapshot.payment_sequence + 1
            total = sum((item.subtotal for item in items), Decimal(0))
            order = Order(
                id=order_id,
                user=user,
                shipping_address=address.id,
                status=OrderStatus.CONFIRMED if method == PaymentMethod.COD else OrderStatus.PENDING,
                total_price=total,
                currency=self._options.currency,
                items=tuple(items),
                created_at=now,
                updated_at=now,
                origin=OrderOrigin.COD_CHECKOUT if method == PaymentMethod.COD else OrderOrigin.STRIPE_CHECKOUT,
                stock_reserved=True,
                payments={payment_id: PaymentRef(method, PaymentStatus.PENDING)},
                shipping=address.snapshot(),
            )
            payment = self._new_payment(order, payment_id, method)
            try:
                self._store.place_order(
                    NewOrder(
                        order,
                        payment,
                        cart,
                        variants,
                        snapshot.order_sequence,
                        snapshot.payment_sequence,
                        self._audit(order, payment, "created"),
                    )
                )
            except CheckoutConflict as conflict:
                if conflict.kind == "stock" and conflict.variant is not None:
                    raise OutOfStock(conflict.variant.label, max(conflict.variant.stock, 0)) from None
                continue  # ids, prices or the cart moved under us: read again and re-decide
            return order, payment, cart
        raise Conflict("Checkout conflicted with concurrent updates; please retry.")

    def _order_items(self, lines: dict[int, int], variants: dict[int, Variant]) -> list[OrderItem]:
        items = []
        for variant_id, quantity in lines.items():
            variant = variants.get(variant_id)
            label = variant.label if variant else f"Product {variant_id}"
            if quantity <= 0:
                raise BadRequest(f"Invalid quantity for {label}: quantities must be positive.")
            if variant is None or not variant.is_active:
                raise BadRequest(f"{label} is not available.")
            if variant.stock < quantity:
                raise OutOfStock(variant.label, max(variant.stock, 0))
            # Before anything is written: an amount the currency cannot represent (425.50 JPY)
            # would otherwise surface only when the Stripe session is built, after the order.
            _require_chargeable(variant.price, self._options.currency, variant.label)
            items.append(OrderItem(variant.id, quantity, variant.price, variant.sku, variant.name))
        return items

    def _new_payment(self, order: Order, payment_id: int, method: PaymentMethod) -> Payment:
        now = self._clock()
        payment = Payment(
            id=payment_id,
            order=order.id,
            user=order.user,
            amount=order.total_price,
            currency=order.currency,
            method=method,
            status=PaymentStatus.PENDING,
            transaction_id=None,
            created_at=now,
            updated_at=now,
        )
        if method != PaymentMethod.STRIPE:
            return payment
        # Stripe wants 30 min..24 h from the session's creation, which happens a moment after
        # this: leave two minutes of slack inside that window so the bounds never bite.
        seconds = min(self._options.expires_minutes * 60 + 120, 24 * 3600 - 60)
        expires = int((parse_timestamp(now) + timedelta(seconds=seconds)).timestamp())
        return replace(payment, checkout_expires_at=expires, checkout_key=_checkout_key(payment, expires))

    @staticmethod
    def _audit(order: Order, payment: Payment, reason: str) -> AuditEntry:
        return AuditEntry(payment.id, order.id, None, payment.status, "checkout", None, reason, payment.created_at)


def _checkout_key(payment: Payment, expires_at: int) -> str:
    """One checkout attempt (= one payment) as Stripe sees it: its idempotency key on every retry and
    resume, and its metadata. Unique across deployments sharing a Stripe account, whose payment ids
    repeat (Stripe refuses a key reused with other parameters)."""
    attempt = f"{payment.id}|{payment.order}|{payment.user}|{payment.created_at}|{expires_at}"
    return f"halum-checkout-{payment.id}-{hashlib.sha256(attempt.encode()).hexdigest()[:32]}"


def _require_chargeable(price: Decimal, currency: str, what: str) -> None:
    try:
        to_minor_units(price, currency)
    except MoneyError:
        raise Unprocessable(f"{what} costs {price}, which cannot be charged in {currency.upper()}.") from None


def _merge_lines(items: tuple[CartItem, ...]) -> dict[int, int]:
    """variant -> quantity; a cart may list a variant twice, a transaction may touch it once.
    A variant with any non-positive quantity keeps 0, which checkout refuses."""
    lines: dict[int, int] = {}
    invalid = set()
    for item in items:
        if item.quantity <= 0:
            invalid.add(item.variant)
        lines[item.variant] = lines.get(item.variant, 0) + max(item.quantity, 0)
    return {variant: 0 if variant in invalid else quantity for variant, quantity in lines.items()}
