"""Money: Decimal end to end; integer minor units only at the provider boundary."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

CENT = Decimal("0.01")

# Stripe's lists: https://docs.stripe.com/currencies#zero-decimal and #three-decimal
ZERO_DECIMAL = frozenset(
    ["bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv", "xaf", "xof", "xpf"]
)
THREE_DECIMAL = frozenset(["bhd", "jod", "kwd", "omr", "tnd"])


class MoneyError(ValueError):
    pass


def parse_amount(value: object) -> Decimal:
    """A non-negative decimal amount from a string, int or Decimal (never a float)."""
    if isinstance(value, (bool, float)):
        raise MoneyError("amounts must be decimal strings, not floats")
    try:
        amount = value if isinstance(value, Decimal) else Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise MoneyError(f"not a decimal amount: {value!r}") from None
    if not amount.is_finite() or amount < 0:
        raise MoneyError(f"not a valid amount: {value!r}")
    return amount


def exponent(currency: str) -> int:
    currency = currency.lower()
    if currency in ZERO_DECIMAL:
        return 0
    if currency in THREE_DECIMAL:
        return 3
    return 2


def to_minor_units(amount: Decimal, currency: str) -> int:
    """Exact conversion; refuses amounts the currency cannot represent instead of rounding."""
    if not isinstance(amount, Decimal):
        raise MoneyError("amount must be a Decimal")
    scaled = amount.scaleb(exponent(currency))
    if scaled != scaled.to_integral_value():
        raise MoneyError(f"{amount} has more precision than {currency.upper()} allows")
    minor = int(scaled)
    if currency.lower() in THREE_DECIMAL and minor % 10:
        # Stripe charges three-decimal currencies in multiples of 10 minor units.
        raise MoneyError(f"{amount} {currency.upper()} must be a multiple of 0.010")
    return minor


def from_minor_units(minor: int, currency: str) -> Decimal:
    return Decimal(minor).scaleb(-exponent(currency))


def amount_text(amount: Decimal, currency: str) -> str:
    """An amount as the books write it: a decimal string with the currency's own places ("12.50",
    "1500" for JPY, "1.250" for KWD), never a float or minor units."""
    return str(amount.quantize(Decimal(1).scaleb(-exponent(currency))))


def format_amount(amount: Decimal) -> str:
    """The API's shape: a string with exactly two decimals, as DRF's DecimalField(10, 2)."""
    return str(amount.quantize(CENT))
