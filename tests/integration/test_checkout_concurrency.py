"""Concurrent checkouts, each through its own cold-started handler (as Lambda runs concurrent requests
in separate environments) against one DynamoDB and one Stripe: double submits with and without an
Idempotency-Key, the last units bought by two customers at once, and an order paid four times at
once. Races are forced (every request planned from the same reads), never left to timing."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from support.checkout import (
    LABELS,
    PRAWN,
    RUI,
    Shop,
    transactions_meet,
)
from support.environments import run_together

from halum_payments.models import Order, Payment

SEEDED_ORDERS = {1, 2, 3}


def new_orders(shop: Shop) -> dict[int, Order]:
    return {oid: o for oid, o in shop.store.orders().items() if oid not in SEEDED_ORDERS}


def pending_stripe_payments(shop: Shop) -> dict[int, Payment]:
    return {pid: p for pid, p in shop.store.payments().items() if p.method == "stripe" and p.status == "pending"}


def test_four_simultaneous_requests_with_one_key_make_one_order_and_all_get_its_session(shop):
    """A double (quadruple) click: all four are planned from the same reads and race into the
    transaction; the key is claimed in it, so one order is placed and the others answer with its
    session."""
    callers = [shop.stripe_function() for _ in range(4)]

    with transactions_meet(shop.client, 4):
        replies = run_together(
            [lambda m=m: shop.checkout(1, {"shipping_address": 1}, key="double-click", module=m) for m in callers]
        )

    assert [r.status for r in replies] == [200] * 4, replies
    assert all(r.json == replies[0].json for r in replies)
    (order,) = new_orders(shop).values()
    (payment,) = pending_stripe_payments(shop).values()
    assert payment.order == order.id
    assert payment.checkout_session_id == replies[0].json["id"]
    assert len(shop.sandbox.sessions) == 1
    assert shop.store.stock(RUI) == 98
    assert shop.store.counts(1)["all"] == 3


def test_four_simultaneous_requests_without_a_key_make_one_order_and_clean_refusals(shop):
    callers = [shop.stripe_function() for _ in range(4)]
    with transactions_meet(shop.client, 4):
        replies = run_together([lambda m=m: shop.checkout(1, {"shipping_address": 1}, module=m) for m in callers])

    statuses = sorted(r.status for r in replies)
    assert statuses[0] == 200 and statuses.count(200) == 1, replies
    for reply in replies:
        if reply.status != 200:
            assert reply.status in (400, 409), reply  # the cart is empty now / it changed: never a 5xx
    (order,) = new_orders(shop).values()
    assert order.status == "pending"
    assert len(pending_stripe_payments(shop)) == 1
    assert shop.store.stock(RUI) == 98  # taken once
    assert shop.store.cart(1) == {}
    assert len(shop.sandbox.sessions) == 1
    assert shop.store.counts(1)["all"] == 3


@pytest.mark.parametrize("method", ["stripe", "cod"])
def test_the_last_unit_goes_to_exactly_one_of_two_customers(shop, method):
    shop.store.update_variant(PRAWN, stock=1)
    shop.store.set_cart(1, [{"variant": PRAWN, "quantity": 1}])
    shop.store.set_cart(2, [{"variant": PRAWN, "quantity": 1}])
    load = shop.stripe_function if method == "stripe" else shop.cod_function
    send = shop.checkout if method == "stripe" else shop.cash
    success = 200 if method == "stripe" else 201
    one, two = load(), load()

    with transactions_meet(shop.client, 2):
        replies = run_together(
            [
                lambda: send(1, {"shipping_address": 1}, module=one),
                lambda: send(2, {"shipping_address": 2}, module=two),
            ]
        )

    assert sorted(r.status for r in replies) == [success, 409], replies
    winner, loser = (1, 2) if replies[0].status == success else (2, 1)
    lost = replies[loser - 1].json["detail"]
    assert LABELS[PRAWN] in lost and "0 available" in lost
    assert shop.store.stock(PRAWN) == 0  # never below zero
    (order,) = new_orders(shop).values()
    assert order.user == winner
    assert shop.store.cart(winner) == {}
    assert shop.store.cart(loser) == {PRAWN: 1}  # the loser keeps their cart
    assert len(shop.sandbox.sessions) == (1 if method == "stripe" else 0)


def test_an_order_paid_four_times_at_once_gets_one_stripe_payment_and_one_session(shop):
    callers = [shop.stripe_function() for _ in range(4)]
    with transactions_meet(shop.client, 4):
        replies = run_together([lambda m=m: shop.checkout(1, {"order": 1}, module=m) for m in callers])

    assert [r.status for r in replies] == [200] * 4, replies
    assert all(r.json == replies[0].json for r in replies)
    (payment,) = pending_stripe_payments(shop).values()
    assert payment.order == 1 and payment.checkout_session_id == replies[0].json["id"]
    assert len(shop.sandbox.sessions) == 1
    order = shop.store.order(1)
    assert order.payments == {1: ("COD", "pending"), payment.id: ("stripe", "pending")}
    assert shop.store.counts(1)["all"] == 3


def paused_stripe(module: Any) -> tuple[threading.Event, threading.Event]:
    """Holds `module`'s calls to create a session until released: (waiting, release)."""
    waiting, release = threading.Event(), threading.Event()
    create = module.gateway.create_session

    def held(request: Any) -> Any:
        waiting.set()
        assert release.wait(20), "never released"
        return create(request)

    module.gateway.create_session = held
    return waiting, release


def failing_stripe(module: Any) -> None:
    from halum_payments.gateways.stripe_checkout import ProviderError

    def fail(request: Any) -> Any:
        raise ProviderError("unavailable", "Stripe is unavailable (500)")

    module.gateway.create_session = fail


def test_paying_an_order_whose_checkout_waits_for_stripe_never_gives_that_checkout_back(shop):
    """A checks out its cart and waits for Stripe; B pays the same order ({"order": N}) and meets a
    Stripe failure. B did not create the payment, so B gives nothing back and says nothing about
    the cart; A's session then completes normally when the customer pays."""
    first, second = shop.stripe_function(), shop.stripe_function()
    waiting, release = paused_stripe(first)
    failing_stripe(second)
    replies: list[Any] = []
    a = threading.Thread(target=lambda: replies.append(shop.checkout(1, {"shipping_address": 1}, module=first)))
    a.start()
    assert waiting.wait(20)

    b = shop.checkout(1, {"order": 4}, module=second)

    assert b.status == 502, b
    assert b.json == {"detail": "The payment provider is unavailable; please retry."}
    release.set()
    a.join(20)
    (a_reply,) = replies
    assert a_reply.status == 200, a_reply
    payment = shop.store.payment(4)
    assert (payment.status, payment.checkout_session_id) == ("pending", a_reply.json["id"])
    assert shop.store.order(4).status == "pending"
    assert shop.store.stock(RUI) == 98 and shop.store.cart(1) == {}
    shop.sandbox.submit(f"/checkout/{a_reply.json['id']}/pay")
    assert shop.sandbox.session(a_reply.json["id"])["payment_status"] == "paid"


def test_a_checkout_whose_stripe_call_fails_answers_with_the_session_another_request_opened(shop):
    """A waits for Stripe and then fails; meanwhile B paid the same order and opened its session:
    A must not give back a payment with a payable session; its answer is that session."""
    first, second = shop.stripe_function(), shop.stripe_function()
    waiting, release = paused_stripe(first)
    a_create = first.gateway.create_session

    def then_fail(request: Any) -> Any:
        a_create(request)  # waits for the release, then Stripe "fails" for A
        from halum_payments.gateways.stripe_checkout import ProviderError

        raise ProviderError("unavailable", "Stripe is unavailable (500)")

    first.gateway.create_session = then_fail
    replies: list[Any] = []
    a = threading.Thread(target=lambda: replies.append(shop.checkout(1, {"shipping_address": 1}, module=first)))
    a.start()
    assert waiting.wait(20)

    b = shop.checkout(1, {"order": 4}, module=second)
    release.set()
    a.join(20)

    assert b.status == 200, b
    (a_reply,) = replies
    assert (a_reply.status, a_reply.json) == (200, b.json)
    payment = shop.store.payment(4)
    assert (payment.status, payment.checkout_session_id) == ("pending", b.json["id"])
    assert shop.store.stock(RUI) == 98 and shop.store.cart(1) == {}
