from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from halum_payments.money import (
    THREE_DECIMAL,
    ZERO_DECIMAL,
    MoneyError,
    exponent,
    format_amount,
    from_minor_units,
    parse_amount,
    to_minor_units,
)

CURRENCIES = ["usd", "bdt", "eur", *sorted(ZERO_DECIMAL), *sorted(THREE_DECIMAL)]


@given(st.sampled_from(CURRENCIES), st.integers(min_value=0, max_value=10**12))
def test_minor_units_round_trip_exactly(currency, minor):
    if currency in THREE_DECIMAL:
        minor -= minor % 10  # Stripe charges three-decimal currencies in tens
    amount = from_minor_units(minor, currency)
    assert to_minor_units(amount, currency) == minor
    assert amount == Decimal(minor).scaleb(-exponent(currency))


@given(st.decimals(min_value=0, max_value=10**9, places=2, allow_nan=False, allow_infinity=False))
def test_two_decimal_amounts_convert_to_cents_exactly(amount):
    assert to_minor_units(amount, "usd") == int(amount * 100)
    assert Decimal(format_amount(amount)) == amount


def test_the_specs_amount_is_cents_for_stripe():
    assert to_minor_units(Decimal("1598.00"), "usd") == 159800
    assert to_minor_units(Decimal("799.50"), "USD") == 79950


@pytest.mark.parametrize(
    ("amount", "currency"),
    [("799.50", "jpy"), ("0.001", "usd"), ("1.005", "kwd"), ("1.001", "kwd")],
)
def test_amounts_the_currency_cannot_hold_are_refused_not_rounded(amount, currency):
    with pytest.raises(MoneyError):
        to_minor_units(Decimal(amount), currency)


def test_zero_decimal_currency_is_not_multiplied():
    assert to_minor_units(Decimal("1598"), "jpy") == 1598


@pytest.mark.parametrize("value", [1.5, float("nan"), True, "abc", "-1", "NaN", "Infinity", None])
def test_parse_amount_refuses_floats_and_garbage(value):
    with pytest.raises(MoneyError):
        parse_amount(value)


def test_format_amount_has_two_decimals():
    assert format_amount(Decimal("1598")) == "1598.00"
    assert format_amount(Decimal("899.5")) == "899.50"
