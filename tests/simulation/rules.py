"""The rules the service's tables must obey, written out here from the spec (shared/payments-api.md)
and docs/money.md. Nothing here is imported from `layers/`: a wrong rule in the layer
must not be able to make its own judge agree with it.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

SHOP_CURRENCY = "usd"  # the template's Currency default, which every simulated function runs with

# Payment statuses (spec: "Payment Status Values") and which may follow which.
OPEN = frozenset({"pending", "processing"})
PAID = frozenset({"completed", "refunded"})  # money was taken for the payment (and maybe given back)
NEXT: dict[str, frozenset[str]] = {
    "pending": frozenset({"processing", "completed", "failed"}),
    "processing": frozenset({"completed", "failed"}),
    "completed": frozenset({"refunded"}),
    "failed": frozenset(),
    "refunded": frozenset(),
}
METHODS = frozenset({"COD", "stripe", "ONLINE"})
PROVIDER_OF = {"stripe": "stripe", "ONLINE": "gateway"}  # which outside ledger settles a method's money

# Orders: confirmed once paid (or, for cash on delivery, once placed); cancelled once nothing can
# pay them any more. A cancelled or failed order holds no stock.
CLOSED_ORDER = frozenset({"cancelled", "failed"})
CHECKOUT_ORIGINS = frozenset({"stripe_checkout", "cod_checkout"})  # orders our checkout placed


def may_move(method: str, before: str, after: str) -> bool:
    """Statuses only move forward; a gateway may report money that moved after it reported a
    failure (failed -> completed, ONLINE only). Stripe never does."""
    if before == "failed" and after == "completed":
        return method == "ONLINE"
    return after in NEXT[before]


def minor_digits(currency: str) -> int:
    """Stripe's minor units: https://docs.stripe.com/currencies (zero- and three-decimal lists)."""
    zero = {"bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv", "xaf", "xof"}
    if currency.lower() in zero | {"xpf"}:
        return 0
    if currency.lower() in {"bhd", "jod", "kwd", "omr", "tnd"}:
        return 3
    return 2


def chargeable(value: Any, currency: str) -> bool:
    """Stripe charges whole minor units (docs.stripe.com/currencies): 425.50 JPY is no amount."""
    scaled = Decimal(str(value)).scaleb(minor_digits(currency))
    return scaled == scaled.to_integral_value()


def from_minor(minor: int, currency: str) -> Decimal:
    return Decimal(minor).scaleb(-minor_digits(currency))


def items_total(items: list[dict[str, Any]]) -> Decimal:
    """An order's total: the sum of its lines' unit price times quantity (spec: amount = order total)."""
    return sum((Decimal(str(i["price"])) * int(i["quantity"]) for i in items), Decimal(0))


def amount(value: Any) -> Decimal:
    return Decimal(str(value))
