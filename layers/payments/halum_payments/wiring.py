"""Composition root: builds each function's services from the settings, once per process.

Functions call these at import time (cold start); tests build the same objects with their
own settings and clients.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from .auth import Authenticator
from .clock import now_text
from .config import Settings, get_settings
from .cursors import CursorCodec, derive_key
from .errors import ConfigError
from .logic.checkout import CheckoutOptions, CheckoutService
from .logic.listing import PaymentQueries
from .logic.reconciliation import Reconciler
from .logic.settlement import AuditEntry, Settlement
from .logic.webhooks import GatewayEvents, StripeEvents
from .models import Payment, PaymentMethod
from .repositories.checkout_store import DynamoCheckoutStore
from .repositories.counters import CountersRepository
from .repositories.payments import PaymentsRepository
from .repositories.settlement_store import DynamoSettlementStore
from .repositories.sweep_state import SweepStateRepository
from .repositories.tables import Tables

if TYPE_CHECKING:  # stripe is imported only by the functions that talk to Stripe
    from .gateways.stripe_checkout import StripeCheckoutGateway


def settings() -> Settings:
    return get_settings()


def authenticator(settings: Settings) -> Authenticator:
    return Authenticator(settings)


def cursor_codec(settings: Settings) -> CursorCodec:
    secret = settings.cursor_secret or settings.jwt_secret
    if secret is None or not secret.get_secret_value():
        raise ConfigError("CURSOR_SECRET (or JWT_SECRET) is required to sign page cursors")
    return CursorCodec(derive_key(secret.get_secret_value()))


def payment_queries(settings: Settings, client: Any = None, *, paging: bool = True) -> PaymentQueries:
    return PaymentQueries(
        PaymentsRepository(settings.payments_table, client),
        CountersRepository(settings.counters_table, client),
        cursor_codec(settings) if paging else None,
    )


def tables(settings: Settings) -> Tables:
    return Tables.from_settings(settings)


def stripe_gateway(settings: Settings) -> StripeCheckoutGateway | None:
    """The Stripe client for this process, or None when no secret key is configured (503)."""
    if not settings.stripe_configured or settings.stripe_secret_key is None:
        return None
    from .gateways.stripe_checkout import StripeCheckoutGateway

    return StripeCheckoutGateway(
        settings.stripe_secret_key.get_secret_value(),
        api_base=settings.stripe_api_base,
        timeout=settings.stripe_timeout_seconds,
        max_network_retries=settings.stripe_max_network_retries,
    )


def lazy_stripe_gateway(settings: Settings) -> Callable[[], StripeCheckoutGateway | None]:
    """The Stripe client, built (and stripe imported) on first use only: for functions that
    need Stripe on a rare path, such as expiring a superseded checkout session."""

    @functools.cache
    def get() -> StripeCheckoutGateway | None:
        return stripe_gateway(settings)

    return get


def settlement(
    settings: Settings,
    gateway: StripeCheckoutGateway | Callable[[], StripeCheckoutGateway | None] | None = None,
    client: Any = None,
) -> Settlement:
    def expire_sessions(payments: list[Payment]) -> None:
        stripe = gateway() if callable(gateway) else gateway
        for payment in payments:
            if stripe is not None and payment.checkout_session_id:
                stripe.expire_session(payment.checkout_session_id)

    return Settlement(DynamoSettlementStore(tables(settings), client), expire_sessions=expire_sessions)


def checkout_service(
    settings: Settings, gateway: StripeCheckoutGateway | None = None, client: Any = None
) -> CheckoutService:
    options = CheckoutOptions(
        currency=settings.currency,
        success_url=settings.checkout_success_url,
        cancel_url=settings.checkout_cancel_url,
        expires_minutes=settings.checkout_expires_minutes,
    )
    return CheckoutService(
        DynamoCheckoutStore(tables(settings), client),
        settlement(settings, gateway, client),
        options,
        gateway=lambda: gateway,
    )


def stripe_events(
    settings: Settings,
    gateway: StripeCheckoutGateway | Callable[[], StripeCheckoutGateway | None] | None = None,
    client: Any = None,
) -> StripeEvents:
    store = DynamoSettlementStore(tables(settings), client)

    def payment_amount(payment_id: int) -> tuple[Decimal, str] | None:
        payment = store.payment(payment_id)
        return (payment.amount, payment.currency) if payment else None

    def record_partial_refund(payment_id: int, order_id: int, details: dict[str, Any], event_id: str) -> None:
        store.record(
            [AuditEntry(payment_id, order_id, None, None, "stripe", event_id, "partial_refund", now_text(), details)]
        )

    return StripeEvents(
        settlement(settings, gateway, client),
        payment_for_intent=lambda intent: store.transactions.lookup(PaymentMethod.STRIPE, intent),
        payment_amount=payment_amount,
        record_partial_refund=record_partial_refund,
    )


def gateway_events(settings: Settings, client: Any = None) -> GatewayEvents:
    return GatewayEvents(settlement(settings, lazy_stripe_gateway(settings), client))


def reconciler(settings: Settings, client: Any = None) -> Reconciler:
    gateway = lazy_stripe_gateway(settings)
    return Reconciler(
        PaymentsRepository(settings.payments_table, client),
        SweepStateRepository(settings.counters_table, client),
        stripe_events(settings, gateway, client),
        settlement(settings, gateway, client),
        gateway,
        after_minutes=settings.reconcile_after,
        batch_size=settings.reconcile_batch_size,
    )
