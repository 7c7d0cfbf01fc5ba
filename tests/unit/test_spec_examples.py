"""The spec's examples are what the demo seed holds.

The tests, events/ and `make run` take the spec's two example payments from local/seed.json (their one
source). Here they are written as payments-api.md writes them ("List Payments", "Retrieve Payment
Detail"), so a change to the seed that leaves the spec's examples fails here, not in every test that
reads them.
"""

from __future__ import annotations

import json

from local.defaults import DEFAULT_SEED

# payments-api.md, "List Payments", word for word.
SPEC_LIST_EXAMPLE = {
    "count": 2,
    "next": None,
    "previous": None,
    "results": [
        {
            "id": 1,
            "order": 1,
            "user": 1,
            "amount": "1598.00",
            "method": "COD",
            "status": "pending",
            "transaction_id": None,
            "created_at": "2023-01-15T14:30:00Z",
            "updated_at": "2023-01-15T14:30:00Z",
        },
        {
            "id": 2,
            "order": 2,
            "user": 1,
            "amount": "899.00",
            "method": "ONLINE",
            "status": "completed",
            "transaction_id": "txn_123456789",
            "created_at": "2023-01-20T10:15:00Z",
            "updated_at": "2023-01-20T10:20:00Z",
        },
    ],
}
# One departure, on purpose: the spec's gateway example confirms order 1 under txn_123456789, and one
# gateway transaction settles at most one payment, so the demo's payment 2 carries another id.
DEMO_TRANSACTION_OF_PAYMENT_2 = "txn_987654321"


def seed() -> dict:
    return json.loads(DEFAULT_SEED.read_text())


def test_the_demo_users_payments_are_the_spec_list_example():
    users_payments = [payment for payment in seed()["payments"] if payment["user"] == 1]
    expected = [dict(payment) for payment in SPEC_LIST_EXAMPLE["results"]]
    expected[1]["transaction_id"] = DEMO_TRANSACTION_OF_PAYMENT_2
    assert users_payments == expected
    assert len(users_payments) == SPEC_LIST_EXAMPLE["count"]


def test_the_spec_detail_example_is_payment_1():
    payment_1 = next(payment for payment in seed()["payments"] if payment["id"] == 1)
    assert payment_1 == SPEC_LIST_EXAMPLE["results"][0]


def test_each_example_payment_has_its_order_for_the_amount():
    data = seed()
    orders = {order["id"]: order for order in data["orders"]}
    for example in SPEC_LIST_EXAMPLE["results"]:
        order = orders[example["order"]]
        assert (order["user"], order["total_price"]) == (example["user"], example["amount"])
