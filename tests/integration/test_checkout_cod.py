"""POST /orders/api/create-cod/ through the real handler: the cash-on-delivery checkout answers 201
with the spec's payment JSON, writes the same single transaction as the Stripe checkout (order
confirmed, payment COD pending), refuses exactly what checkout refuses (writing nothing), and
never talks to Stripe."""

from __future__ import annotations

import re
import time
from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError
from support import make_token
from support.checkout import (
    ADDRESS_1,
    CART_1_TOTAL,
    COD,
    LABELS,
    PANGAS,
    PRAWN,
    RICE,
    RUI,
    Shop,
    hook,
    post,
)
from support.dynamo_calls import recorded_calls
from support.payment_data import ISO_Z
from support.webhooks import captured_output

STOCK = {1: 100, 2: 50, 3: 3, 4: 200, 5: 40}


def test_cod_checkout_answers_201_with_the_confirmed_order_and_its_payment(shop):
    with recorded_calls(shop.client) as operations:
        reply = shop.cash(1, {"shipping_address": 1})

    assert reply.status == 201, reply
    payment = shop.store.payment(4)
    assert reply.json == {
        "order_id": 4,
        "status": "confirmed",
        "payment_method": "COD",
        "payment": {
            "id": 4, "order": 4, "user": 1, "amount": "2023.50", "method": "COD", "status": "pending",
            "transaction_id": None, "created_at": payment.created_at, "updated_at": payment.updated_at,
        },
    }  # fmt: skip
    assert reply.json["payment"]["created_at"] == reply.json["payment"]["updated_at"]
    assert re.match(ISO_Z, reply.json["payment"]["created_at"])
    # The same payment JSON the read endpoints serve, field for field.
    detail = shop.detail(1, 4)
    assert detail.status == 200 and detail.json == reply.json["payment"]
    listed = shop.listed(1)
    assert listed["count"] == 3 and listed["results"][-1] == reply.json["payment"]

    order = shop.store.order(4)
    assert (order.user, order.status, order.shipping_address, order.total_price) == (
        1, "confirmed", 1, CART_1_TOTAL
    )  # fmt: skip
    assert [(i.variant, i.quantity, i.price) for i in order.items] == [
        (RUI, 2, Decimal("799.00")), (RICE, 1, Decimal("425.50"))
    ]  # fmt: skip
    assert order.shipping == ADDRESS_1
    assert order.payments == {4: ("COD", "pending")}
    assert (payment.method, payment.status, payment.amount) == ("COD", "pending", CART_1_TOTAL)
    assert payment.transaction_id is None
    assert payment.checkout_session_id is None
    assert shop.store.stocks() == {**STOCK, RUI: 98, RICE: 199}
    assert shop.store.cart(1) == {}
    assert shop.store.cart(2) == {PRAWN: 1}
    assert [(a["to"], a["reason"]) for a in shop.store.audit(4)] == [("pending", "created")]
    counts = shop.store.counts(1)
    assert (counts["all"], counts["status#pending"], counts["method#COD"], counts["status#pending#method#COD"]) == (
        3, 2, 2, 2
    )  # fmt: skip
    # Two reads and one transaction; this environment's first checkout also reserved its blocks of
    # order and payment ids (an UpdateItem each, outside the transaction).
    assert operations == ["BatchGetItem", "BatchGetItem", "UpdateItem", "UpdateItem", "TransactWriteItems"]
    assert shop.sandbox.requests == []


def test_cod_needs_no_payment_gateway(shop):
    cod = shop.cod_function(STRIPE_SECRET_KEY="", STRIPE_API_BASE="")
    reply = shop.cash(1, {"shipping_address": 1}, module=cod)
    assert reply.status == 201, reply
    assert reply.json["payment"]["method"] == "COD"


def refused(shop: Shop, user: int | None, body: Any, status: int, headers: dict[str, str] | None = None) -> str:
    before = shop.store.snapshot()
    reply = post(shop.cod, COD, user, body, headers=headers)
    assert reply.status == status, reply
    assert shop.store.snapshot() == before, "a refused checkout wrote something"
    assert shop.sandbox.requests == []
    return reply.json["detail"]


REFUSALS = [
    # (case, cart items (None: leave it), body, status, words the answer must contain)
    ("another user's address", None, {"shipping_address": 2}, 400, ["2", "address"]),
    ("no such address", None, {"shipping_address": 999}, 400, ["999", "address"]),
    ("no address", None, {}, 400, ["shipping_address"]),
    ("paying an order is not COD's", None, {"order": 1}, 400, []),
    ("address as a string", None, {"shipping_address": "1"}, 400, []),
    ("both fields", None, {"shipping_address": 1, "order": 1}, 400, []),
    ("not json", None, "{oops", 400, ["JSON"]),
    ("empty cart", [], {"shipping_address": 1}, 400, ["empty"]),
    ("inactive product", [{"variant": PANGAS, "quantity": 1}], {"shipping_address": 1}, 400,
     [LABELS[PANGAS], "not available"]),
    # A quantity of 0 or less breaks the cart's contract (issue 20): the customer updates the cart.
    ("zero quantity", [{"variant": RUI, "quantity": 0}], {"shipping_address": 1}, 409, ["update your cart"]),
    ("negative quantity", [{"variant": RUI, "quantity": -1}], {"shipping_address": 1}, 409, ["update your cart"]),
    ("more than in stock", [{"variant": PRAWN, "quantity": 4}], {"shipping_address": 1}, 409,
     [LABELS[PRAWN], "3 available"]),
    ("address beyond any id", None, {"shipping_address": 10**40}, 400, []),
]  # fmt: skip


def test_cod_refuses_what_checkout_refuses_and_writes_nothing(shop, subtests):
    for name, items, body, status, words in REFUSALS:
        with subtests.test(name):
            if items is not None:
                shop.store.set_cart(1, items)
            detail = refused(shop, 1, body, status)
            for word in words:
                assert word in detail
    with subtests.test("no token"):
        refused(shop, None, {"shipping_address": 1}, 401)
    with subtests.test("no token and a bad body"):
        refused(shop, None, "{oops", 401)
    with subtests.test("an expired token"):
        refused(shop, None, {"shipping_address": 1}, 401, headers={"authorization": f"Bearer {make_token(1, exp=1)}"})


def test_a_stock_race_lost_inside_the_transaction_is_a_409_and_writes_nothing(shop):
    """Stock read as sufficient, then taken by someone else before the transaction: refused cleanly."""
    shop.store.set_cart(1, [{"variant": PRAWN, "quantity": 2}])

    def someone_buys_prawns(**_: Any) -> None:
        shop.store.update_variant(PRAWN, stock=1)

    before = shop.store.snapshot()
    with hook(shop.client, "before-call.dynamodb.TransactWriteItems", someone_buys_prawns):
        reply = shop.cash(1, {"shipping_address": 1})
    assert reply.status == 409, reply
    assert LABELS[PRAWN] in reply.json["detail"] and "1 available" in reply.json["detail"]
    after = shop.store.snapshot()
    assert {k: v for k, v in after.items() if k != "ProductVariantsTable"} == {
        k: v for k, v in before.items() if k != "ProductVariantsTable"
    }
    assert shop.store.stock(PRAWN) == 1  # only the other buyer's change


def test_the_same_idempotency_key_replays_the_201_and_makes_one_order(shop, capsys, caplog):
    with captured_output(capsys, caplog) as output:
        first = shop.cash(1, {"shipping_address": 1}, key="cod-click")
        assert first.status == 201, first
        after_first = shop.store.snapshot()
        assert output.metrics()["DuplicateCheckouts"] == 0
        again = shop.cash(1, {"shipping_address": 1}, key="cod-click")
        assert again.status == 201, again
        assert again.json == first.json
        assert shop.store.snapshot() == after_first
        assert output.metrics()["DuplicateCheckouts"] == 1
    other = shop.cash(1, {"shipping_address": 999}, key="cod-click")
    assert other.status == 422, other


def test_an_idempotency_key_names_its_checkout_for_24_hours_even_while_dynamodb_keeps_it_longer(shop):
    """docs/api.md: a key lasts 24 h. DynamoDB's TTL deletes an expired item within days, and reads
    see it until then: a key past its 24 hours must place a new checkout, not replay the old one."""
    first = shop.cash(1, {"shipping_address": 1}, key="cod-next-day")
    assert first.status == 201, first
    table = shop.tables["IdempotencyTable"]
    (claim,) = [i for i in shop.client.scan(TableName=table)["Items"] if i["id"]["S"].startswith("checkout#1#")]
    expiration = int(claim["expiration"]["N"])
    assert 24 * 3600 - 60 <= expiration - time.time() <= 24 * 3600  # what DynamoDB's TTL reads

    def age_claim(seconds_left: int) -> None:
        shop.client.update_item(
            TableName=table,
            Key={"id": claim["id"]},
            UpdateExpression="SET expiration = :e",
            ExpressionAttributeValues={":e": {"N": str(int(time.time()) + seconds_left)}},
        )

    shop.store.set_cart(1, [{"variant": RUI, "quantity": 1}])
    age_claim(60)  # a minute of its day left: still the first checkout's
    assert shop.cash(1, {"shipping_address": 1}, key="cod-next-day").json == first.json
    age_claim(-1)  # expired, not yet deleted by DynamoDB
    later = shop.cash(1, {"shipping_address": 1}, key="cod-next-day")
    assert later.status == 201, later
    assert later.json["order_id"] != first.json["order_id"]
    assert shop.cash(1, {"shipping_address": 1}, key="cod-next-day").json == later.json  # the key is the new one's


def lose_answers(shop: Shop, count: int):
    """The next `count` TransactWriteItems calls are carried out, but their answers are lost (a
    timeout after DynamoDB committed): the caller sees an error."""
    lost: list[int] = []

    def lose(**_: Any) -> None:
        if len(lost) < count:
            lost.append(1)
            error = {"Error": {"Code": "InternalServerError", "Message": "answer lost"}}
            raise ClientError(error, "TransactWriteItems")

    return hook(shop.client, "after-call.dynamodb.TransactWriteItems", lose)


def test_a_committed_checkout_whose_answer_is_lost_answers_201_for_its_order(shop):
    """The transaction committed, its answer was lost, the retry finds its own writes: that is the
    order placed, answered 201, never "your cart is empty" and never a second order."""
    with lose_answers(shop, 1):
        reply = shop.cash(1, {"shipping_address": 1}, key="cod-lost")

    assert reply.status == 201, reply
    assert reply.json["order_id"] == 4
    assert set(shop.store.orders()) == {1, 2, 3, 4}
    assert shop.store.stock(RUI) == 98


def test_a_keyed_checkout_answered_as_a_failure_after_it_committed_answers_201_on_its_retry(shop):
    """Every answer lost (DynamoDB throttled past all retries after the commit): the caller gets a
    retryable 503, and the retry with the same key gets the placed order, not a 400."""
    with lose_answers(shop, 4):
        failed = shop.cash(1, {"shipping_address": 1}, key="cod-throttled")
    assert failed.status == 503, failed

    again = shop.cash(1, {"shipping_address": 1}, key="cod-throttled")

    assert again.status == 201, again
    assert again.json["order_id"] == 4 and again.json["payment"]["status"] == "pending"
    assert set(shop.store.orders()) == {1, 2, 3, 4}
    assert shop.store.stock(RUI) == 98 and shop.store.cart(1) == {}
