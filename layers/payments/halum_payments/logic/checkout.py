"""Checkout: the caller's cart becomes an order and a pending payment in one transaction; for
Stripe, a Checkout Session follows.

Who may give a Stripe checkout back: only the request that created its payment, only while no
session is attached to it (a condition of the give-back's transaction), and a session is attached
only while the payment is pending (a condition of the attach). Another request paying the same
order (`{"order": N}`, a keyed retry) may open the same session (same Stripe idempotency key) but
never gives anything back. So no session a caller was given can belong to a payment given up.

An `Idempotency-Key` is claimed in the transaction that places the order (or adds the payment):
a committed checkout and its key never part, so a retry with the key answers what was placed,
even when the first answer was lost.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, Protocol

from ..clock import now_text, parse_timestamp
from ..errors import (
    BadRequest,
    Conflict,
    GatewayNotConfigured,
    InvalidInput,
    OutOfStock,
    RequestInProgress,
    TransientFault,
    Unprocessable,
    UpstreamUnavailable,
)
from ..models import (
    Address,
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
    RequestKey,
    Variant,
    payment_for,
)
from ..money import MoneyError, to_minor_units
from ..observability import count, logger
from .settlement import AuditEntry, Change, Facts, Plan, Settlement, require_order_total, session_money

if TYPE_CHECKING:
    from ..gateways.stripe_checkout import CheckoutSession, SessionRequest

MAX_LINES = 50  # keeps an order's transaction well under DynamoDB's 100 items
ATTEMPTS = 5
KEY_LIFETIME_SECONDS = 24 * 3600  # how long an Idempotency-Key names its checkout
DIFFERENT_REQUEST = "This idempotency key was already used with a different request."
KEY_CHECKOUT_EXPIRED = "The checkout made with this Idempotency-Key has expired; check out again with a new key."
UNREADABLE_CART = "A line of your cart cannot be read; update your cart."


class CheckoutGateway(Protocol):
    def create_session(self, request: SessionRequest) -> CheckoutSession: ...

    def expire_session(self, session_id: str) -> CheckoutSession | None: ...


@dataclass(frozen=True, slots=True)
class CheckoutOptions:
    currency: str
    success_url: str
    cancel_url: str
    expires_minutes: int


class StartedCheckout(NamedTuple):
    session_id: str
    url: str


class KeyedCheckout(NamedTuple):
    """What a claimed Idempotency-Key names: the checkout it placed."""

    order: int
    payment: int
    request: str


@dataclass(frozen=True, slots=True)
class CheckoutSnapshot:
    cart: Cart | None
    address: Address | None
    keyed: KeyedCheckout | None  # the request's key, if it was claimed already


@dataclass(frozen=True, slots=True)
class NewOrder:
    order: Order
    payment: Payment
    cart: Cart  # as read: the order empties exactly this cart
    variants: dict[int, Variant]  # as read: price and availability must still hold
    audit: AuditEntry
    key: RequestKey | None


@dataclass(frozen=True, slots=True)
class NewPayment:
    order: Order  # as read: status and payment count must still hold
    payment: Payment
    audit: AuditEntry
    key: RequestKey | None


class CheckoutConflict(Exception):
    def __init__(self, kind: Literal["stock", "catalog", "cart", "order", "key"], variant: Variant | None = None):
        super().__init__(kind)
        self.kind = kind
        self.variant = variant  # for "stock": the variant as it is now


Attached = Literal["attached", "refused", "busy"]


class CheckoutStore(Protocol):
    def snapshot(self, user: int, address_id: int, key: RequestKey | None) -> CheckoutSnapshot: ...

    def order(self, order_id: int, key: RequestKey | None) -> tuple[Order | None, KeyedCheckout | None]: ...

    def order_and_payment(self, user: int, order_id: int, payment_id: int) -> tuple[Order | None, Payment | None]: ...

    def variants(self, variant_ids: list[int]) -> dict[int, Variant]: ...

    def cart(self, user: int) -> Cart | None: ...

    def payment(self, user: int, payment_id: int) -> Payment | None: ...

    def next_id(self, kind: Literal["order", "payment"]) -> int: ...

    def place_order(self, new: NewOrder) -> None: ...

    def add_payment(self, new: NewPayment) -> None: ...

    def attach_session(self, payment: Payment, session_id: str, url: str | None) -> Attached: ...


@dataclass(frozen=True, slots=True)
class _GiveBack:
    """What the request that created a Stripe payment undoes if Stripe fails."""

    restore_cart: bool
    key: RequestKey | None


class CheckoutService:
    def __init__(
        self,
        store: CheckoutStore,
        settlement: Settlement,
        options: CheckoutOptions,
        gateway: Callable[[], CheckoutGateway | None] = lambda: None,
        clock: Callable[[], str] = now_text,
        pause: Callable[[float], None] = time.sleep,
    ) -> None:
        self._store = store
        self._settlement = settlement
        self._options = options
        self._gateway = gateway
        self._clock = clock
        self._pause = pause

    # ------------------------------------------------------------------ COD

    def cash_on_delivery(self, user: int, address_id: int, key: str | None = None) -> tuple[Order, Payment]:
        request_key = self._request_key(user, key, "cod", {"shipping_address": address_id})
        placed = self._place_order(user, address_id, PaymentMethod.COD, request_key)
        if isinstance(placed, KeyedCheckout):
            order, payment = self._replayed(placed, request_key)
            return _as_placed(order, payment)
        order, payment = placed
        count("PaymentsCreated")
        logger.info("COD order placed", extra={"order": order.id, "payment": payment.id})
        return order, payment

    # ------------------------------------------------------------------ Stripe

    def stripe_from_cart(self, user: int, address_id: int, key: str | None = None) -> StartedCheckout:
        gateway = self._require_gateway()
        request_key = self._request_key(user, key, "stripe", {"shipping_address": address_id})
        placed = self._place_order(user, address_id, PaymentMethod.STRIPE, request_key)
        if isinstance(placed, KeyedCheckout):
            return self._replay(gateway, placed, request_key)
        order, payment = placed
        count("PaymentsCreated")
        logger.append_keys(order=order.id, payment=payment.id)
        return self._open_session(gateway, order, payment, _GiveBack(restore_cart=True, key=request_key))

    def stripe_for_order(self, user: int, order_id: int, key: str | None = None) -> StartedCheckout:
        """Pay an existing pending order of the caller's; reuses its open Stripe payment (a key is
        then not claimed: paying that order again answers the same session anyway)."""
        gateway = self._require_gateway()
        request_key = self._request_key(user, key, "stripe", {"order": order_id})
        payment_id: int | None = None
        for attempt in range(ATTEMPTS):
            order, keyed = self._store.order(order_id, request_key)
            if keyed is not None:
                return self._replay(gateway, keyed, request_key)
            if order is None or order.user != user:
                raise BadRequest(f"Order {order_id} not found.")
            self._check_payable(order)
            open_stripe = [pid for pid, ref in order.open_payments().items() if ref.method == PaymentMethod.STRIPE]
            if open_stripe:
                payment = self._store.payment(order.user, open_stripe[0])
                if payment is None:
                    raise TransientFault("order lists a payment that is not readable yet")
                return self._resume(gateway, order, payment)
            payment_id = payment_id or self._store.next_id("payment")
            payment = self._new_payment(order, payment_id, PaymentMethod.STRIPE)
            try:
                self._store.add_payment(NewPayment(order, payment, self._audit(order, payment), request_key))
            except CheckoutConflict:
                self._backoff(attempt)
                continue  # a concurrent request added a payment or moved the order: look again
            count("PaymentsCreated")
            logger.append_keys(order=order.id, payment=payment.id)
            return self._open_session(gateway, order, payment, _GiveBack(restore_cart=False, key=request_key))
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
        require_order_total(order, payment.amount, "Payment amount")
        if (payment.checkout_expires_at or 0) <= time.time() + 60:
            raise Conflict(f"The checkout for order {order.id} has expired.")
        if payment.checkout_session_id and payment.checkout_url:
            return StartedCheckout(payment.checkout_session_id, payment.checkout_url)
        # No session recorded: its creator is still talking to Stripe, or died. The same idempotency
        # key makes Stripe return the session if it exists, or create it now.
        return self._open_session(gateway, order, payment, give_back=None)

    def _replay(self, gateway: CheckoutGateway, keyed: KeyedCheckout, key: RequestKey | None) -> StartedCheckout:
        order, payment = self._replayed(keyed, key)
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
        return self._open_session(gateway, order, payment, give_back=None)

    def _replayed(self, keyed: KeyedCheckout, key: RequestKey | None) -> tuple[Order, Payment]:
        if key is None or keyed.request != key.request:
            raise Unprocessable(DIFFERENT_REQUEST)
        order, payment = self._store.order_and_payment(key.user, keyed.order, keyed.payment)
        if order is None or payment is None:
            raise TransientFault("a claimed checkout is not readable yet")
        count("DuplicateCheckouts")
        logger.info("checkout replayed for its Idempotency-Key", extra={"order": order.id, "payment": payment.id})
        return order, payment

    def _open_session(
        self, gateway: CheckoutGateway, order: Order, payment: Payment, give_back: _GiveBack | None
    ) -> StartedCheckout:
        """`give_back` only for the request that created `payment`."""
        request = self._session_request(order, payment)
        try:
            session = gateway.create_session(request)
        except Exception as exc:
            count("StripeErrors")
            logger.warning("Stripe checkout failed", extra={"failure": getattr(exc, "kind", "error")})
            if give_back is not None:
                return self._give_back(gateway, order, payment, give_back, request, exc)
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

    def _cancel_unattached(self, gateway: CheckoutGateway, payment: Payment, session_id: str) -> StartedCheckout:
        """The payment was given up meanwhile (its creator's give-back, the sweep): nobody may pay
        the session made for it. Always raises, saying what is known about charges."""
        session = gateway.expire_session(session_id)
        if session is not None and session.paid:
            given_up = replace(payment, checkout_session_id=session_id)
            self._settlement.paid_after_giving_up(given_up, "checkout", session_money(session))
            raise Conflict("This checkout was cancelled, but it was paid: the payment will be refunded.")
        if session is None or not session.closed:  # Stripe cannot say whether it is paid: no claim either way
            raise UpstreamUnavailable("The payment provider is unavailable: this checkout was cancelled. Please retry.")
        raise Conflict("This checkout was cancelled before its payment page opened; please check out again.")

    def _give_back(
        self,
        gateway: CheckoutGateway,
        order: Order,
        payment: Payment,
        give_back: _GiveBack,
        request: SessionRequest,
        failure: Exception,
    ) -> StartedCheckout:
        """Compensate a checkout Stripe refused: payment failed, order cancelled, stock, cart and key
        back; unless a concurrent request attached a session meanwhile, which is then the answer."""
        items = tuple(CartItem(item.variant, item.quantity) for item in order.items)

        def adjust(plan: Plan) -> Plan:
            cart = self._store.cart(order.user) if give_back.restore_cart else None
            if give_back.restore_cart and (cart is None or not cart.unreadable):  # never merged into a guess
                plan = replace(plan, restore_cart=(cart, items))
            # The failed create may have made a session nobody knows of yet: the sweep watches the
            # payment until that is known (below, or once the checkout's own expiry has passed).
            watched = tuple(replace(t, watch_session=t.payment_id == payment.id) for t in plan.transitions)
            return replace(plan, forget_key=give_back.key, transitions=watched)

        change = Change(
            order.id,
            payment.id,
            PaymentStatus.FAILED,
            "checkout",
            reason="stripe_unavailable",
            facts=Facts(without_session=True),
            details={"error": type(failure).__name__},
        )
        outcome = self._settlement.apply(change, adjust=adjust)
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
        cart = "your cart is as it was" if give_back.restore_cart else "the order is as it was"
        if session is not None and session.paid:
            self._settlement.paid_after_giving_up(given_up, "checkout", session_money(session))
            message = f"this checkout was cancelled and its payment will be refunded; {cart}"
        elif session is not None and session.closed:
            self._settlement.stop_watching(given_up)
            message = f"nothing was charged and {cart}"
        else:  # Stripe cannot say: no claim about charges, and the sweep keeps watching the payment
            message = f"this checkout was cancelled and {cart}"
        raise UpstreamUnavailable(f"The payment provider is unavailable: {message}. Please retry.") from failure

    @staticmethod
    def _possible_session(gateway: CheckoutGateway, request: SessionRequest) -> CheckoutSession | None:
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
        try:
            line_items = tuple(
                LineItem(names[item.variant], to_minor_units(item.price, order.currency), item.quantity)
                for item in order.items
            )
        except MoneyError as exc:
            raise Unprocessable(str(exc)) from None
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

    def _require_gateway(self) -> CheckoutGateway:
        gateway = self._gateway()
        if gateway is None:
            raise GatewayNotConfigured("Stripe payment gateway is not configured")
        return gateway

    # ------------------------------------------------------------------ placing orders

    def _place_order(
        self, user: int, address_id: int, method: PaymentMethod, key: RequestKey | None
    ) -> tuple[Order, Payment] | KeyedCheckout:
        ids: tuple[int, int] | None = None
        for attempt in range(ATTEMPTS):
            snapshot = self._store.snapshot(user, address_id, key)
            if snapshot.keyed is not None:
                return snapshot.keyed
            address, cart, lines = _checkout_of(snapshot, user, address_id)
            variants = self._store.variants(list(lines))
            items = self._order_items(lines, variants)
            ids = ids or (self._store.next_id("order"), self._store.next_id("payment"))
            order = self._new_order(user, address, method, ids, items)
            payment = self._new_payment(order, ids[1], method)
            try:
                self._store.place_order(NewOrder(order, payment, cart, variants, self._audit(order, payment), key))
            except CheckoutConflict as conflict:
                if conflict.kind == "stock" and conflict.variant is not None:
                    raise OutOfStock(conflict.variant.label, max(conflict.variant.stock, 0)) from None
                self._backoff(attempt)
                continue  # prices, the cart or the key moved under us: read again and re-decide
            return order, payment
        raise Conflict("Checkout conflicted with concurrent updates; please retry.")

    def _new_order(
        self, user: int, address: Address, method: PaymentMethod, ids: tuple[int, int], items: list[OrderItem]
    ) -> Order:
        now = self._clock()
        return Order(
            id=ids[0],
            user=user,
            shipping_address=address.id,
            status=_PLACED_STATUS[method],
            total_price=sum((item.subtotal for item in items), Decimal(0)),
            currency=self._options.currency,
            items=tuple(items),
            created_at=now,
            updated_at=now,
            origin=OrderOrigin.COD_CHECKOUT if method == PaymentMethod.COD else OrderOrigin.STRIPE_CHECKOUT,
            stock_reserved=True,
            payments={ids[1]: PaymentRef(method, PaymentStatus.PENDING)},
            shipping=address.snapshot(),
        )

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
        payment = payment_for(order, payment_id, method, PaymentStatus.PENDING, now)
        if method != PaymentMethod.STRIPE:
            return payment
        # Stripe wants 30 min..24 h from the session's creation, which happens a moment after
        # this: leave two minutes of slack inside that window so the bounds never bite.
        seconds = min(self._options.expires_minutes * 60 + 120, 24 * 3600 - 60)
        expires = int((parse_timestamp(now) + timedelta(seconds=seconds)).timestamp())
        return replace(payment, checkout_expires_at=expires, checkout_key=_checkout_key(payment, expires))

    def _request_key(self, user: int, key: str | None, kind: str, body: dict[str, Any]) -> RequestKey | None:
        if not key:
            return None
        fingerprint = hashlib.sha256(json.dumps([kind, body], sort_keys=True).encode()).hexdigest()
        expires_at = int(parse_timestamp(self._clock()).timestamp()) + KEY_LIFETIME_SECONDS
        return RequestKey(user=user, key=key, request=fingerprint, expires_at=expires_at)

    def _backoff(self, attempt: int) -> None:
        """Concurrent checkouts that lost a race must not retry in lockstep."""
        self._pause(random.uniform(0.01, 0.03) * 2**attempt)  # noqa: S311 - jitter, not a secret

    @staticmethod
    def _audit(order: Order, payment: Payment) -> AuditEntry:
        return AuditEntry(payment.id, order.id, None, payment.status, "checkout", None, "created", payment.created_at)


_PLACED_STATUS = {
    PaymentMethod.COD: OrderStatus.CONFIRMED,  # cash on delivery: the order ships, the money comes later
    PaymentMethod.STRIPE: OrderStatus.PENDING,
}


def _as_placed(order: Order, payment: Payment) -> tuple[Order, Payment]:
    """The order and payment as the checkout that placed them answered (a keyed replay gives the
    first answer again, whatever happened to them since)."""
    placed_payment = replace(payment, status=PaymentStatus.PENDING, transaction_id=None, updated_at=payment.created_at)
    return replace(order, status=_PLACED_STATUS[payment.method]), placed_payment


def _checkout_over(payment: Payment) -> bool:
    """Its Checkout Session can no longer be paid: failed (expired), or past its expiry unpaid."""
    if payment.status == PaymentStatus.FAILED:
        return True
    return payment.status == PaymentStatus.PENDING and (payment.checkout_expires_at or 0) <= time.time()


def _still_this_checkouts(payment: Payment) -> bool:
    return payment.status != PaymentStatus.FAILED and payment.checkout_session_id is None


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


def _checkout_of(snapshot: CheckoutSnapshot, user: int, address_id: int) -> tuple[Address, Cart, dict[int, int]]:
    """The caller's address and cart, and the cart's lines (variant -> quantity), if they can be
    checked out at all."""
    address, cart = snapshot.address, snapshot.cart
    if address is None or address.user != user:
        # Keyed by the field, in DRF's PrimaryKeyRelatedField words: a form shows it beside the address.
        raise InvalidInput.field("shipping_address", f'Invalid pk "{address_id}" - object does not exist.')
    if cart is not None and cart.unreadable:  # written by another service in a shape we cannot trust
        raise BadRequest(UNREADABLE_CART)
    lines = _merge_lines(cart.items if cart else ())
    if cart is None or not lines:
        raise BadRequest("Your cart is empty.")
    if len(lines) > MAX_LINES:
        raise BadRequest(f"Your cart has more than {MAX_LINES} different products.")
    return address, cart, lines


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
