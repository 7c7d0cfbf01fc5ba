"""POST /orders/api/create-stripe-order/ through the real handler, with the Stripe sandbox as Stripe:
what the caller gets, what stripe-python sends, what is written, every refusal (which writes
nothing), Stripe outages (which give everything back), paying an existing order, and
Idempotency-Key replays."""

from __future__ import annotations

import logging
import time
from decimal import Decimal
from typing import Any

import pytest
from botocore.exceptions import ClientError
from support import auth, call, make_token
from support.checkout import (
    ADDRESS_1,
    CANCEL_URL,
    CART_1_TOTAL,
    CHECKOUT,
    HILSA,
    LABELS,
    NOT_CONFIGURED,
    PANGAS,
    PRAWN,
    RICE,
    RUI,
    STRIPE_KEY,
    SUCCESS_URL,
    Shop,
    hook,
)
from support.dynamo_calls import recorded_calls
from support.webhooks import captured_output

CART_1 = {RUI: 2, RICE: 1}
STOCK = {1: 100, 2: 50, 3: 3, 4: 200, 5: 40}


def line(name: str, unit_amount: int, quantity: int, currency: str = "usd") -> dict[str, Any]:
    """One line item exactly as Stripe receives it (form values are strings)."""
    return {
        "price_data": {"currency": currency, "product_data": {"name": name}, "unit_amount": str(unit_amount)},
        "quantity": str(quantity),
    }


# ====================================================================== the happy path


def test_cart_checkout_answers_the_spec_shape_and_writes_one_pending_order(shop):
    started = int(time.time())
    reply = shop.checkout(1, {"shipping_address": 1})

    assert reply.status == 200, reply
    (session,) = shop.sandbox.sessions.values()
    assert reply.json == {"id": session["id"], "url": session["url"]}  # exactly the spec's two fields
    assert session["id"].startswith("cs_test_") and session["status"] == "open"

    order = shop.store.order(4)
    assert (order.user, order.status, order.currency, order.shipping_address) == (1, "pending", "usd", 1)
    assert order.total_price == CART_1_TOTAL  # 2 x 799.00 + 425.50, exact
    assert [(i.variant, i.quantity, i.price, i.sku, i.name) for i in order.items] == [
        (RUI, 2, Decimal("799.00"), "RUI-1KG", "Rui Fish 1kg"),
        (RICE, 1, Decimal("425.50"), "RICE-5KG", "Miniket Rice 5kg"),
    ]
    assert order.shipping == ADDRESS_1  # a snapshot: later edits of the address do not change the order
    assert order.payments == {4: ("stripe", "pending")}

    payment = shop.store.payment(4)
    assert (payment.order, payment.user, payment.method, payment.status) == (4, 1, "stripe", "pending")
    assert payment.amount == CART_1_TOTAL
    assert payment.transaction_id is None
    assert (payment.checkout_session_id, payment.checkout_url) == (session["id"], session["url"])

    assert shop.store.stocks() == {**STOCK, RUI: 98, RICE: 199}
    assert shop.store.cart(1) == {}
    assert shop.store.cart(2) == {PRAWN: 1}  # nobody else's cart is touched

    (audit,) = shop.store.audit(4)
    assert (audit["order"], audit.get("from"), audit["to"], audit["source"], audit["reason"]) == (
        4, None, "pending", "checkout", "created"
    )  # fmt: skip

    listed = shop.listed(1)
    assert listed["count"] == 3
    assert listed["results"][-1] == {
        "id": 4, "order": 4, "user": 1, "amount": "2023.50", "method": "stripe", "status": "pending",
        "transaction_id": None, "created_at": payment.created_at, "updated_at": payment.updated_at,
    }  # fmt: skip
    assert shop.listed(2)["count"] == 1
    counts = shop.store.counts(1)
    assert counts["all"] == 3 and counts["status#pending"] == 2
    assert counts["method#stripe"] == counts["status#pending#method#stripe"] == 1
    assert started - 5 <= int(session["created"]) <= int(time.time()) + 5


def test_stripe_receives_exactly_the_checkout_form(shop):
    reply = shop.checkout(1, {"shipping_address": 1})
    assert reply.status == 200, reply

    (request,) = shop.sandbox.requests
    payment = shop.store.payment(4)
    # checkout_key names this attempt (its idempotency key): it proves a session is this payment's.
    metadata = {"order_id": "4", "payment_id": "4", "user_id": "1", "checkout_key": payment.checkout_key}
    assert request.params == {
        "mode": "payment",
        "line_items": [line(LABELS[RUI], 79900, 2), line(LABELS[RICE], 42550, 1)],  # 425.50 -> 42550, no float
        "metadata": metadata,
        "payment_intent_data": {"metadata": metadata},
        "client_reference_id": "4",
        "success_url": SUCCESS_URL,  # the {CHECKOUT_SESSION_ID} placeholder is Stripe's to fill in
        "cancel_url": CANCEL_URL,
        "expires_at": str(payment.checkout_expires_at),
    }
    assert request.header("Authorization") == f"Bearer {STRIPE_KEY}"
    assert request.header("Idempotency-Key") == payment.checkout_key
    session = shop.sandbox.session(reply.json["id"])
    assert session["amount_total"] == 202350


def test_a_zero_decimal_currency_is_sent_in_whole_units(shop):
    data = {
        "product_variants": [
            {"id": 11, "sku": "TUNA", "name": "Tuna", "price": "1500.00", "stock": 5},
            {"id": 12, "sku": "NORI", "name": "Nori", "price": "320", "stock": 5},
        ],
        "shipping_addresses": [{**ADDRESS_1, "id": 9, "user": 9}],
        "carts": [{"user": 9, "items": [{"variant": 11, "quantity": 3}, {"variant": 12, "quantity": 1}]}],
    }
    shop.seed(data)
    stripe = shop.stripe_function(CURRENCY="JPY")

    reply = shop.checkout(9, {"shipping_address": 9}, module=stripe)

    assert reply.status == 200, reply
    (request,) = shop.sandbox.requests
    assert request.params["line_items"] == [line("Tuna (TUNA)", 1500, 3, "jpy"), line("Nori (NORI)", 320, 1, "jpy")]
    assert shop.sandbox.session(reply.json["id"])["amount_total"] == 4820
    order = shop.store.order(4)
    assert (order.currency, order.total_price) == ("jpy", Decimal("4820"))
    assert shop.store.payment(4).amount == Decimal("4820")


def test_a_price_a_zero_decimal_currency_cannot_charge_is_refused_and_nothing_is_written(shop):
    """425.50 JPY does not exist: rounding would charge a different amount than the order's total."""
    shop.store.set_cart(1, [{"variant": RICE, "quantity": 1}])
    stripe = shop.stripe_function(CURRENCY="jpy")
    before = shop.store.snapshot()

    reply = shop.checkout(1, {"shipping_address": 1}, module=stripe)

    assert reply.status == 422, reply
    assert LABELS[RICE] in reply.json["detail"]
    assert shop.store.snapshot() == before
    assert shop.sandbox.requests == []


@pytest.mark.parametrize("minutes", ["30", "1440"])
def test_the_session_expiry_is_inside_stripes_window(shop, minutes):
    stripe = shop.stripe_function(CHECKOUT_EXPIRES_MINUTES=minutes)
    reply = shop.checkout(1, {"shipping_address": 1}, module=stripe)
    assert reply.status == 200, reply
    session = shop.sandbox.session(reply.json["id"])
    lifetime = session["expires_at"] - session["created"]
    assert 30 * 60 <= lifetime <= 24 * 3600  # Stripe's own bounds (the sandbox enforces them too)
    # What was configured, or as close to Stripe's 24 h maximum as its window allows.
    assert lifetime >= min(int(minutes) * 60, 24 * 3600 - 5 * 60)
    assert shop.store.payment(4).checkout_expires_at == session["expires_at"]


def test_stripe_retries_carry_the_attempts_idempotency_key_and_each_attempt_has_its_own(shop):
    shop.sandbox.fail_next(2, "500")  # absorbed by stripe-python's own retries
    first = shop.checkout(1, {"shipping_address": 1})
    assert first.status == 200, first
    shop.store.set_cart(1, [{"variant": RUI, "quantity": 1}])
    second = shop.checkout(1, {"shipping_address": 1})
    assert second.status == 200, second

    creates = shop.creates()
    assert [r.status for r in creates] == [500, 500, 200, 200]
    keys = [r.header("Idempotency-Key") for r in creates]
    assert keys[0] and keys[0] == keys[1] == keys[2]  # one attempt, one key, across retries
    assert keys[3] and keys[3] != keys[0]  # another checkout attempt, another key
    assert len(shop.sandbox.sessions) == 2
    assert first.json["id"] != second.json["id"]


def test_two_deployments_sharing_a_stripe_account_never_reuse_an_idempotency_key(shop):
    """Staging and dev share Stripe test keys, and both number their payments from the same
    sequence: payment 4 here is not payment 4 there, and Stripe refuses a key reused with other
    parameters for 24 hours."""
    here = shop.checkout(1, {"shipping_address": 1})
    assert here.status == 200, here
    there = shop.another_stack()
    there.store.set_cart(1, [{"variant": RUI, "quantity": 1}])

    reply = there.checkout(1, {"shipping_address": 1})

    assert reply.status == 200, reply
    assert reply.json["id"] != here.json["id"]
    assert shop.sandbox.session(reply.json["id"])["amount_total"] == 79900
    keys = [r.header("Idempotency-Key") for r in shop.creates()]
    assert len(keys) == len(set(keys)) == 2


def test_a_price_change_between_reading_and_writing_is_charged_at_the_new_price(shop):
    """The order carries the price at the moment of the transaction, never a stale one."""
    changed: list[bool] = []

    def reprice(**_: Any) -> None:
        if not changed:
            changed.append(True)
            shop.store.update_variant(RUI, price=Decimal("810.25"))

    with hook(shop.client, "before-call.dynamodb.TransactWriteItems", reprice):
        reply = shop.checkout(1, {"shipping_address": 1})

    assert reply.status == 200, reply
    order = shop.store.order(4)
    assert [(i.variant, i.price) for i in order.items] == [(RUI, Decimal("810.25")), (RICE, Decimal("425.50"))]
    assert order.total_price == Decimal("2046.00")
    assert shop.sandbox.requests[0].params["line_items"][0] == line(LABELS[RUI], 81025, 2)
    assert len(shop.store.orders()) == 4  # the refused first attempt left nothing behind
    assert shop.store.stocks()[RUI] == 98


def test_a_product_deactivated_between_reading_and_writing_is_refused(shop):
    def deactivate(**_: Any) -> None:
        shop.store.update_variant(RICE, is_active=False)

    before_stock = shop.store.stocks()
    with hook(shop.client, "before-call.dynamodb.TransactWriteItems", deactivate):
        reply = shop.checkout(1, {"shipping_address": 1})

    assert reply.status == 400, reply
    assert LABELS[RICE] in reply.json["detail"]
    assert shop.store.stocks() == before_stock
    assert shop.store.cart(1) == CART_1
    assert len(shop.store.orders()) == 3
    assert shop.sandbox.requests == []


def test_an_item_added_to_the_cart_during_checkout_is_ordered_not_lost(shop):
    """The customer adds Hilsa in another tab between checkout's read and its write: the cart
    emptied must be the cart ordered, so the checkout is re-planned with Hilsa in it."""
    added: list[bool] = []

    def add_hilsa(**_: Any) -> None:
        if not added:
            added.append(True)
            shop.store.set_cart(
                1,
                [{"variant": RUI, "quantity": 2}, {"variant": RICE, "quantity": 1}, {"variant": HILSA, "quantity": 1}],
            )

    with hook(shop.client, "before-call.dynamodb.TransactWriteItems", add_hilsa):
        reply = shop.checkout(1, {"shipping_address": 1})

    assert reply.status == 200, reply
    order = shop.store.order(4)
    assert {i.variant: i.quantity for i in order.items} == {RUI: 2, RICE: 1, HILSA: 1}
    assert order.total_price == CART_1_TOTAL + Decimal("899.00")
    assert shop.store.cart(1) == {}
    assert shop.store.stocks()[HILSA] == 49
    assert shop.sandbox.session(reply.json["id"])["amount_total"] == 292250


def test_a_cart_checkout_takes_four_dynamodb_round_trips_and_no_id_is_contended(shop):
    """Cart and address, the variants, the transaction, the session. The first checkout of an
    execution environment also reserves its blocks of ids (one UpdateItem per sequence, every ten
    checkouts): no transaction writes a shared sequence item."""
    with recorded_calls(shop.client) as first:
        assert shop.checkout(1, {"shipping_address": 1}).status == 200
    shop.store.set_cart(1, [{"variant": RUI, "quantity": 1}])
    with recorded_calls(shop.client) as second:
        reply = shop.checkout(1, {"shipping_address": 1})

    assert reply.status == 200, reply
    assert first == ["BatchGetItem", "BatchGetItem", "UpdateItem", "UpdateItem", "TransactWriteItems", "UpdateItem"]
    assert second == ["BatchGetItem", "BatchGetItem", "TransactWriteItems", "UpdateItem"]
    placed = shop.store.order(5)
    assert placed.payments == {5: ("stripe", "pending")}


# ====================================================================== refusals: nothing is written


def refused(
    shop: Shop, user: int | None, body: Any, status: int, *, module: Any = None, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    before = shop.store.snapshot()
    reply = shop.checkout(user, body, module=module, headers=headers)
    assert reply.status == status, reply
    assert shop.store.snapshot() == before, "a refused checkout wrote something"
    assert shop.creates() == [], "a refused checkout reached Stripe"
    return reply.json


ADDRESS_REFUSALS = [
    ("another user's address", {"shipping_address": 2}, "2"),
    ("no such address", {"shipping_address": 999}, "999"),
    ("no address at all", {}, "shipping_address"),
]


def test_an_address_that_is_not_the_callers_is_a_400_naming_it(shop, subtests):
    for name, body, named in ADDRESS_REFUSALS:
        with subtests.test(name):
            detail = refused(shop, 1, body, 400)["detail"]
            assert named in detail and "address" in detail.lower()


@pytest.mark.parametrize("address", [2, 999], ids=["another user's", "missing"])
@pytest.mark.parametrize("function", ["stripe", "cod"])
def test_an_address_that_is_not_the_callers_is_keyed_by_shipping_address_as_drf_keys_it(shop, address, function):
    """A form shows the message beside its address field: DRF keys a related field's refusal by the field's
    name, in PrimaryKeyRelatedField's words, the same for another user's address as for a missing one."""
    send = shop.checkout if function == "stripe" else shop.cash
    before = shop.store.snapshot()
    reply = send(1, {"shipping_address": address})
    assert reply.status == 400, reply
    message = f'Invalid pk "{address}" - object does not exist.'
    assert reply.json == {"detail": f"shipping_address: {message}", "shipping_address": [message]}
    assert shop.store.snapshot() == before


CART_REFUSALS = [
    # (case, cart items or None for no cart, status, words the answer must contain)
    ("emptied cart", [], 400, ["empty"]),
    ("no cart at all", None, 400, ["empty"]),
    ("inactive product", [{"variant": RUI, "quantity": 1}, {"variant": PANGAS, "quantity": 1}], 400,
     [LABELS[PANGAS], "not available"]),
    ("product that no longer exists", [{"variant": RUI, "quantity": 1}, {"variant": 77, "quantity": 1}], 400,
     ["77", "not available"]),
    # A quantity that is not a whole number of at least 1 breaks the cart's contract (issue 20).
    ("zero quantity", [{"variant": RICE, "quantity": 1}, {"variant": RUI, "quantity": 0}], 409, ["update your cart"]),
    ("negative quantity", [{"variant": RUI, "quantity": -2}], 409, ["update your cart"]),
    ("fractional quantity", [{"variant": RUI, "quantity": Decimal("1.5")}], 409, ["update your cart"]),
    ("a negative line beside a positive one", [{"variant": RUI, "quantity": 3}, {"variant": RUI, "quantity": -1}],
     409, ["update your cart"]),
    ("more than in stock", [{"variant": PRAWN, "quantity": 4}], 409, [LABELS[PRAWN], "3 available"]),
    ("more than in stock over two lines", [{"variant": PRAWN, "quantity": 2}, {"variant": PRAWN, "quantity": 2}],
     409, [LABELS[PRAWN], "3 available"]),
]  # fmt: skip


def test_a_cart_that_cannot_be_checked_out_is_refused_naming_the_problem(shop, subtests):
    for name, items, status, words in CART_REFUSALS:
        with subtests.test(name):
            if items is None:
                shop.client.delete_item(TableName=shop.tables["CartsTable"], Key={"user": {"N": "1"}})
            else:
                shop.store.set_cart(1, items)
            detail = refused(shop, 1, {"shipping_address": 1}, status)["detail"]
            for word in words:
                assert word in detail


BAD_BODIES = [
    ("not json", "{shipping_address: 1"),
    ("empty body", ""),
    ("a list", [1]),
    ("a bare number", 1),
    ("null", "null"),
    ("address as a string", {"shipping_address": "1"}),
    ("address as a float", {"shipping_address": 1.0}),
    ("address as a boolean", {"shipping_address": True}),
    ("address zero", {"shipping_address": 0}),
    ("address negative", {"shipping_address": -1}),
    ("address null", {"shipping_address": None}),
    ("address as an object", {"shipping_address": {"id": 1}}),
    ("both address and order", {"shipping_address": 1, "order": 1}),
    ("neither", {}),
    ("order as a string", {"order": "1"}),
    ("an unknown field", {"shipping_address": 1, "coupon": "FREE"}),
    # Beyond the 38 digits a DynamoDB number holds: no such address or order can exist.
    ("address beyond any id", {"shipping_address": 10**40}),
    ("order beyond any id", {"order": 10**40}),
]


EXACTLY_ONE = "Send exactly one of 'shipping_address' (check out the cart) or 'order' (pay an order)."


@pytest.mark.parametrize("body", [{}, {"shipping_address": 1, "order": 1}], ids=["neither", "both"])
def test_neither_or_both_of_address_and_order_is_drfs_non_field_error(shop, body):
    assert refused(shop, 1, body, 400) == {"detail": EXACTLY_ONE, "non_field_errors": [EXACTLY_ONE]}


def test_a_malformed_body_is_a_400_never_a_422(shop, subtests):
    for name, body in BAD_BODIES:
        with subtests.test(name):
            refused(shop, 1, body, 400)
    with subtests.test("an overlong Idempotency-Key"):
        refused(shop, 1, {"shipping_address": 1}, 400, headers={"idempotency-key": "k" * 256})


# ---------------------------------------------------------------------- 401, then 503, then 400

PRECEDENCE = [
    # (case, token, Stripe configured, body, status)
    ("no token, no gateway", None, False, {"shipping_address": 1}, 401),
    ("no token, no gateway, bad body", None, False, "{not json", 401),
    ("bad token, no gateway, bad body", "garbage", False, {"shipping_address": "x"}, 401),
    ("no gateway, bad body", "valid", False, "{not json", 503),
    ("no gateway, both fields", "valid", False, {"shipping_address": 1, "order": 1}, 503),
    ("no gateway, good body", "valid", False, {"shipping_address": 1}, 503),
    ("no gateway, foreign address", "valid", False, {"shipping_address": 2}, 503),
    ("no gateway, paying an order", "valid", False, {"order": 1}, 503),
    ("no token, gateway", None, True, {"shipping_address": 1}, 401),
    ("bad token, gateway, bad body", "garbage", True, "[]", 401),
    ("gateway, bad body", "valid", True, "{not json", 400),
]


def test_who_you_are_comes_before_the_gateway_before_the_request(shop, subtests):
    functions = {True: shop.stripe_function(), False: shop.stripe_function(STRIPE_SECRET_KEY="")}
    for name, token, configured, body, status in PRECEDENCE:
        with subtests.test(name):
            headers = {}
            if token:
                headers["authorization"] = f"Bearer {make_token(1) if token == 'valid' else token}"
            detail = refused(shop, None, body, status, module=functions[configured], headers=headers)
            if status == 503:
                assert detail == NOT_CONFIGURED


# ====================================================================== Stripe outages give everything back


def assert_given_back(
    shop: Shop, payment_id: int, order_id: int, *, before_stock: dict[int, int], cart: dict[int, int]
) -> None:
    order, payment = shop.store.order(order_id), shop.store.payment(payment_id)
    assert order.status == "cancelled"
    assert order.stock_reserved is False
    assert order.payments == {payment_id: ("stripe", "failed")}
    assert (payment.status, payment.method, payment.amount) == ("failed", "stripe", order.total_price)
    assert payment.transaction_id is None
    assert shop.store.stocks() == before_stock
    assert shop.store.cart(1) == cart
    assert [(a.get("from"), a["to"], a["reason"]) for a in shop.store.audit(payment_id)] == [
        (None, "pending", "created"),
        ("pending", "failed", "stripe_unavailable"),
    ]
    listed = {row["id"]: row for row in shop.listed(1)["results"]}
    assert listed[payment_id]["status"] == "failed"
    counts = shop.store.counts(1)
    assert (counts["all"], counts["status#failed"], counts["status#pending"]) == (3, 1, 1)  # COD payment 1 pending
    assert "status#pending#method#stripe" not in counts


OUTAGES = [
    # (how Stripe fails, the create requests it sees: stripe-python's attempts, then the give-back's
    # look under the same key for a session a failed call may have made after all)
    pytest.param(lambda box: box.fail_next(6, "500"), 6, id="500 beyond the retries"),
    pytest.param(lambda box: box.fail_next(2, "429"), 2, id="rate limited"),
    pytest.param(lambda box: box.fail_next(1, "down"), 0, id="down"),
]


@pytest.mark.parametrize(("break_stripe", "attempts"), OUTAGES)
def test_a_stripe_failure_is_a_502_and_gives_stock_and_cart_back(shop, break_stripe, attempts):
    """Stripe still failing when the checkout gives back: the answer says the cart is as it was,
    and claims nothing about charges it cannot check."""
    before_stock = shop.store.stocks()
    break_stripe(shop.sandbox)

    reply = shop.checkout(1, {"shipping_address": 1})

    assert reply.status == 502, reply
    assert reply.json["detail"] == (
        "The payment provider is unavailable: this checkout was cancelled and your cart is as it was. Please retry."
    )
    assert_given_back(shop, 4, 4, before_stock=before_stock, cart=CART_1)
    assert len(shop.creates()) == attempts
    assert shop.sandbox.sessions == {}


def test_once_stripe_answers_again_the_give_back_expires_any_session_and_says_nothing_was_charged(shop):
    before_stock = shop.store.stocks()
    shop.sandbox.fail_next(3, "500")  # stripe-python's three attempts; Stripe answers the give-back's look

    reply = shop.checkout(1, {"shipping_address": 1})

    assert reply.status == 502, reply
    assert reply.json["detail"] == (
        "The payment provider is unavailable: nothing was charged and your cart is as it was. Please retry."
    )
    assert_given_back(shop, 4, 4, before_stock=before_stock, cart=CART_1)
    assert [session["status"] for session in shop.sandbox.sessions.values()] == ["expired"]

    shop.sandbox.recover()
    again = shop.checkout(1, {"shipping_address": 1})
    assert again.status == 200, again
    assert again.json["id"] in shop.sandbox.sessions
    assert shop.store.payment(5).status == "pending"
    assert shop.store.order(5).total_price == CART_1_TOTAL
    assert shop.store.stocks() == {**before_stock, RUI: 98, RICE: 199}
    assert shop.store.cart(1) == {}


TIMEOUTS = [
    # (failures, hold, retries): "timeout" drops the request unanswered; "lost" makes the session,
    # then drops the answer; held past the client's timeout, it is the ambiguous read timeout.
    pytest.param("timeout", 3, 0.0, "2", id="dropped unanswered"),
    pytest.param("lost", 3, 0.0, "2", id="session made, answer lost"),
    pytest.param("lost", 1, 5.0, "0", id="session made, answer past the read timeout"),
]


@pytest.mark.parametrize(("mode", "failures", "hold", "retries"), TIMEOUTS)
def test_a_stripe_timeout_is_a_502_gives_everything_back_and_expires_any_session(shop, mode, failures, hold, retries):
    """A session Stripe may have made for a given-back checkout must not stay payable."""
    stripe = shop.stripe_function(STRIPE_MAX_NETWORK_RETRIES=retries)  # STRIPE_TIMEOUT_SECONDS=1
    before_stock = shop.store.stocks()
    shop.sandbox.fail_next(failures, mode, hold=hold)  # every attempt stripe-python makes

    started = time.monotonic()
    reply = shop.checkout(1, {"shipping_address": 1}, module=stripe)
    elapsed = time.monotonic() - started

    assert reply.status == 502, reply
    assert elapsed < 4.0, f"the function waited {elapsed:.1f}s on Stripe"  # bounded by the client's timeout
    assert_given_back(shop, 4, 4, before_stock=before_stock, cart=CART_1)
    sessions = shop.sandbox.sessions
    assert len(sessions) <= 1  # retries and the expiry reuse one idempotency key: never a second session
    assert all(s["status"] == "expired" and s["metadata"]["payment_id"] == "4" for s in sessions.values()), sessions
    if mode == "lost":
        assert len(sessions) == 1

    shop.sandbox.recover()
    again = shop.checkout(1, {"shipping_address": 1}, module=stripe)
    assert again.status == 200, again
    assert shop.sandbox.session(again.json["id"])["status"] == "open"
    assert shop.sandbox.session(again.json["id"])["metadata"]["payment_id"] == "5"


def test_a_session_paid_before_the_give_back_expires_it_is_alarmed_and_the_answer_says_it_will_be_refunded(shop):
    """Stripe made the session but every answer was lost; the customer paid it (another tab, the
    retried page) before the give-back could expire it. The answer must not claim nothing was
    charged, and the payment is audited for a refund (seed 178 of the simulation found the audit
    write missing from the function's role)."""
    shop.sandbox.fail_next(3, "lost")  # stripe-python's three attempts: one session, no answer
    transactions = 0

    def pay_before_the_give_back(**_: Any) -> None:
        nonlocal transactions
        transactions += 1
        if transactions == 2:  # the first placed the order; the second gives it back
            (session_id,) = shop.sandbox.sessions
            assert shop.sandbox.submit(f"/checkout/{session_id}/pay")[0] == 303

    with hook(shop.client, "before-call.dynamodb.TransactWriteItems", pay_before_the_give_back):
        reply = shop.checkout(1, {"shipping_address": 1})

    assert reply.status == 502, reply
    assert reply.json["detail"] == (
        "The payment provider is unavailable: this checkout was cancelled and its payment will be refunded;"
        " your cart is as it was. Please retry."
    )
    assert shop.store.payment(4).status == "failed"
    assert [row["reason"] for row in shop.store.audit(4)][-1] == "needs_refund"
    assert [session["status"] for session in shop.sandbox.sessions.values()] == ["complete"]


def test_the_cart_comes_back_merged_with_what_was_added_during_the_outage(shop):
    """The customer added Hilsa while Stripe was failing: the restore must neither drop it nor
    overwrite the cart blindly (its first attempt is refused and re-planned)."""
    transactions: list[int] = []

    def customer_adds_hilsa(**_: Any) -> None:
        transactions.append(1)
        if len(transactions) == 2:  # the compensation's first attempt: the cart moved under it
            shop.store.set_cart(1, [{"variant": HILSA, "quantity": 1}])

    before_stock = shop.store.stocks()
    shop.sandbox.fail_next(3, "500")
    with hook(shop.client, "before-call.dynamodb.TransactWriteItems", customer_adds_hilsa):
        reply = shop.checkout(1, {"shipping_address": 1})

    assert reply.status == 502, reply
    assert len(transactions) == 3  # order, refused restore, restore
    assert shop.store.cart(1) == {**CART_1, HILSA: 1}
    assert shop.store.stocks() == before_stock
    assert shop.store.order(4).status == "cancelled"


# ====================================================================== paying an existing order


def test_paying_a_pending_order_opens_one_stripe_payment_for_its_total(shop):
    reply = shop.checkout(1, {"order": 1})

    assert reply.status == 200, reply
    (session,) = shop.sandbox.sessions.values()
    assert reply.json == {"id": session["id"], "url": session["url"]}
    payment = shop.store.payment(4)
    assert (payment.order, payment.user, payment.method, payment.status, payment.amount) == (
        1, 1, "stripe", "pending", Decimal("1598.00")
    )  # fmt: skip
    assert payment.checkout_session_id == session["id"]
    order = shop.store.order(1)
    assert order.status == "pending"
    assert order.payments == {1: ("COD", "pending"), 4: ("stripe", "pending")}
    (request,) = shop.sandbox.requests
    assert request.params["line_items"] == [line(LABELS[RUI], 79900, 2)]  # the order's items, names from the catalog
    metadata = {"order_id": "1", "payment_id": "4", "user_id": "1", "checkout_key": payment.checkout_key}
    assert request.params["metadata"] == metadata
    assert request.params["client_reference_id"] == "1"
    assert session["amount_total"] == 159800
    assert shop.store.stocks() == STOCK  # paying an order reserves nothing new
    assert shop.store.cart(1) == CART_1  # nor touches the cart
    assert shop.listed(1)["count"] == 3


def test_paying_the_same_order_again_reuses_its_open_payment_and_session(shop):
    first = shop.checkout(1, {"order": 1})
    assert first.status == 200, first
    before = shop.store.snapshot()

    again = shop.checkout(1, {"order": 1})

    assert again.status == 200, again
    assert again.json == first.json
    assert shop.store.snapshot() == before  # no second payment, nothing rewritten
    assert len(shop.creates()) == 1
    assert shop.listed(1)["count"] == 3


def test_a_stripe_failure_while_paying_an_order_fails_only_the_new_payment(shop):
    shop.sandbox.fail_next(3, "500")
    reply = shop.checkout(1, {"order": 1})
    assert reply.status == 502, reply
    order = shop.store.order(1)
    assert order.status == "pending"  # the customer can still pay it, cash or card
    assert order.payments == {1: ("COD", "pending"), 4: ("stripe", "failed")}
    assert shop.store.payment(1).status == "pending"
    assert shop.store.stocks() == STOCK

    again = shop.checkout(1, {"order": 1})
    assert again.status == 200, again
    assert shop.store.payment(5).status == "pending"


def seed_orders(shop: Shop) -> None:
    data = {
        "product_variants": [{"id": 21, "sku": "CRAB", "name": "Mud Crab", "price": "300.00", "stock": 5}],
        "shipping_addresses": [{**ADDRESS_1, "id": 21, "user": 1}],
        "orders": [
            {"id": 21, "user": 1, "shipping_address": 21, "status": "cancelled", "total_price": "300.00",
             "items": [{"variant": 21, "quantity": 1, "price": "300.00"}], "created_at": "2024-01-01T00:00:00Z"},
            {"id": 22, "user": 1, "status": "pending", "total_price": "999.00",
             "items": [{"variant": 21, "quantity": 2, "price": "300.00"}], "created_at": "2024-01-01T00:00:00Z"},
            {"id": 23, "user": 1, "status": "pending", "total_price": "300.00",
             "items": [{"variant": 21, "quantity": 1, "price": "300.00"}], "created_at": "2024-01-01T00:00:00Z"},
            {"id": 24, "user": 1, "status": "pending", "total_price": "300.00",
             "items": [{"variant": 21, "quantity": 1, "price": "300.00"}], "created_at": "2024-01-01T00:00:00Z"},
            {"id": 25, "user": 1, "status": "pending", "total_price": "600.50", "currency": "jpy",
             "items": [{"variant": 21, "quantity": 1, "price": "300.25"}, {"variant": 21, "quantity": 1,
                                                                          "price": "300.25"}],
             "created_at": "2024-01-01T00:00:00Z"},
        ],
        "payments": [
            {"id": 23, "order": 23, "user": 1, "amount": "300.00", "method": "COD", "status": "completed",
             "created_at": "2024-01-01T00:00:00Z", "updated_at": "2024-01-01T00:00:00Z"},
        ],
    }  # fmt: skip
    shop.seed(data)


ORDER_REFUSALS = [
    # (case, user, order, status, words the answer must contain)
    ("another user's order", 2, 1, 400, ["1", "not found"]),
    ("another user's order (3)", 1, 3, 400, ["3", "not found"]),
    ("no such order", 1, 999, 400, ["999", "not found"]),
    ("confirmed and paid online", 1, 2, 409, ["2", "completed payment"]),
    ("confirmed, cash still due", 2, 3, 409, ["3", "confirmed"]),
    ("cancelled", 1, 21, 409, ["21", "cancelled"]),
    ("pending but paid in cash already", 1, 23, 409, ["23", "completed payment"]),
    ("total is not the sum of its items", 1, 22, 422, ["22", "does not match"]),
    ("a price its currency cannot charge (300.25 JPY)", 1, 25, 422, ["25", "300.25", "JPY"]),
]


def test_an_order_that_cannot_be_paid_is_refused(shop, subtests):
    seed_orders(shop)
    for name, user, order, status, words in ORDER_REFUSALS:
        with subtests.test(name):
            detail = refused(shop, user, {"order": order}, status)["detail"]
            for word in words:
                assert word in detail


def test_a_crash_after_stripe_answered_is_resumed_with_the_same_session(shop):
    """The function dies after Stripe made the session but before storing it: paying the order
    then gets that very session back (same idempotency key and parameters), not a second one."""
    crashed: list[bool] = []

    def crash_once(params: dict[str, Any], **_: Any) -> None:
        if not crashed and params["TableName"] == shop.tables["PaymentsTable"]:  # storing the session
            crashed.append(True)
            raise ClientError({"Error": {"Code": "InternalServerError", "Message": "boom"}}, "UpdateItem")

    with hook(shop.client, "before-parameter-build.dynamodb.UpdateItem", crash_once):
        first = call(shop.stripe, "POST", CHECKOUT, headers=auth(1), body={"shipping_address": 1})
    assert first.status >= 500 and set(first.json) == {"detail"}, first
    (made,) = shop.sandbox.sessions.values()
    assert shop.store.payment(4).checkout_session_id is None

    resumed = shop.checkout(1, {"order": 4})

    assert resumed.status == 200, resumed
    assert resumed.json == {"id": made["id"], "url": made["url"]}
    assert len(shop.sandbox.sessions) == 1
    assert shop.store.payment(4).checkout_session_id == made["id"]
    assert set(shop.store.payments()) == {1, 2, 3, 4}


@pytest.mark.parametrize("stored", ["with an empty payments map", "without a payments attribute"])
def test_an_order_without_any_payment_yet_can_be_paid(shop, stored):
    """Orders other services write may list no payment at all: paying them must work first time."""
    if stored == "with an empty payments map":
        seed_orders(shop)  # the seed's data contract writes `payments: {}`
    else:
        shop.store.put("OrdersTable", {
            "id": 24, "user": 1, "shipping_address": 1, "status": "pending", "total_price": Decimal("1598.00"),
            "items": [{"variant": RUI, "quantity": 2, "price": Decimal("799.00")}],
            "created_at": "2024-01-01T00:00:00Z",
        })  # fmt: skip

    reply = shop.checkout(1, {"order": 24})

    assert reply.status == 200, reply
    order = shop.store.order(24)
    (payment_id,) = order.payments
    assert order.payments == {payment_id: ("stripe", "pending")}
    session = shop.sandbox.session(reply.json["id"])
    payment = shop.store.payment(payment_id)
    metadata = {"order_id": "24", "payment_id": str(payment_id), "user_id": "1", "checkout_key": payment.checkout_key}
    assert session["metadata"] == metadata
    assert (payment.order, payment.status, payment.amount) == (24, "pending", order.total_price)


def test_an_order_listing_one_product_on_two_lines_is_paid_line_by_line(shop):
    """Orders the platform writes may list a product twice (say, one unit discounted)."""
    shop.store.put("OrdersTable", {
        "id": 26, "user": 1, "shipping_address": 1, "status": "pending", "total_price": Decimal("1548.00"),
        "items": [{"variant": RUI, "quantity": 1, "price": Decimal("799.00")},
                  {"variant": RUI, "quantity": 1, "price": Decimal("749.00")}],
        "created_at": "2024-01-01T00:00:00Z",
    })  # fmt: skip

    reply = shop.checkout(1, {"order": 26})

    assert reply.status == 200, reply
    (request,) = shop.sandbox.requests
    assert request.params["line_items"] == [line(LABELS[RUI], 79900, 1), line(LABELS[RUI], 74900, 1)]
    assert shop.sandbox.session(reply.json["id"])["amount_total"] == 154800


# ====================================================================== Idempotency-Key


def test_the_same_key_replays_the_same_answer_and_makes_one_order(shop):
    first = shop.checkout(1, {"shipping_address": 1}, key="click-1")
    assert first.status == 200, first
    after_first = shop.store.snapshot()

    again = shop.checkout(1, {"shipping_address": 1}, key="click-1")

    assert again.status == 200, again
    assert again.json == first.json
    assert shop.store.snapshot() == after_first
    assert len(shop.creates()) == 1


def test_the_same_key_with_another_body_is_a_422(shop):
    assert shop.checkout(1, {"shipping_address": 1}, key="click-2").status == 200
    before = shop.store.snapshot()
    reply = shop.checkout(1, {"order": 1}, key="click-2")
    assert reply.status == 422, reply
    assert shop.store.snapshot() == before


def test_two_users_with_the_same_key_are_independent(shop):
    one = shop.checkout(1, {"shipping_address": 1}, key="same-key")
    two = shop.checkout(2, {"shipping_address": 2}, key="same-key")
    assert (one.status, two.status) == (200, 200)
    assert one.json != two.json
    assert {o.user for o in shop.store.orders().values() if o.status == "pending" and o.id > 3} == {1, 2}


def test_a_keyed_request_that_met_a_stripe_outage_succeeds_when_retried_with_the_same_key(shop):
    shop.sandbox.fail_next(3, "500")
    assert shop.checkout(1, {"shipping_address": 1}, key="retry-me").status == 502
    shop.sandbox.recover()
    again = shop.checkout(1, {"shipping_address": 1}, key="retry-me")
    assert again.status == 200, again
    assert shop.store.payment(5).checkout_session_id == again.json["id"]


def test_a_keyed_refusal_is_not_replayed_once_the_cause_is_fixed(shop):
    shop.store.set_cart(1, [])
    assert shop.checkout(1, {"shipping_address": 1}, key="fix-me").status == 400
    shop.store.set_cart(1, [{"variant": RUI, "quantity": 1}])
    assert shop.checkout(1, {"shipping_address": 1}, key="fix-me").status == 200


def test_the_next_request_of_an_environment_logs_no_order_of_the_last_one(shop, capsys, caplog):
    """Lambda reuses an environment: the order and payment a checkout names in its log lines do not
    follow into the next request it serves (a refused one names no order)."""
    with captured_output(capsys, caplog, level=logging.INFO) as out:
        assert shop.checkout(1, {"shipping_address": 1}).status == 200  # it names order and payment
        out.clear()
        assert shop.checkout(None, {"shipping_address": 1}).status == 401
        lines = out.lines()
    assert lines
    assert [line for line in lines if "order" in line or "payment" in line] == []
