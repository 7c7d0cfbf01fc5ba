"""Property: no sequence of provider events regresses a completed payment, completes an order
twice, double-counts, or gives stock back twice — against the real DynamoDB store."""

from __future__ import annotations

import uuid
from collections import Counter
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from halum_payments.clock import now_text
from halum_payments.logic.settlement import Change, Facts, Money, Settlement
from halum_payments.models import (
    Order,
    OrderItem,
    OrderOrigin,
    OrderStatus,
    Payment,
    PaymentMethod,
    PaymentRef,
    PaymentStatus,
    Variant,
)
from halum_payments.repositories import catalog, orders, payments
from halum_payments.repositories.counters import PAYMENT_SEQUENCE, created_deltas, merge_deltas, user_payments_key
from halum_payments.repositories.dynamo import batch_put, dynamodb_client, from_item
from halum_payments.repositories.settlement_store import DynamoSettlementStore
from halum_payments.repositories.tables import Tables
from local.template import Template

P = PaymentStatus
STATUSES = [P.PENDING, P.PROCESSING, P.COMPLETED, P.FAILED, P.REFUNDED]
STOCK = 10

event = st.one_of(
    st.tuples(st.just("stripe"), st.sampled_from(STATUSES), st.booleans()),  # bool: amount matches
    st.tuples(st.just("gateway"), st.sampled_from(STATUSES), st.sampled_from(["txn_a", "txn_b"])),
)


def build(dynamodb_server, with_cod):
    dynamodb_server.reset()
    client = dynamodb_client()
    names = Template().create_tables(client, prefix=f"p{uuid.uuid4().hex[:6]}-")
    tables = Tables(
        payments=names["PaymentsTable"],
        payment_audit=names["PaymentAuditTable"],
        orders=names["OrdersTable"],
        product_variants=names["ProductVariantsTable"],
        shipping_addresses=names["ShippingAddressesTable"],
        carts=names["CartsTable"],
        counters=names["CountersTable"],
        gateway_transactions=names["GatewayTransactionsTable"],
        idempotency=names["IdempotencyTable"],
    )
    now = now_text()
    cod = Payment(1, 7, 1, Decimal("1598.00"), "usd", PaymentMethod.COD, P.PENDING, None, now, now)
    stripe = Payment(
        2, 7, 1, Decimal("1598.00"), "usd", PaymentMethod.STRIPE, P.PENDING, None, now, now, checkout_session_id="cs_1"
    )
    refs = {2: PaymentRef(PaymentMethod.STRIPE, P.PENDING)}
    if with_cod:
        refs[1] = PaymentRef(PaymentMethod.COD, P.PENDING)
    order = Order(
        7,
        1,
        1,
        OrderStatus.PENDING,
        Decimal("1598.00"),
        "usd",
        (OrderItem(1, 2, Decimal("799.00")),),
        now,
        now,
        OrderOrigin.STRIPE_CHECKOUT,
        True,
        refs,
    )
    batch_put(client, tables.orders, [orders.encode(order)])
    batch_put(client, tables.payments, [payments.encode(stripe)] + ([payments.encode(cod)] if with_cod else []))
    batch_put(
        client,
        tables.product_variants,
        [catalog.encode_variant(Variant(1, "RUI", "Rui", Decimal("799.00"), STOCK, True))],
    )
    batch_put(
        client,
        tables.counters,
        [
            {
                "name": user_payments_key(1),
                **merge_deltas(
                    [created_deltas("pending", "stripe")] + ([created_deltas("pending", "COD")] if with_cod else [])
                ),
            },
            {"name": PAYMENT_SEQUENCE, "value": 2},
        ],
    )
    return client, tables


def state(client, tables):
    order = orders.decode(client.get_item(TableName=tables.orders, Key={"id": {"N": "7"}})["Item"])
    items = client.query(
        TableName=tables.payments,
        KeyConditionExpression="#u = :u",
        ExpressionAttributeNames={"#u": "user"},
        ExpressionAttributeValues={":u": {"N": "1"}},
    )["Items"]
    pays = {p.id: p for p in (payments.decode(i) for i in items)}
    counters = from_item(client.get_item(TableName=tables.counters, Key={"name": {"S": user_payments_key(1)}})["Item"])
    stock = int(from_item(client.get_item(TableName=tables.product_variants, Key={"id": {"N": "1"}})["Item"])["stock"])
    return order, pays, counters, stock


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.booleans(), st.lists(event, min_size=1, max_size=8))
def test_no_event_sequence_breaks_the_money_invariants(dynamodb_server, with_cod, events):
    client, tables = build(dynamodb_server, with_cod)
    settlement = Settlement(DynamoSettlementStore(tables, client))
    ever_completed: dict[int, bool] = {}
    first_completed_payment = None
    for source, target, extra in events:
        if source == "stripe":
            amount = Decimal("1598.00") if extra else Decimal("1.00")
            settlement.apply(
                Change(
                    7,
                    2,
                    target,
                    "stripe",
                    f"evt_{uuid.uuid4().hex}",
                    transaction_id="pi_1",
                    facts=Facts(amount=amount, currency="usd", session_id="cs_1"),
                    money=Money("stripe", "pi_1", "usd", amount, session="cs_1"),
                )
            )
        else:
            order, _, _, _ = state(client, tables)
            online = [pid for pid, ref in order.payments.items() if ref.method == PaymentMethod.ONLINE]
            money = Money("gateway", extra, "usd", Decimal("1598.00"))
            pid = online[-1] if online else None
            settlement.apply(Change(7, pid, target, "gateway", f"{extra}:{target}", transaction_id=extra, money=money))
        order, pays, counters, stock = state(client, tables)
        settled = [p for p in pays.values() if p.status in (P.COMPLETED, P.REFUNDED)]
        assert len(settled) <= 1, "an order has at most one completed payment, ever"
        if first_completed_payment is not None:
            assert order.completed_payment == first_completed_payment
        elif settled:
            first_completed_payment = settled[0].id
            assert order.completed_payment == settled[0].id
            assert order.status == OrderStatus.CONFIRMED
        for pid, payment in pays.items():
            if ever_completed.get(pid):
                assert payment.status in (P.COMPLETED, P.REFUNDED), "completed never regresses"
            ever_completed[pid] = ever_completed.get(pid, False) or payment.status == P.COMPLETED
            assert order.payments[pid].status == payment.status, "the order's view matches its payments"
        if pays[2].status == P.COMPLETED:
            assert pays[2].transaction_id == "pi_1"
        by_status = Counter(p.status for p in pays.values())
        for status in STATUSES:
            assert int(counters.get(f"status#{status}", 0)) == by_status[status], "counts match the rows"
        assert int(counters.get("all", 0)) == len(pays)
        assert stock in (STOCK, STOCK + 2), "stock is given back at most once"
        assert (stock == STOCK + 2) == (order.status == OrderStatus.CANCELLED)
        if order.status == OrderStatus.CANCELLED:
            assert not settled and order.completed_payment is None, "a cancelled order is never paid"
