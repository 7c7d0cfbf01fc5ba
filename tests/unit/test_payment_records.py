"""A payment survives the trip to a DynamoDB item and back, whichever decoder reads it."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from halum_payments.models import Payment, PaymentMethod, PaymentOut, PaymentPage, PaymentStatus
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
def test_a_list_row_read_from_the_item_shows_the_payment_as_the_detail_does(payment: Payment) -> None:
    row = api_row(to_item(encode(payment)))
    detail = PaymentOut.of(payment).model_dump_json()
    assert PaymentOut.model_validate(row).model_dump_json() == detail
    page = PaymentPage.of(1, None, None, [row])
    assert page.results[0].model_dump_json() == detail


def test_a_null_transaction_id_and_a_missing_currency_read_as_none_and_usd() -> None:
    payment = Payment(1, 1, 1, Decimal("1598.00"), "usd", PaymentMethod.COD, PaymentStatus.PENDING, None, NOW, NOW)
    item = to_item(encode(payment))
    del item["currency"]
    item["transaction_id"] = {"NULL": True}
    assert decode_item(item) == payment
