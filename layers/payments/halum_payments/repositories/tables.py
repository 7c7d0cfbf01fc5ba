"""Table names, resolved once from the settings."""

from __future__ import annotations

from dataclasses import dataclass

from ..config import Settings


@dataclass(frozen=True, slots=True)
class Tables:
    payments: str
    payment_audit: str
    orders: str
    product_variants: str
    shipping_addresses: str
    carts: str
    counters: str
    gateway_transactions: str
    idempotency: str

    @classmethod
    def from_settings(cls, settings: Settings) -> Tables:
        return cls(
            payments=settings.payments_table,
            payment_audit=settings.payment_audit_table,
            orders=settings.orders_table,
            product_variants=settings.product_variants_table,
            shipping_addresses=settings.shipping_addresses_table,
            carts=settings.carts_table,
            counters=settings.counters_table,
            gateway_transactions=settings.gateway_transactions_table,
            idempotency=settings.idempotency_table,
        )
