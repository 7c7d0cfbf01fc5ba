"""The session-id write backs off exponentially while another transaction holds the payment: each
wait up to twice the last (jittered), so a webhook settling that payment gets room to finish."""

from __future__ import annotations

from itertools import pairwise
from types import SimpleNamespace
from typing import Any

from botocore.exceptions import ClientError

from halum_payments.repositories import checkout_store


class HeldPayment:
    """A DynamoDB client whose payment is in another transaction on every attempt."""

    def update_item(self, **_: Any) -> None:
        raise ClientError({"Error": {"Code": "TransactionConflictException", "Message": "held"}}, "UpdateItem")


def test_the_session_write_waits_twice_as_long_after_each_conflict(monkeypatch):
    waits: list[float] = []
    monkeypatch.setattr(checkout_store.time, "sleep", waits.append)
    monkeypatch.setattr(checkout_store.random, "uniform", lambda low, high: high)  # the jitter at its top
    store = checkout_store.DynamoCheckoutStore(SimpleNamespace(payments="p", counters="c"), HeldPayment())

    answer = store.attach_session(SimpleNamespace(user=1, id=2), "cs_test_1", "https://checkout.stripe.com/c/1")

    assert answer == "busy"
    assert len(waits) >= 3
    assert all(later == 2 * earlier for earlier, later in pairwise(waits)), waits
