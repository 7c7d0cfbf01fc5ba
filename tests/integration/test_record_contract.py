"""Records the shop writes that break their contract (issue 20, "records in"), through the real handlers
on moto: a broken record in each of ProductVariantsTable, ShippingAddressesTable, CartsTable and
OrdersTable. Restated from the issue: never a 500 and never a guess; where the customer can act, a 4xx
telling them what to do; nothing changes in any table; the metric RecordContractBroken with the table as
its dimension, and an error log line naming the table and the key (what the alarm's runbook section
queries). Webhooks: a fault is a 5xx that makes the sender retry and loses nothing (nothing remembered,
so the redelivery after the shop fixes the record applies); the sweep holds such an event like one
that cannot apply yet instead of stopping at it.
"""

from __future__ import annotations

import contextlib
import logging
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from support.checkout import RICE, RUI, STRIPE_KEY, Shop
from support.payment_data import SPEC_GATEWAY_EVENT
from support.webhooks import captured_output, send_gateway, send_stripe

from halum_payments.clock import format_timestamp, utc_now
from halum_payments.repositories.dynamo import to_attr
from halum_payments.repositories.payments import sort_key
from local.events import LambdaContext

UNREADABLE_CART = "A line of your cart cannot be read; update your cart."
SHOP_FAULT = "A record this request needs cannot be read right now; the shop has been alerted. Try again later."


@pytest.fixture(autouse=True)
def output(capsys, caplog):
    with captured_output(capsys, caplog, level=logging.INFO) as out:
        yield out


def broken_records(output: Any) -> list[tuple[str, Any]]:
    """(table, key) of every record reported broken: each metric's `table` dimension, checked against
    the error log line that names the same table and its key."""
    lines = output.lines()
    metrics = [
        blob["table"]
        for blob in lines
        if "_aws" in blob and "RecordContractBroken" in blob
        for directive in blob["_aws"]["CloudWatchMetrics"]
        if ["service", "table"] in directive["Dimensions"]
    ]
    logged = [(line["table"], line["key"]) for line in lines if line.get("message") == "a record breaks its contract"]
    assert [table for table, _ in logged] == metrics, (logged, metrics)
    return logged


def put_raw(shop: Shop, table: str, item: dict[str, Any]) -> None:
    """An item exactly as a careless writer could store it (typed attribute values, NULL included)."""
    shop.client.put_item(TableName=shop.tables[table], Item=item)


def n(value: Any) -> dict[str, str]:
    return {"N": str(value)}


BROKEN_CARTS = {
    "variant: 1.5": [{"M": {"variant": n("1.5"), "quantity": n(1)}}],
    'variant: "1"': [{"M": {"variant": {"S": "1"}, "quantity": n(1)}}],
    'quantity: "2"': [{"M": {"variant": n(RUI), "quantity": {"S": "2"}}}],
    "quantity: 0": [{"M": {"variant": n(RUI), "quantity": n(0)}}],
    "quantity: -1": [{"M": {"variant": n(RUI), "quantity": n(-1)}}],
    "quantity: 1.5": [{"M": {"variant": n(RUI), "quantity": n("1.5")}}],
    "variant: true": [{"M": {"variant": {"BOOL": True}, "quantity": n(1)}}],
    "an item without variant": [{"M": {"quantity": n(1)}}],
    "an item that is not an object": [n(RUI)],
    "a good line, then a broken one": [
        {"M": {"variant": n(RUI), "quantity": n(1)}},
        {"M": {"variant": {"BOOL": True}, "quantity": n(1)}},
    ],
}


@pytest.mark.parametrize("method", ["stripe", "cod"])
def test_a_broken_cart_is_409_update_your_cart_and_changes_nothing(shop, output, subtests, method):
    send = shop.checkout if method == "stripe" else shop.cash
    shapes: dict[str, Any] = {**BROKEN_CARTS, "items not a list": {"M": {"variant": n(1), "quantity": n(1)}}}
    shapes["items: null"] = {"NULL": True}
    for name, items in shapes.items():
        with subtests.test(name):
            put_raw(shop, "CartsTable", {"user": n(1), "items": {"L": items} if isinstance(items, list) else items})
            before = shop.store.snapshot()
            output.clear()

            reply = send(1, {"shipping_address": 1})

            assert (reply.status, reply.json) == (409, {"detail": UNREADABLE_CART})
            assert shop.store.snapshot() == before
            assert broken_records(output) == [("CartsTable", {"user": "1"})]
            assert shop.creates() == []  # Stripe was never asked


def test_once_the_cart_is_updated_the_checkout_goes_through(shop):
    put_raw(shop, "CartsTable", {"user": n(1), "items": {"L": BROKEN_CARTS["variant: 1.5"]}})
    assert shop.checkout(1, {"shipping_address": 1}).status == 409
    shop.store.set_cart(1, [{"variant": RUI, "quantity": 1}])
    assert shop.checkout(1, {"shipping_address": 1}).status == 200


BROKEN_VARIANTS = {
    "a price with three places": {"price": Decimal("799.005")},
    "a price as a bool": {"price": True},
    "a price that is not a number": {"price": "cheap"},
    "stock as text": {"stock": "100"},
    "is_active as text": {"is_active": "true"},
}


@pytest.mark.parametrize("method", ["stripe", "cod"])
def test_a_broken_variant_is_409_naming_the_product_to_remove_and_changes_nothing(shop, output, subtests, method):
    send = shop.checkout if method == "stripe" else shop.cash
    for name, change in BROKEN_VARIANTS.items():
        with subtests.test(name):
            item = shop.client.get_item(TableName=shop.tables["ProductVariantsTable"], Key={"id": n(RICE)})["Item"]
            put_raw(shop, "ProductVariantsTable", {**item, **{name: to_attr(v) for name, v in change.items()}})
            before = shop.store.snapshot()
            output.clear()

            reply = send(1, {"shipping_address": 1})  # user 1's cart: Rui and Rice

            assert reply.status == 409, reply
            assert reply.json == {
                "detail": f"Product {RICE} cannot be bought right now; remove it from your cart to check out the rest."
            }
            assert shop.store.snapshot() == before
            assert broken_records(output) == [("ProductVariantsTable", {"id": str(RICE)})]


def test_a_broken_address_of_the_caller_is_409_and_another_users_is_as_if_it_did_not_exist(shop, output):
    for address, user in ((1, 1), (2, 2)):
        put_raw(shop, "ShippingAddressesTable", {"id": n(address), "user": n(user), "street": {"S": "Road 5"}})
    before = shop.store.snapshot()

    own = shop.checkout(1, {"shipping_address": 1})
    others = shop.cash(1, {"shipping_address": 2})

    assert (own.status, own.json) == (
        409,
        {"detail": "Your shipping address 1 cannot be read; update it or choose another."},
    )
    message = 'Invalid pk "2" - object does not exist.'
    assert (others.status, others.json) == (
        400,
        {"detail": f"shipping_address: {message}", "shipping_address": [message]},
    )
    assert shop.store.snapshot() == before
    assert broken_records(output) == [("ShippingAddressesTable", {"id": "1"}), ("ShippingAddressesTable", {"id": "2"})]


def broken_order(shop: Shop, order: int, user: int) -> dict[str, Any]:
    """Order `order` with its total written as text with three places: the shop's bug."""
    item = shop.client.get_item(TableName=shop.tables["OrdersTable"], Key={"id": n(order)})["Item"]
    put_raw(shop, "OrdersTable", {**item, "user": n(user), "total_price": {"S": "1598.001"}})
    return item


def test_paying_a_broken_order_is_503_the_shops_fault_and_another_users_is_not_found(shop, output):
    broken_order(shop, 1, 1)
    broken_order(shop, 3, 2)
    before = shop.store.snapshot()

    own = shop.checkout(1, {"order": 1})
    others = shop.checkout(1, {"order": 3})

    assert (own.status, own.json) == (503, {"detail": SHOP_FAULT})
    assert (others.status, others.json) == (400, {"detail": "Order 3 not found."})
    assert shop.store.snapshot() == before
    assert broken_records(output) == [("OrdersTable", {"id": "1"}), ("OrdersTable", {"id": "3"})]
    assert shop.creates() == []


def test_a_gateway_event_for_a_broken_order_is_retried_and_applies_once_the_order_is_fixed(shop, gateway, output):
    good = broken_order(shop, 1, 1)
    before = shop.store.snapshot(idempotency=False)

    refused = send_gateway(gateway, SPEC_GATEWAY_EVENT)

    assert (refused.status, refused.json) == (503, {"status": "error", "message": SHOP_FAULT})
    assert shop.store.snapshot(idempotency=False) == before
    assert broken_records(output) == [("OrdersTable", {"id": "1"})]

    put_raw(shop, "OrdersTable", good)  # the shop fixes it; the gateway delivers the same event again
    again = send_gateway(gateway, SPEC_GATEWAY_EVENT)
    assert (again.status, again.json) == (200, {"status": "success", "message": "Payment confirmed"})
    assert shop.store.order(1).status == "confirmed"


def business(shop: Shop) -> dict[str, list[str]]:
    """Every table but the idempotency records and the sweep's place in Stripe's event log."""
    tables = shop.store.snapshot(idempotency=False)
    return {name: [item for item in items if "reconciliation#" not in item] for name, items in tables.items()}


def test_a_stripe_event_for_a_broken_order_is_503_and_the_sweep_holds_it_without_stopping(shop, hook, output):
    reply = shop.checkout(1, {"shipping_address": 1})
    assert reply.status == 200, reply
    session = reply.json["id"]
    order = int(shop.sandbox.session(session)["metadata"]["order_id"])
    status, _ = shop.sandbox.submit(f"/checkout/{session}/pay")
    assert status == 303
    (completed,) = [e for e in shop.sandbox.events if e["type"] == "checkout.session.completed"]
    good = broken_order(shop, order, 1)
    before = business(shop)
    output.clear()

    refused = send_stripe(hook, completed)
    summary = shop.load(
        "reconcile_payments",
        STRIPE_SECRET_KEY=STRIPE_KEY,
        STRIPE_API_BASE=shop.sandbox.base_url,
        RECONCILE_AFTER_MINUTES="60",
    ).lambda_handler({}, LambdaContext("reconcile", timeout_seconds=300))

    assert refused.status == 503, refused
    assert business(shop) == before  # nothing settled, nothing lost
    assert summary["events"].get("deferred") == 1, summary  # held for a later run, not "stopped"
    assert summary["stripe_errors"] == 0, summary
    assert {table for table, _ in broken_records(output)} == {"OrdersTable"}

    put_raw(shop, "OrdersTable", good)
    assert send_stripe(hook, completed).status == 200  # Stripe's retry, once the shop fixed the order
    assert shop.store.order(order).status == "confirmed"


def test_the_sweep_leaves_an_open_payment_whose_order_is_broken_open_and_counts_no_stripe_error(shop, output):
    """The open index's walk meets a payment to give up (its checkout died before Stripe) whose order
    record breaks its contract: nothing changes, no Stripe error is counted (ReconcileStripeErrors would
    send the on-call to Stripe; RecordContractBroken names the record), and once the order is fixed
    the next run gives the payment up as it would have."""
    stripe = shop.stripe_function()

    def killed(request: Any) -> Any:
        raise SystemExit("the function was killed")  # after the order's transaction, before Stripe

    stripe.gateway.create_session = killed
    with contextlib.suppress(SystemExit):
        shop.checkout(1, {"shipping_address": 1}, module=stripe)
    old = format_timestamp(utc_now() - timedelta(hours=1))  # its checkout can no longer be running
    shop.client.update_item(
        TableName=shop.tables["PaymentsTable"],
        Key={"user": n(1), "id": n(4)},
        UpdateExpression="SET created_at = :c, created_sort = :s",
        ExpressionAttributeValues={":c": {"S": old}, ":s": {"S": sort_key(old, 4)}},
    )
    good = broken_order(shop, 4, 1)
    before = business(shop)
    output.clear()

    def sweep() -> dict[str, Any]:
        module = shop.load(
            "reconcile_payments",
            STRIPE_SECRET_KEY=STRIPE_KEY,
            STRIPE_API_BASE=shop.sandbox.base_url,
            RECONCILE_AFTER_MINUTES="0",
        )
        summary: dict[str, Any] = module.lambda_handler({}, LambdaContext("reconcile", timeout_seconds=300))
        return summary

    summary = sweep()

    assert (summary["checked"], summary["stripe_errors"], summary["outcomes"]) == (1, 0, {}), summary
    assert business(shop) == before
    assert broken_records(output) == [("OrdersTable", {"id": "4"})]
    put_raw(shop, "OrdersTable", good)
    assert sweep()["outcomes"] == {"failed": 1}
    assert shop.store.order(4).status == "cancelled"


@pytest.mark.parametrize("method", ["stripe", "cod"])
def test_a_price_the_shop_stores_as_a_decimal_string_is_checked_out_like_a_number(shop, method):
    """docs/data-model.md: a variant's `price` is "a number or a decimal string". The order's own
    check that the price did not move compares it with the stored attribute as the shop wrote it."""
    send = shop.checkout if method == "stripe" else shop.cash
    item = shop.client.get_item(TableName=shop.tables["ProductVariantsTable"], Key={"id": n(RICE)})["Item"]
    put_raw(shop, "ProductVariantsTable", {**item, "price": {"S": item["price"]["N"]}})
    stock = int(item["stock"]["N"])

    reply = send(1, {"shipping_address": 1})  # user 1's cart: Rui and Rice

    assert reply.status in (200, 201), reply
    after = shop.client.get_item(TableName=shop.tables["ProductVariantsTable"], Key={"id": n(RICE)})["Item"]
    assert int(after["stock"]["N"]) < stock
    assert after["price"] == {"S": item["price"]["N"]}  # the shop's record otherwise as it wrote it
