"""A payment survives the trip to a DynamoDB item and back, whichever decoder reads it."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic_core import to_json

from halum_payments.models import (
    Payment,
    PaymentMethod,
    PaymentOut,
    PaymentPage,
    PaymentPageBody,
    PaymentStatus,
    payment_row,
)
from halum_payments.repositories.dynamo import from_item, to_item
from halum_payments.repositories.payments import api_row, decode, decode_item, encode

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
)


@given(payments)
def test_a_stored_payment_reads_back_the_same_through_either_decoder(payment: Payment) -> None:
    item = to_item(encode(payment))
    assert decode_item(item) == payment
    assert decode(from_item(item)) == payment


@given(payments)
def test_the_rows_the_read_functions_serialise_are_the_documented_payment_json(payment: Payment) -> None:
    documented = PaymentOut.model_validate(
        {**asdict(payment), "amount": f"{payment.amount:.2f}", "method": payment.method, "status": payment.status}
    ).model_dump_json()
    list_row = api_row(to_item(encode(payment)))
    assert to_json(list_row).decode() == documented
    assert to_json(payment_row(payment)).decode() == documented
    assert PaymentOut.of(payment).model_dump_json() == documented
    page: PaymentPageBody = {"count": 1, "next": None, "previous": None, "results": [list_row]}
    assert to_json(page).decode() == PaymentPage.model_validate(page).model_dump_json()


def test_a_null_transaction_id_and_a_missing_currency_read_as_none_and_usd() -> None:
    payment = Payment(1, 1, 1, Decimal("1598.00"), "usd", PaymentMethod.COD, PaymentStatus.PENDING, None, NOW, NOW)
    item = to_item(encode(payment))
    del item["currency"]
    item["transaction_id"] = {"NULL": True}
    assert decode_item(item) == payment


def test_a_stored_status_or_method_outside_the_spec_is_a_fault_not_an_answer() -> None:
    payment = Payment(1, 1, 1, Decimal("1598.00"), "usd", PaymentMethod.COD, PaymentStatus.PENDING, None, NOW, NOW)
    for attribute, value in (("status", "settled"), ("method", "cheque")):
        item = to_item(encode(payment))
        item[attribute] = {"S": value}
        with pytest.raises(KeyError):
            api_row(item)
        with pytest.raises(KeyError):
            decode_item(item)
