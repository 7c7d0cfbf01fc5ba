"""Composition root: builds each function's services from the settings, once per process.

Functions call these at import time (cold start); tests build the same objects with their
own settings and clients. Each builder imports the modules it needs when called, so a function
loads only its own code paths at cold start (the read functions never import checkout,
settlement or the webhooks' pydantic models).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import snapstart
from .config import Settings, get_settings
from .errors import ConfigError

if TYPE_CHECKING:  # imported where used: stripe only by the functions that talk to Stripe
    from .auth import Authenticator
    from .cursors import CursorCodec
    from .gateways.stripe_checkout import CheckoutSession, StripeCheckoutGateway
    from .logic.after_payment import AfterPayment
    from .logic.domain_events import DomainEvents
    from .logic.listing import PaymentQueries
    from .logic.placing import OrderPlacement
    from .logic.reconciliation import Reconciler
    from .logic.settlement import Settlement
    from .logic.stripe_session import StripeCheckout
    from .repositories.tables import Tables
    from .webhook import GatewayWebhook, StripeEventHandler, StripeWebhook


def settings() -> Settings:
    """The function's settings, validated once; every function calls this first at init."""
    from .repositories.secrets_manager import read_secret

    snapstart.register()
    return get_settings(read_secret)


def api(**options: Any) -> Any:
    """The function's resolver (http.create_api) with the repositories' rule for faults a retry may fix."""
    from .http import create_api
    from .repositories.dynamo import is_transient

    return create_api(transient=is_transient, **options)


def authenticator(settings: Settings) -> Authenticator:
    from .auth import Authenticator

    return Authenticator(settings)


def cursor_codec(settings: Settings) -> CursorCodec:
    from .cursors import CursorCodec

    secret = settings.secret("cursor_secret") or settings.secret("jwt_secret")
    if secret is None:
        raise ConfigError("CURSOR_SECRET (or JWT_SECRET) is required to sign page cursors")
    return CursorCodec(secret)  # its key derived from the secret as rotated


def payment_queries(settings: Settings, client: Any = None, *, paging: bool = True) -> PaymentQueries:
    from .logic.listing import PaymentQueries
    from .repositories.counters import CountersRepository
    from .repositories.payments import PaymentsRepository

    return PaymentQueries(
        PaymentsRepository(settings.payments_table, client),
        CountersRepository(settings.counters_table, client),
        cursor_codec(settings) if paging else None,
    )


def tables(settings: Settings) -> Tables:
    from .repositories.tables import Tables

    return Tables.from_settings(settings)


def domain_events(settings: Settings, client: Any = None) -> DomainEvents:
    """What PublishEventsFunction does with each committed audit row: its events onto the bus."""
    from .logic.domain_events import DomainEvents
    from .repositories.event_bus import EventBus

    if not settings.event_bus_name:
        raise ConfigError("EVENT_BUS_NAME is required to publish domain events")
    return DomainEvents(EventBus(settings.event_bus_name, client))


def stripe_gateway(settings: Settings) -> StripeCheckoutGateway | None:
    """The Stripe client for this process, or None when no secret key is configured (503)."""
    key = settings.secret("stripe_secret_key")
    if not settings.stripe_configured or key is None:
        return None
    from .gateways.stripe_checkout import StripeCheckoutGateway

    return StripeCheckoutGateway(
        key,
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
    from .logic.settlement import Settlement
    from .repositories.settlement_store import DynamoSettlementStore

    def expire_session(session_id: str) -> CheckoutSession | None:
        stripe = gateway() if callable(gateway) else gateway
        return None if stripe is None else stripe.expire_session(session_id)

    return Settlement(DynamoSettlementStore(tables(settings), client), expire_session=expire_session)


def order_placement(settings: Settings, client: Any = None) -> OrderPlacement:
    from .logic.placing import CheckoutOptions, OrderPlacement
    from .repositories.checkout_store import DynamoCheckoutStore

    urls = (settings.checkout_success_url, settings.checkout_cancel_url)
    options = CheckoutOptions(settings.currency, *urls, expires_minutes=settings.checkout_expires_minutes)
    return OrderPlacement(DynamoCheckoutStore(tables(settings), client), options)


def stripe_checkout(
    settings: Settings, gateway: StripeCheckoutGateway | None = None, client: Any = None
) -> StripeCheckout:
    from .logic.stripe_session import StripeCheckout
    from .repositories.checkout_store import DynamoCheckoutStore

    placing = order_placement(settings, client)
    store, settles = DynamoCheckoutStore(tables(settings), client), settlement(settings, gateway, client)
    return StripeCheckout(placing, store, settles, placing.options, gateway=lambda: gateway)


def _after_payment(settings: Settings, gateway: Any, client: Any) -> tuple[Settlement, Any, AfterPayment]:
    """Settlement, its store, and what refunds and disputes record: what both webhooks' events need."""
    from .logic.after_payment import AfterPayment
    from .repositories.settlement_store import DynamoSettlementStore

    store = DynamoSettlementStore(tables(settings), client)
    settles = settlement(settings, gateway, client)
    return settles, store, AfterPayment(settles, store)


def stripe_event_handler(settings: Settings, gateway: Any, client: Any = None, **options: Any) -> StripeEventHandler:
    """Stripe events applied once, with the idempotency records the webhook and the sweep share."""
    from .logic.stripe_events import StripeEvents
    from .webhook import StripeEventHandler

    intents = gateway if callable(gateway) else (lambda: gateway)
    events = StripeEvents(*_after_payment(settings, gateway, client), intents)
    return StripeEventHandler(events, settings.idempotency_table, client=client, **options)


def stripe_webhook(settings: Settings, client: Any = None) -> StripeWebhook:
    """The Stripe webhook: its signature (with the secret as rotated), then the shared handler."""
    from .gateways.signatures import verify_stripe_event_with
    from .webhook import Signed, StripeWebhook

    signed = Signed(settings, "stripe_webhook_secret", "stripe-signature", verify_stripe_event_with)
    handler = stripe_event_handler(
        settings, lazy_stripe_gateway(settings), client, duplicate_metric="DuplicateDeliveries"
    )
    return StripeWebhook(signed, handler)


def gateway_webhook(settings: Settings, client: Any = None) -> GatewayWebhook:
    """The generic gateway's webhook: its signature, then its events applied once."""
    from .gateways.signatures import verify_gateway_signature_with
    from .logic.gateway_events import GatewayEvents
    from .webhook import GatewayWebhook, Signed

    signed = Signed(settings, "payment_webhook_secret", "x-webhook-signature", verify_gateway_signature_with)
    after = _after_payment(settings, lazy_stripe_gateway(settings), client)
    events = GatewayEvents(*after, max_age_seconds=settings.payment_webhook_max_age_seconds)
    return GatewayWebhook(signed, events, settings.idempotency_table, client)


def reconciler(settings: Settings, client: Any = None) -> Reconciler:
    from .logic.reconciliation import Reconciler
    from .repositories.payments import PaymentsRepository
    from .repositories.sweep_state import SweepStateRepository

    gateway = lazy_stripe_gateway(settings)
    # The webhook's own handler and idempotency records: an event either applied is not applied
    # again. Its replays here are the sweep's normal case, not duplicate deliveries: not counted.
    handler = stripe_event_handler(settings, gateway, client)
    return Reconciler(
        PaymentsRepository(settings.payments_table, client),
        SweepStateRepository(settings.counters_table, client),  # its places and its lease
        handler,
        handler.events,
        settlement(settings, gateway, client),
        gateway,  # None without a Stripe key (stripe_gateway); stripe imported when the sweep reads the log
        after_minutes=settings.reconcile_after,
        batch_size=settings.reconcile_batch_size,
        checkout_seconds=settings.checkout_timeout_seconds,
        lookup_budget_ms=stripe_call_budget_ms(settings) + 3000,  # + the settlement's DynamoDB calls
    )


def stripe_call_budget_ms(settings: Settings) -> int:
    """The longest one Stripe call can take: every attempt timing out, plus stripe-python's waits
    between them (0.5 s doubling, at most 5 s each, jittered down)."""
    retries = settings.stripe_max_network_retries
    waits = sum(min(0.5 * 2**n, 5.0) for n in range(retries))
    return int((settings.stripe_timeout_seconds * (retries + 1) + waits) * 1000)
