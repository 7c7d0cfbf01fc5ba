"""A payment survives the trip to a DynamoDB item and back, and the API shows it as the spec does."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import TypeAdapter
from pydantic_core import to_json

from halum_payments.models import Payment, PaymentMethod, PaymentOut, PaymentStatus, payment_out
from halum_payments.repositories.dynamo import to_item
from halum_payments.repositories.payments import decode, encode

NOW = "2023-01-15T14:30:00Z"
ids = st.integers(min_value=1, max_value=10**18 - 1)
texts = st.text(min_size=1, max_size=40)
moments = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2999, 12, 31))
timestamps = moments.map(lambda moment: moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
payments = st.builds(
    Payment,
    id=ids,
    order=ids,
    user=ids,
    amount=st.decimals(min_value=Decimal("0.01"), max_value=Decimal("99999999.99"), places=2),
    currency=st.sampled_from(["usd", "bdt", "eur"]),
    method=st.sampled_from(PaymentMethod),
    status=st.sampled_from(PaymentStatus),
    transaction_id=st.none() | texts,
    created_at=timestamps,
    updated_at=timestamps,
    checkout_session_id=st.none() | texts,
    checkout_url=st.none() | texts,
    checkout_expires_at=st.none() | st.integers(min_value=0, max_value=2**40),
    checkout_key=st.none() | texts,
)


@given(payments)
def test_a_stored_payment_reads_back_the_same(payment: Payment) -> None:
    assert decode(to_item(encode(payment))) == payment


@given(payments)
def test_the_api_shows_a_payment_as_its_documented_json(payment: Payment) -> None:
    shown = json.loads(to_json(payment_out(payment)))
    assert shown == {
        "id": payment.id,
        "order": payment.order,
        "user": payment.user,
        "amount": f"{payment.amount:.2f}",
        "method": payment.method.value,
        "status": payment.status.value,
        "transaction_id": payment.transaction_id,
        "created_at": payment.created_at,
        "updated_at": payment.updated_at,
    }
    TypeAdapter(PaymentOut).validate_python(shown)  # the documented schema's own validation


def test_a_null_transaction_id_and_a_missing_currency_read_as_none_and_usd() -> None:
    payment = Payment(1, 1, 1, Decimal("1598.00"), "usd", PaymentMethod.COD, PaymentStatus.PENDING, None, NOW, NOW)
    item = to_item(encode(payment))
    del item["currency"]
    item["transaction_id"] = {"NULL": True}
    assert decode(item) == payment


def test_a_stored_status_or_method_outside_the_spec_is_a_fault_not_an_answer() -> None:
    payment = Payment(1, 1, 1, Decimal("1598.00"), "usd", PaymentMethod.COD, PaymentStatus.PENDING, None, NOW, NOW)
    for attribute, value in (("status", "settled"), ("method", "cheque")):
        item = to_item(encode(payment))
        item[attribute] = {"S": value}
        with pytest.raises(KeyError):
            decode(item)


def test_only_an_open_stripe_payment_is_in_the_open_index() -> None:
    for method in PaymentMethod:
        for status in PaymentStatus:
            payment = Payment(1, 1, 1, Decimal("1.00"), "usd", method, status, None, NOW, NOW)
            indexed = "open_method" in to_item(encode(payment))
            assert indexed == (
                method == PaymentMethod.STRIPE and status in (PaymentStatus.PENDING, PaymentStatus.PROCESSING)
            )
