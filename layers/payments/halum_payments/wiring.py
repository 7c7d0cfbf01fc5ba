"""Composition root: builds each function's services from the settings, once per process.

Functions call these at import time (cold start); tests build the same objects with their
own settings and clients.
"""

from __future__ import annotations

from typing import Any

from .auth import Authenticator
from .config import Settings, get_settings
from .cursors import CursorCodec, derive_key
from .errors import ConfigError
from .logic.listing import PaymentQueries
from .repositories.counters import CountersRepository
from .repositories.payments import PaymentsRepository


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
