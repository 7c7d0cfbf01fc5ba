"""Placing an order: the caller's cart becomes an order and a pending payment in one transaction
(stock reserved, the cart emptied, the Idempotency-Key claimed), or an existing order gets a new
payment. Cash on delivery ends here; a Stripe checkout goes on in stripe_session.py.

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
from typing import Any, Literal, NamedTuple, Protocol

from ..clock import now_text, parse_timestamp
from ..errors import (
    BadRequest,
    Conflict,
    DomainError,
    InvalidInput,
    OutOfStock,
    TransientFault,
    Unprocessable,
    UnreadableRecord,
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
from .rules import order_total
from .settlement import AuditEntry

MAX_LINES = 50  # keeps an order's transaction well under DynamoDB's 100 items
ATTEMPTS = 5
KEY_LIFETIME_SECONDS = 24 * 3600  # how long an Idempotency-Key names its checkout
DIFFERENT_REQUEST = "This idempotency key was already used with a different request."
UNREADABLE_CART = "A line of your cart cannot be read; update your cart."
UNREADABLE_ADDRESS = "Your shipping address {} cannot be read; update it or choose another."
UNREADABLE_VARIANT = "Product {} cannot be bought right now; remove it from your cart to check out the rest."


@dataclass(frozen=True, slots=True)
class CheckoutOptions:
    currency: str
    success_url: str
    cancel_url: str
    expires_minutes: int


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

    def payment(self, user: int, payment_id: int) -> Payment | None: ...

    def next_id(self, kind: Literal["order", "payment"]) -> int: ...

    def place_order(self, new: NewOrder) -> None: ...

    def add_payment(self, new: NewPayment) -> None: ...

    def attach_session(self, payment: Payment, session_id: str, url: str | None) -> Attached: ...


class OrderPlacement:
    def __init__(
        self,
        store: CheckoutStore,
        options: CheckoutOptions,
        clock: Callable[[], str] = now_text,
        pause: Callable[[float], None] = time.sleep,
    ) -> None:
        self._store = store
        self.options = options
        self._clock = clock
        self._pause = pause

    def cash_on_delivery(self, user: int, address_id: int, key: str | None = None) -> tuple[Order, Payment]:
        request_key = self.request_key(user, key, "cod", {"shipping_address": address_id})
        placed = self.place(user, address_id, PaymentMethod.COD, request_key)
        if isinstance(placed, KeyedCheckout):
            return _as_placed(*self.replayed(placed, request_key))
        order, payment = placed
        count("PaymentsCreated")
        logger.info("COD order placed", extra={"order": order.id, "payment": payment.id})
        return order, payment

    def place(
        self, user: int, address_id: int, method: PaymentMethod, key: RequestKey | None
    ) -> tuple[Order, Payment] | KeyedCheckout:
        """The caller's cart as a new order with its payment, or what the key placed before."""
        try:
            return self._place(user, address_id, method, key)
        except UnreadableRecord as broken:
            raise unreadable_for_customer(broken, user, address_id) from None

    def _place(
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
            payment = self.new_payment(order, ids[1], method)
            try:
                self._store.place_order(
                    NewOrder(order, payment, cart, variants, _audit(order, payment, placed=True), key)
                )
            except CheckoutConflict as conflict:
                if conflict.kind == "stock" and conflict.variant is not None:
                    raise OutOfStock(conflict.variant.label, max(conflict.variant.stock, 0)) from None
                self.backoff(attempt)
                continue  # prices, the cart or the key moved under us: read again and re-decide
            return order, payment
        raise Conflict("Checkout conflicted with concurrent updates; please retry.")

    def add_payment(self, order: Order, payment_id: int, key: RequestKey | None) -> Payment | None:
        """A new Stripe payment on `order` as read; None if the order moved meanwhile (read again)."""
        payment = self.new_payment(order, payment_id, PaymentMethod.STRIPE)
        try:
            self._store.add_payment(NewPayment(order, payment, _audit(order, payment), key))
        except CheckoutConflict:
            return None
        count("PaymentsCreated")
        return payment

    def replayed(self, keyed: KeyedCheckout, key: RequestKey | None) -> tuple[Order, Payment]:
        """The order and payment a claimed key placed, for the same request only."""
        if key is None or keyed.request != key.request:
            raise Unprocessable(DIFFERENT_REQUEST)
        order, payment = self._store.order_and_payment(key.user, keyed.order, keyed.payment)
        if order is None or payment is None:
            raise TransientFault("a claimed checkout is not readable yet")
        count("DuplicateCheckouts")
        logger.info("checkout replayed for its Idempotency-Key", extra={"order": order.id, "payment": payment.id})
        return order, payment

    def new_payment(self, order: Order, payment_id: int, method: PaymentMethod) -> Payment:
        now = self._clock()
        payment = payment_for(order, payment_id, method, PaymentStatus.PENDING, now)
        if method != PaymentMethod.STRIPE:
            return payment
        # Stripe wants 30 min..24 h from the session's creation, which happens a moment after
        # this: leave two minutes of slack inside that window so the bounds never bite.
        seconds = min(self.options.expires_minutes * 60 + 120, 24 * 3600 - 60)
        expires = int((parse_timestamp(now) + timedelta(seconds=seconds)).timestamp())
        return replace(payment, checkout_expires_at=expires, checkout_key=_checkout_key(payment, expires))

    def request_key(self, user: int, key: str | None, kind: str, body: dict[str, Any]) -> RequestKey | None:
        if not key:
            return None
        fingerprint = hashlib.sha256(json.dumps([kind, body], sort_keys=True).encode()).hexdigest()
        now = int(parse_timestamp(self._clock()).timestamp())
        return RequestKey(user=user, key=key, request=fingerprint, issued_at=now, expires_at=now + KEY_LIFETIME_SECONDS)

    def backoff(self, attempt: int) -> None:
        """Concurrent checkouts that lost a race must not retry in lockstep."""
        self._pause(random.uniform(0.01, 0.03) * 2**attempt)  # noqa: S311 - jitter, not a secret

    def _new_order(
        self, user: int, address: Address, method: PaymentMethod, ids: tuple[int, int], items: list[OrderItem]
    ) -> Order:
        now = self._clock()
        return Order(
            id=ids[0],
            user=user,
            shipping_address=address.id,
            status=_PLACED_STATUS[method],
            total_price=order_total(items),
            currency=self.options.currency,
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
            if variant is None or not variant.is_active:
                raise BadRequest(f"{label} is not available.")
            if variant.stock < quantity:
                raise OutOfStock(variant.label, max(variant.stock, 0))
            # Before anything is written: an amount the currency cannot represent (425.50 JPY)
            # would otherwise surface only when the Stripe session is built, after the order.
            require_chargeable(variant.price, self.options.currency, variant.label)
            items.append(OrderItem(variant.id, quantity, variant.price, variant.sku, variant.name))
        return items


_PLACED_STATUS = {
    PaymentMethod.COD: OrderStatus.CONFIRMED,  # cash on delivery: the order ships, the money comes later
    PaymentMethod.STRIPE: OrderStatus.PENDING,
}


def _audit(order: Order, payment: Payment, *, placed: bool = False) -> AuditEntry:
    """The new payment's audit row; placing the order too, it says so (the order's status)."""
    return AuditEntry(
        payment.id,
        order.id,
        None,
        payment.status,
        "checkout",
        None,
        "created",
        payment.created_at,
        order_to=order.status if placed else None,
    )


def _as_placed(order: Order, payment: Payment) -> tuple[Order, Payment]:
    """The order and payment as the checkout that placed them answered (a keyed replay gives the
    first answer again, whatever happened to them since)."""
    placed_payment = replace(payment, status=PaymentStatus.PENDING, transaction_id=None, updated_at=payment.created_at)
    return replace(order, status=_PLACED_STATUS[payment.method]), placed_payment


def _checkout_key(payment: Payment, expires_at: int) -> str:
    """One checkout attempt (= one payment) as Stripe sees it: its idempotency key on every retry and
    resume, and its metadata. Unique across deployments sharing a Stripe account, whose payment ids
    repeat (Stripe refuses a key reused with other parameters)."""
    attempt = f"{payment.id}|{payment.order}|{payment.user}|{payment.created_at}|{expires_at}"
    return f"halum-checkout-{payment.id}-{hashlib.sha256(attempt.encode()).hexdigest()[:32]}"


def require_chargeable(price: Decimal, currency: str, what: str) -> None:
    """A price Stripe can charge exactly in the currency (425.50 JPY cannot be)."""
    try:
        to_minor_units(price, currency)
    except MoneyError:
        raise Unprocessable(f"{what} costs {price}, which cannot be charged in {currency.upper()}.") from None


def unreadable_for_customer(broken: UnreadableRecord, user: int, address_id: int) -> DomainError:
    """What the customer is told of a record of the checkout that breaks its contract (the metric and
    the alarm tell the shop): 409 where updating the cart or the address lets them check out (RFC 9110:
    a conflict with the state of what the request meets, which the user can resolve and resubmit; the
    request itself is valid, so not a 400); another user's address as if it did not exist; anything
    else (an order) stays the shop's fault, 503."""
    if broken.table == "CartsTable":
        return Conflict(UNREADABLE_CART)
    if broken.table == "ProductVariantsTable":
        return Conflict(UNREADABLE_VARIANT.format(broken.key.get("id")))
    if broken.table == "ShippingAddressesTable" and broken.owner == user:
        return Conflict(UNREADABLE_ADDRESS.format(address_id))
    if broken.table == "ShippingAddressesTable":
        return _no_such_address(address_id)
    return broken


def _no_such_address(address_id: int) -> InvalidInput:
    # Keyed by the field, in DRF's PrimaryKeyRelatedField words: a form shows it beside the address.
    return InvalidInput.field("shipping_address", f'Invalid pk "{address_id}" - object does not exist.')


def _checkout_of(snapshot: CheckoutSnapshot, user: int, address_id: int) -> tuple[Address, Cart, dict[int, int]]:
    """The caller's address and cart, and the cart's lines (variant -> quantity), if they can be
    checked out at all."""
    address, cart = snapshot.address, snapshot.cart
    if address is None or address.user != user:
        raise _no_such_address(address_id)
    lines = _merge_lines(cart.items if cart else ())
    if cart is None or not lines:
        raise BadRequest("Your cart is empty.")
    if len(lines) > MAX_LINES:
        raise BadRequest(f"Your cart has more than {MAX_LINES} different products.")
    return address, cart, lines


def _merge_lines(items: tuple[CartItem, ...]) -> dict[int, int]:
    """variant -> quantity; a cart may list a variant twice, a transaction may touch it once (every
    quantity is a whole number >= 1: the cart's contract, records.py)."""
    lines: dict[int, int] = {}
    for item in items:
        lines[item.variant] = lines.get(item.variant, 0) + item.quantity
    return lines
