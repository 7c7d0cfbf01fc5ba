"""POST /orders/api/stripe-webhook/ through the real Function URL handler: signature checks, every
event the state machine knows, out-of-order and repeated deliveries, and a 20-way storm.

Payments come from real checkouts (our checkout service and stripe-python against the local Stripe
stand-in); events are the ones the stand-in produces when the customer pays, pays with a delayed
method, cancels or is refunded, signed here and handed to the handler as a Function URL would.
"""

from __future__ import annotations

import base64
import logging
import time

import pytest
from support import STRIPE_WEBHOOK_SECRET
from support.dynamo_calls import recorded_calls
from support.payment_data import DEMO_TRANSACTION, SPEC_GATEWAY_EVENT
from support.webhooks import (
    STRIPE_KEY,
    StripeShop,
    captured_output,
    concurrently,
    ids,
    minor,
    paid,
    send_gateway,
    send_stripe,
    stripe_header,
    stripe_payload,
    with_object,
)

from halum_payments.models import OrderStatus, PaymentMethod, PaymentStatus
from local.events import LambdaContext
from local.stripe_sandbox import StripeSandbox

P = PaymentStatus
OLD_SECRET = "whsec_rotating_old_" + "o" * 20
NEW_SECRET = "whsec_rotating_new_" + "n" * 20
ALL_SECRETS = (STRIPE_WEBHOOK_SECRET, OLD_SECRET, NEW_SECRET, STRIPE_KEY)
CART_TOTAL = "2023.50"  # the seeded cart of user 1: 2 x 799.00 + 1 x 425.50
SEEDED_STOCK = {1: 100, 4: 200}
RESERVED_STOCK = {1: 98, 4: 199}


@pytest.fixture(autouse=True)
def output(capsys, caplog):
    """Every test's output, at debug level for our logger; no secret may ever appear in it."""
    with captured_output(capsys, caplog, level=logging.DEBUG) as out:
        caplog.set_level(logging.INFO)
        for name in ("halum_payments", "aws_lambda_powertools", "stripe"):
            caplog.set_level(logging.DEBUG, logger=name)
        yield out
        text = out.text
    leaked = [secret for secret in ALL_SECRETS if secret in text]
    assert not leaked, "a secret appeared in the output"


@pytest.fixture
def sandbox():
    box = StripeSandbox(api_key=STRIPE_KEY, webhook_secret=STRIPE_WEBHOOK_SECRET, quiet=True)
    box.start()  # no webhook_url: the tests deliver each event themselves, in the order they choose
    yield box
    box.stop()


@pytest.fixture
def shop(sandbox, settings, dynamodb, store) -> StripeShop:
    return StripeShop(sandbox, settings, dynamodb)


@pytest.fixture
def load_hook(load_function, sandbox, store):
    def load(**env: str):
        return load_function("stripe_webhook", STRIPE_SECRET_KEY=STRIPE_KEY, STRIPE_API_BASE=sandbox.base_url, **env)

    return load


@pytest.fixture
def hook(load_hook):
    return load_hook()


def ok(reply) -> dict:
    assert reply.status == 200, reply
    assert reply.json["status"] == "success" and isinstance(reply.json["message"], str), reply
    return reply.json


def stock(store) -> dict[int, int]:
    return {variant: store.stock(variant) for variant in SEEDED_STOCK}


def transitions(store, payment_id, event_id=None) -> list[tuple]:
    return [
        (a.get("from"), a.get("to"), a.get("reason"))
        for a in store.audit(payment_id)
        if event_id is None or a.get("event_id") == event_id
    ]


# ---------------------------------------------------------------------- signatures


def _failing_deliveries(event) -> dict[str, dict]:
    """send_stripe() arguments for deliveries of `event` that must not verify."""
    payload = stripe_payload(event)
    good = stripe_header(payload)
    timestamp, signature = (part.split("=", 1)[1] for part in good.split(","))
    total = event["data"]["object"]["amount_total"]
    return {
        "missing header": {"signed": False},
        "empty header": {"header": ""},
        "wrong secret": {"secret": "whsec_someone_else_" + "q" * 20},
        "expired timestamp (301 s)": {"header": stripe_header(payload, timestamp=int(time.time()) - 301)},
        "malformed: no timestamp": {"header": f"v1={signature}"},
        "malformed: timestamp not a number": {"header": f"t=soon,v1={signature}"},
        "malformed: garbage": {"header": "definitely not a signature"},
        "malformed: only a v0 scheme": {"header": f"t={timestamp},v0={signature}"},
        "malformed: oversized": {"header": f"t={timestamp}," + ",".join([f"v1={signature}"] * 40)},
        "tampered body": {
            "header": good,
            "event": payload.replace(f'"amount_total": {total}', f'"amount_total": {total - 100}'),
        },
        "base64 body signed over its base64 text": {
            "header": stripe_header(base64.b64encode(payload.encode()).decode()),
            "binary": True,
        },
    }


def test_deliveries_that_do_not_verify_are_400_and_change_nothing(hook, shop, store, output, subtests):
    session = shop.from_cart()
    (event,) = shop.act(session, "pay")
    cases = _failing_deliveries(event)
    before = store.snapshot()
    output.clear()

    for case, arguments in cases.items():
        with subtests.test(case=case):
            reply = send_stripe(hook, arguments.pop("event", event), **arguments)
            assert reply.status == 400, reply
            assert set(reply.json) == {"status", "message"} and reply.json["status"] == "error", reply
            assert reply.json["message"]

    assert store.snapshot() == before
    assert store.payment(ids(session)[1]).status == P.PENDING
    assert output.metrics()["WebhookSignatureFailures"] == len(cases)


def test_the_same_event_verifies_when_properly_signed_also_base64_encoded_or_280_s_old(hook, shop, store):
    session = shop.from_cart()
    (event,) = shop.act(session, "pay")
    payload = stripe_payload(event)

    answers = [
        send_stripe(hook, payload, binary=True),  # isBase64Encoded: verified on the decoded bytes
        send_stripe(hook, payload, header=stripe_header(payload, timestamp=int(time.time()) - 280)),
        send_stripe(hook, payload),
    ]

    assert [ok(reply) for reply in answers] == [answers[0].json] * 3
    assert store.payment(ids(session)[1]).status == P.COMPLETED


def test_during_a_rotation_either_secret_verifies_and_no_other(load_hook, shop, store):
    hook = load_hook(STRIPE_WEBHOOK_SECRET=f"{OLD_SECRET}, {NEW_SECRET}")
    first = shop.from_cart()
    (paid_first,) = shop.act(first, "pay")
    before = store.snapshot()
    assert send_stripe(hook, paid_first, secret=STRIPE_WEBHOOK_SECRET).status == 400  # not one of the two
    assert store.snapshot() == before

    ok(send_stripe(hook, paid_first, secret=NEW_SECRET))  # the second of the two
    assert store.payment(ids(first)[1]).status == P.COMPLETED

    store.set_cart(1, [{"variant": 1, "quantity": 1}])
    second = shop.from_cart()
    (paid_second,) = shop.act(second, "pay")
    ok(send_stripe(hook, paid_second, secret=OLD_SECRET))
    assert store.payment(ids(second)[1]).status == P.COMPLETED


def test_without_a_configured_secret_every_delivery_is_503_and_logged(load_hook, shop, store, output):
    hook = load_hook(STRIPE_WEBHOOK_SECRET="")
    session = shop.from_cart()
    (event,) = shop.act(session, "pay")
    before = store.snapshot()
    output.clear()

    replies = [send_stripe(hook, event), send_stripe(hook, event, signed=False)]

    assert [(r.status, r.json["status"]) for r in replies] == [(503, "error")] * 2, replies
    assert store.snapshot() == before
    assert sum("STRIPE_WEBHOOK_SECRET is not configured" in message for message in output.errors()) == 2


# ---------------------------------------------------------------------- the events


def test_paid_completion_completes_with_the_payment_intent_and_confirms_the_order(hook, shop, store, dynamodb, output):
    session = shop.from_cart()
    order_id, payment_id = ids(session)
    assert stock(store) == RESERVED_STOCK
    created = store.payment(payment_id)
    (event,) = shop.act(session, "pay")
    intent = event["data"]["object"]["payment_intent"]
    assert intent.startswith("pi_")
    payload = stripe_payload(event)
    header = stripe_header(payload)

    with recorded_calls(dynamodb) as operations:
        answer = ok(send_stripe(hook, payload, header=header))

    # The idempotency record, the order, the settlement transaction, the record's completion.
    assert operations == ["PutItem", "GetItem", "TransactWriteItems", "UpdateItem"], operations
    payment = store.payment(payment_id)
    assert (payment.status, payment.transaction_id, payment.amount) == (P.COMPLETED, intent, created.amount)
    assert payment.updated_at > created.updated_at
    order = store.order(order_id)
    assert (order.status, order.completed_payment, order.completed_transaction) == (
        OrderStatus.CONFIRMED,
        payment_id,
        intent,
    )
    assert order.payments[payment_id].status == P.COMPLETED
    (entry,) = [a for a in store.audit(payment_id) if a.get("event_id") == event["id"]]
    assert (entry["from"], entry["to"], entry["source"]) == ("pending", "completed", "stripe")
    assert entry["recorded_at"] == payment.updated_at
    assert stock(store) == RESERVED_STOCK  # sold: the reservation stays
    settled = store.snapshot()

    assert output.metrics()["DuplicateDeliveries"] == 0
    again = send_stripe(hook, payload)  # Stripe redelivers the same event

    assert (again.status, again.json) == (200, answer)
    assert store.snapshot() == settled
    assert output.metrics()["DuplicateDeliveries"] == 1


def test_completion_supersedes_the_orders_other_pending_payments(hook, shop, store):
    """Seeded order 1 has a pending COD payment 1; the customer pays it with Stripe instead."""
    session = shop.for_order(1, 1)
    order_id, payment_id = ids(session)
    assert order_id == 1 and payment_id != 1
    (event,) = shop.act(session, "pay")

    ok(send_stripe(hook, event))

    assert store.payment(payment_id).status == P.COMPLETED
    cod = store.payment(1)
    assert (cod.method, cod.status) == (PaymentMethod.COD, P.FAILED)
    assert transitions(store, 1) == [("pending", "failed", "superseded")]
    assert store.audit(1)[0]["event_id"] == event["id"]
    order = store.order(1)
    assert (order.status, order.completed_payment) == (OrderStatus.CONFIRMED, payment_id)
    assert {pid: ref.status for pid, ref in order.payments.items()} == {1: P.FAILED, payment_id: P.COMPLETED}


def test_a_delayed_method_is_processing_until_it_succeeds(hook, shop, store):
    session = shop.from_cart()
    order_id, payment_id = ids(session)
    (unpaid,) = shop.act(session, "pay-delayed")
    assert unpaid["type"] == "checkout.session.completed"
    assert unpaid["data"]["object"]["payment_status"] == "unpaid"

    ok(send_stripe(hook, unpaid))
    payment = store.payment(payment_id)
    assert (payment.status, payment.transaction_id) == (P.PROCESSING, None)
    assert store.order(order_id).status == OrderStatus.PENDING

    (succeeded,) = shop.act(session, "confirm")
    assert succeeded["type"] == "checkout.session.async_payment_succeeded"
    ok(send_stripe(hook, succeeded))
    payment = store.payment(payment_id)
    assert (payment.status, payment.transaction_id) == (P.COMPLETED, succeeded["data"]["object"]["payment_intent"])
    assert store.order(order_id).status == OrderStatus.CONFIRMED
    assert transitions(store, payment_id)[1:] == [
        ("pending", "processing", "checkout.session.completed"),
        ("processing", "completed", "checkout.session.async_payment_succeeded"),
    ]


@pytest.mark.parametrize("ending", ["expired", "async_payment_failed"])
def test_a_failed_or_expired_checkout_cancels_the_order_and_releases_its_stock_once(hook, shop, store, ending):
    session = shop.from_cart()
    order_id, payment_id = ids(session)
    if ending == "expired":
        (event,) = shop.act(session, "cancel")
    else:
        (unpaid,) = shop.act(session, "pay-delayed")
        ok(send_stripe(hook, unpaid))
        (event,) = shop.act(session, "decline")
    assert event["type"] == f"checkout.session.{ending}"

    answer = ok(send_stripe(hook, event))

    assert store.payment(payment_id).status == P.FAILED
    order = store.order(order_id)
    assert (order.status, order.stock_reserved) == (OrderStatus.CANCELLED, False)
    assert stock(store) == SEEDED_STOCK
    settled = store.snapshot(idempotency=False)

    assert ok(send_stripe(hook, event)) == answer  # Stripe redelivers the same event
    again = shop.event("checkout.session.expired", {**event["data"]["object"], "status": "expired"})
    ok(send_stripe(hook, again))  # another event for the same ending (e.g. the reconciler's)
    assert store.snapshot(idempotency=False) == settled
    assert stock(store) == SEEDED_STOCK


MISMATCHES = {
    "amount higher": lambda total: {"amount_total": total + 1},
    "amount lower": lambda total: {"amount_total": total - 100},
    "currency": lambda total: {"currency": "eur"},
}


def test_a_delayed_payment_for_another_amount_is_a_mismatch_not_processing(hook, shop, store, output):
    """A completion by a delayed method (`payment_status` unpaid: processing) is held to the order's
    total like a paid one: another amount is a mismatch, alarmed, and the payment stays pending."""
    store.set_cart(1, [{"variant": 1, "quantity": 2}, {"variant": 4, "quantity": 1}])
    session = shop.from_cart()
    _, payment_id = ids(session)
    (event,) = shop.act(session, "pay-delayed")
    assert event["data"]["object"]["payment_status"] == "unpaid"
    output.clear()

    ok(send_stripe(hook, with_object(event, amount_total=minor(CART_TOTAL) + 100)))

    assert store.payment(payment_id).status == P.PENDING
    assert output.metrics()["AmountMismatch"] == 1
    ok(send_stripe(hook, shop.event(event["type"], event["data"]["object"])))
    assert store.payment(payment_id).status == P.PROCESSING


UNUSABLE_AMOUNTS = {
    "amount null": {"amount_total": None},
    "amount as text": {"amount_total": "64100"},
    "amount true": {"amount_total": True},
    "amount negative": {"amount_total": -1},
    "currency null": {"currency": None},
}


def test_a_signed_completion_without_a_usable_amount_is_acknowledged_alarmed_and_never_completes(
    hook, shop, store, output, subtests
):
    """Stripe never sends these, but a signed body is still input: never a 500 (which Stripe would
    retry for 3 days), never a completion; the mismatch alarm, and a correct event still settles."""
    for name, change in UNUSABLE_AMOUNTS.items():
        with subtests.test(name):
            store.set_cart(1, [{"variant": 1, "quantity": 2}, {"variant": 4, "quantity": 1}])
            session = shop.from_cart()
            _, payment_id = ids(session)
            (event,) = shop.act(session, "pay")
            output.clear()

            ok(send_stripe(hook, with_object(event, **change)))

            assert store.payment(payment_id).status == P.PENDING
            assert output.metrics()["AmountMismatch"] == 1
            ok(send_stripe(hook, shop.event(event["type"], event["data"]["object"])))
            assert store.payment(payment_id).status == P.COMPLETED


def test_an_amount_or_currency_mismatch_is_acknowledged_audited_and_never_completes(
    hook, shop, store, output, subtests
):
    for mismatch, change in MISMATCHES.items():
        with subtests.test(mismatch=mismatch):
            store.set_cart(1, [{"variant": 1, "quantity": 2}, {"variant": 4, "quantity": 1}])
            session = shop.from_cart()
            order_id, payment_id = ids(session)
            (event,) = shop.act(session, "pay")
            assert event["data"]["object"]["amount_total"] == minor(CART_TOTAL)
            forged = with_object(event, **change(minor(CART_TOTAL)))
            before = store.snapshot(idempotency=False)
            output.clear()

            ok(send_stripe(hook, forged))

            after = store.snapshot(idempotency=False)
            assert {table for table in after if after[table] != before[table]} == {"PaymentAuditTable"}
            payment = store.payment(payment_id)
            assert (payment.status, payment.transaction_id) == (P.PENDING, None)
            assert store.order(order_id).status == OrderStatus.PENDING
            (entry,) = [a for a in store.audit(payment_id) if a.get("event_id") == event["id"]]
            assert (entry["reason"], entry["from"], entry["to"]) == ("amount_mismatch", "pending", "pending")
            assert output.metrics()["AmountMismatch"] == 1
            assert output.errors(), "a mismatch is logged as an error"

            # Its redelivery changes nothing more; a correct event for the session still settles it.
            ok(send_stripe(hook, forged))
            assert store.payment(payment_id).status == P.PENDING
            ok(send_stripe(hook, shop.event(event["type"], event["data"]["object"])))
            assert store.payment(payment_id).status == P.COMPLETED


def test_money_for_an_expired_payment_is_recorded_for_a_refund_and_never_completes_it(hook, shop, store, output):
    session = shop.from_cart()
    order_id, payment_id = ids(session)
    (expired,) = shop.act(session, "cancel")
    ok(send_stripe(hook, expired))
    output.clear()

    late = shop.event("checkout.session.completed", paid(session))
    ok(send_stripe(hook, late))

    payment = store.payment(payment_id)
    assert (payment.status, payment.transaction_id) == (P.FAILED, None)
    order = store.order(order_id)
    assert (order.status, order.completed_payment) == (OrderStatus.CANCELLED, None)
    assert transitions(store, payment_id, late["id"]) == [("failed", "failed", "needs_refund")]
    assert output.metrics()["PaymentNeedsRefund"] == 1
    assert any("refund" in message for message in output.errors())
    assert stock(store) == SEEDED_STOCK


def test_money_for_a_payment_superseded_by_the_gateway_needs_a_refund(
    hook, shop, store, output, sandbox, load_function
):
    """Order 1 gets a Stripe checkout, then the generic gateway confirms it: the Stripe payment is
    superseded (and its session expired); money arriving through Stripe afterwards never completes it."""
    session = shop.for_order(1, 1)
    _, stripe_payment = ids(session)
    gateway = load_function("payment_webhook", STRIPE_SECRET_KEY=STRIPE_KEY, STRIPE_API_BASE=sandbox.base_url)
    reply = send_gateway(
        gateway,
        {
            "event_type": "payment.completed",
            "payment_id": "txn_gw_1",
            "order_reference": "1",
            "amount": "1598.00",
            "status": "completed",
            "timestamp": "2023-01-15T15:30:00Z",
        },
    )
    assert reply.json == {"status": "success", "message": "Payment confirmed"}, reply
    online = store.order(1).completed_payment
    assert store.payment(stripe_payment).status == P.FAILED
    assert transitions(store, stripe_payment)[-1] == ("pending", "failed", "superseded")
    assert sandbox.session(session["id"])["status"] == "expired", "the superseded session is expired"
    output.clear()

    late = shop.event("checkout.session.completed", paid(session))
    ok(send_stripe(hook, late))

    assert store.payment(stripe_payment).status == P.FAILED
    assert store.payment(online).status == P.COMPLETED
    assert store.order(1).completed_payment == online
    assert transitions(store, stripe_payment, late["id"]) == [("failed", "failed", "needs_refund")]
    assert output.metrics()["PaymentNeedsRefund"] == 1


def test_a_superseded_session_stripe_could_not_expire_is_watched_by_the_sweep_until_it_is_closed(
    shop, store, output, sandbox, load_function
):
    """The customer paid order 1's Stripe session, but its event never arrives; the gateway then
    confirms the order while Stripe is failing, so the superseded session can neither be expired
    nor looked at. The payment stays in the sweep's open index; once Stripe answers, the sweep
    finds the money (the lost event, in Stripe's event log) and raises the refund alarm, once
    (soak seed 394)."""
    session = shop.for_order(1, 1)
    _, stripe_payment = ids(session)
    sandbox.submit(f"/checkout/{session['id']}/pay")  # delivers nothing: no webhook URL here
    stripe_env = {"STRIPE_SECRET_KEY": STRIPE_KEY, "STRIPE_API_BASE": sandbox.base_url, "STRIPE_TIMEOUT_SECONDS": "1"}
    gateway = load_function("payment_webhook", **stripe_env, STRIPE_MAX_NETWORK_RETRIES="0")
    sandbox.fail_next(100, "500")

    reply = send_gateway(gateway, {**SPEC_GATEWAY_EVENT, "payment_id": "txn_gw_1"})

    assert reply.json == {"status": "success", "message": "Payment confirmed"}, reply
    assert store.payment(stripe_payment).status == P.FAILED
    assert "PaymentNeedsRefund" not in output.metrics()  # Stripe could not say: no claim yet
    sandbox.recover()
    sweeper = load_function("reconcile_payments", **stripe_env, RECONCILE_AFTER_MINUTES="0")
    context = LambdaContext("reconcile", timeout_seconds=300)

    assert sweeper.lambda_handler({}, context)["outcomes"] == {"needs_refund": 1}
    assert transitions(store, stripe_payment)[-1] == ("failed", "failed", "needs_refund")
    assert output.metrics()["PaymentNeedsRefund"] == 1
    assert sweeper.lambda_handler({}, context)["checked"] == 0  # closed: never alarmed twice
    assert store.payment(stripe_payment).status == P.FAILED


def test_gateway_money_for_an_online_payment_superseded_by_stripe_is_409_and_recorded_for_a_refund(
    hook, shop, store, output, load_function
):
    """The customer started paying order 1 through the generic gateway, then paid it with Stripe:
    the gateway's late "completed" must not complete a second payment, and the money needs a refund."""
    gateway = load_function("payment_webhook")
    gateway_event = {
        "payment_id": "txn_gw_2",
        "order_reference": "1",
        "amount": "1598.00",
        "timestamp": "2023-01-15T15:30:00Z",
    }
    started = send_gateway(gateway, {**gateway_event, "event_type": "payment.processing", "status": "processing"})
    assert started.status == 200, started
    (online,) = [pid for pid, ref in store.order(1).payments.items() if ref.method == PaymentMethod.ONLINE]
    session = shop.for_order(1, 1)
    _, stripe_payment = ids(session)
    (event,) = shop.act(session, "pay")
    ok(send_stripe(hook, event))
    assert store.payment(online).status == P.FAILED
    assert transitions(store, online)[-1] == ("processing", "failed", "superseded")
    output.clear()

    late = send_gateway(gateway, {**gateway_event, "event_type": "payment.completed", "status": "completed"})

    assert (late.status, late.json["status"]) == (409, "error"), late
    assert store.payment(online).status == P.FAILED
    assert store.order(1).completed_payment == stripe_payment
    assert transitions(store, online)[-1] == ("failed", "failed", "needs_refund")
    assert output.metrics()["PaymentNeedsRefund"] == 1
    assert any("refund" in message for message in output.errors())


def test_a_failed_checkout_for_an_order_placed_elsewhere_leaves_the_order_pending(hook, shop, store):
    """Order 1 was placed by the platform (no stock reserved here) and can still be paid by COD."""
    session = shop.for_order(1, 1)
    _, payment_id = ids(session)
    (expired,) = shop.act(session, "cancel")

    ok(send_stripe(hook, expired))

    assert store.payment(payment_id).status == P.FAILED
    order = store.order(1)
    assert (order.status, order.completed_payment) == (OrderStatus.PENDING, None)
    assert store.payment(1).status == P.PENDING
    assert stock(store) == SEEDED_STOCK


# ---------------------------------------------------------------------- out of order


def test_expiry_after_completion_changes_nothing(hook, shop, store):
    session = shop.from_cart()
    order_id, payment_id = ids(session)
    (completed,) = shop.act(session, "pay")
    ok(send_stripe(hook, completed))
    settled = store.snapshot(idempotency=False)

    expired = shop.event("checkout.session.expired", {**session, "status": "expired", "url": None})
    ok(send_stripe(hook, expired))

    assert store.snapshot(idempotency=False) == settled
    assert store.payment(payment_id).status == P.COMPLETED
    assert store.order(order_id).status == OrderStatus.CONFIRMED
    assert stock(store) == RESERVED_STOCK


def test_an_unpaid_completion_after_the_async_success_does_not_go_back_to_processing(hook, shop, store):
    session = shop.from_cart()
    _, payment_id = ids(session)
    (unpaid,) = shop.act(session, "pay-delayed")
    (succeeded,) = shop.act(session, "confirm")

    ok(send_stripe(hook, succeeded))  # Stripe delivered them the other way round
    assert store.payment(payment_id).status == P.COMPLETED
    settled = store.snapshot(idempotency=False)
    ok(send_stripe(hook, unpaid))

    assert store.snapshot(idempotency=False) == settled
    assert transitions(store, payment_id)[1:] == [("pending", "completed", "checkout.session.async_payment_succeeded")]


def test_a_refund_before_its_completion_is_refused_for_a_retry_then_applies(hook, shop, store):
    """Stripe does not order events. A refund that cannot apply yet must not be acknowledged (Stripe
    would never send it again): it is refused, and Stripe's retry after the completion applies it."""
    session = shop.from_cart()
    _, payment_id = ids(session)
    (completed,) = shop.act(session, "pay")
    (refunded,) = shop.act(session, "refund")
    # Stripe copies the PaymentIntent's metadata (our checkout sets it) onto its charge.
    refunded = with_object(refunded, metadata=dict(session["metadata"]))
    assert refunded["data"]["object"]["refunded"] is True
    before = store.snapshot()

    early = send_stripe(hook, refunded)

    assert 400 <= early.status < 500 and early.status != 400, early  # retryable, not a signature failure
    assert early.json["status"] == "error"
    assert store.snapshot() == before
    ok(send_stripe(hook, completed))
    assert store.payment(payment_id).status == P.COMPLETED
    ok(send_stripe(hook, refunded))  # Stripe's retry of the same event
    assert store.payment(payment_id).status == P.REFUNDED


# ---------------------------------------------------------------------- refunds


def test_a_full_refund_refunds_the_payment(hook, shop, store):
    session = shop.from_cart()
    order_id, payment_id = ids(session)
    (completed,) = shop.act(session, "pay")
    ok(send_stripe(hook, completed))
    (refunded,) = shop.act(session, "refund")
    refunded["data"]["object"]["metadata"] = {}  # prove it is found through the PaymentIntent id alone

    ok(send_stripe(hook, refunded))

    payment = store.payment(payment_id)
    assert (payment.status, payment.transaction_id) == (P.REFUNDED, completed["data"]["object"]["payment_intent"])
    assert transitions(store, payment_id, refunded["id"]) == [("completed", "refunded", "refunded")]
    assert store.order(order_id).payments[payment_id].status == P.REFUNDED


def test_a_partial_refund_is_audited_and_the_rest_refunds_the_payment(hook, shop, store):
    session = shop.from_cart()
    _, payment_id = ids(session)
    (completed,) = shop.act(session, "pay")
    ok(send_stripe(hook, completed))

    (partial,) = shop.act(session, "refund", {"amount": "1000"})
    ok(send_stripe(hook, partial))
    assert store.payment(payment_id).status == P.COMPLETED
    (entry,) = [a for a in store.audit(payment_id) if a.get("event_id") == partial["id"]]
    assert entry["reason"] == "partial_refund"
    intent = partial["data"]["object"]["payment_intent"]
    assert entry["details"] == {
        "provider": "stripe",
        "transaction_id": intent,
        "currency": "usd",
        "amount": CART_TOTAL,
        "refunded": "10.00",
    }

    (rest,) = shop.act(session, "refund")
    assert rest["data"]["object"]["amount_refunded"] == minor(CART_TOTAL)
    ok(send_stripe(hook, rest))
    assert store.payment(payment_id).status == P.REFUNDED


def test_a_refund_whose_metadata_names_a_payment_settled_elsewhere_refunds_nothing(hook, shop, store, output):
    """A charge found only through its metadata (its PaymentIntent settled none of ours) must not
    refund the payment the metadata names: seeded payment 2 was paid through the generic gateway."""
    charge = {
        "id": "ch_test_elsewhere",
        "object": "charge",
        "amount": minor("899.00"),
        "amount_refunded": minor("899.00"),
        "refunded": True,
        "currency": "usd",
        "payment_intent": "pi_test_elsewhere",
        "metadata": {"order_id": "2", "payment_id": "2", "user_id": "1"},
    }
    output.clear()

    ok(send_stripe(hook, shop.event("charge.refunded", charge)))

    payment = store.payment(2)
    assert (payment.status, payment.transaction_id) == (P.COMPLETED, DEMO_TRANSACTION)
    assert store.order(2).payments[2].status == P.COMPLETED
    assert output.metrics()["PaymentsRefunded"] == 0
    assert store.audit(2) == []  # not our money: nothing is written about it


# ---------------------------------------------------------------------- not ours, not handled


NOT_OURS = {
    "unknown event type": ("payment_intent.created", {"id": "pi_test_x", "object": "payment_intent"}),
    "customer event": ("customer.created", {"id": "cus_test_x", "object": "customer"}),
    # Our sessions' PaymentIntents carry the checkout's metadata; we settle from the session's events.
    "PaymentIntent event naming our payment": (
        "payment_intent.succeeded",
        {"id": "pi_test_x", "object": "payment_intent", "status": "succeeded", "amount_received": 1598},
    ),
    "session without metadata": ("checkout.session.completed", {"metadata": {}}),
    "session of another system": ("checkout.session.completed", {"metadata": {"cart_id": "cart_6943"}}),
    "session for an order we do not have": (
        "checkout.session.completed",
        {"metadata": {"order_id": "999", "payment_id": "999", "user_id": "1"}},
    ),
    "expiry for an order we do not have": (
        "checkout.session.expired",
        {"metadata": {"order_id": "999", "payment_id": "999", "user_id": "1"}},
    ),
    "non-numeric metadata": ("checkout.session.completed", {"metadata": {"order_id": "1;2", "payment_id": "x"}}),
    "refund of a charge that is not ours": (
        "charge.refunded",
        {
            "id": "ch_test_x",
            "object": "charge",
            "amount": 1000,
            "amount_refunded": 1000,
            "refunded": True,
            "currency": "usd",
            "payment_intent": "pi_test_unknown",
            "metadata": {},
        },
    ),
}


def test_events_we_do_not_handle_or_that_are_not_ours_are_acknowledged_and_change_nothing(hook, shop, store, subtests):
    session = shop.from_cart()
    before = store.snapshot(idempotency=False)
    for case, (type_, changes) in NOT_OURS.items():
        with subtests.test(case=case):
            obj = {**paid(session), **changes} if type_.startswith(("checkout.", "payment_intent.")) else changes
            ok(send_stripe(hook, shop.event(type_, obj)))
            assert store.snapshot(idempotency=False) == before

    # Stripe's signature proves that Stripe sent it, not that its metadata names the right payment.
    forged = shop.event(
        "checkout.session.completed",
        paid(
            session,
            amount_total=minor("1598.00"),
            metadata={"order_id": "1", "payment_id": "1", "user_id": "1"},
        ),
    )
    ok(send_stripe(hook, forged))
    assert store.payment(1).status == P.PENDING  # the seeded COD payment of order 1
    assert store.order(1).status == OrderStatus.PENDING
    assert store.payment(ids(session)[1]).status == P.PENDING


# ---------------------------------------------------------------------- duplicates


def test_twenty_concurrent_copies_make_one_transition(load_hook, shop, store):
    session = shop.from_cart()
    order_id, payment_id = ids(session)
    (event,) = shop.act(session, "pay")
    payload = stripe_payload(event)
    hooks = [load_hook() for _ in range(20)]  # 20 execution environments

    replies = concurrently(20, lambda i: send_stripe(hooks[i], payload))

    assert [reply.status for reply in replies] == [200] * 20, [r for r in replies if r.status != 200]
    assert len({reply.text for reply in replies}) == 1
    assert store.payment(payment_id).status == P.COMPLETED
    assert store.order(order_id).status == OrderStatus.CONFIRMED
    assert transitions(store, payment_id, event["id"]) == [("pending", "completed", "checkout.session.completed")]


def test_a_completion_overtaking_the_checkout_that_records_its_session_completes_it(hook, shop, store, output):
    """Stripe may deliver checkout.session.completed before our checkout has written the session
    id (a slow write, a fast wallet payment): verified against the stored payment and order, it
    completes the payment and records the session; it is never acknowledged and dropped."""
    session = shop.from_cart()
    order_id, payment_id = ids(session)
    (event,) = shop.act(session, "pay")
    # As if the checkout had not recorded the session yet.
    shop.checkout._store.client.update_item(
        TableName=store.tables["PaymentsTable"],
        Key={"user": {"N": "1"}, "id": {"N": str(payment_id)}},
        UpdateExpression="REMOVE checkout_session_id, checkout_url",
    )

    ok(send_stripe(hook, event))

    payment = store.payment(payment_id)
    assert (payment.status, payment.checkout_session_id) == (P.COMPLETED, session["id"])
    assert store.order(order_id).status == OrderStatus.CONFIRMED
    assert output.metrics()["AmountMismatch"] == 0


def test_a_completion_for_an_order_with_an_unusual_shape_still_completes(hook, shop, store):
    """An order with other payments besides this session's (here the platform's pending COD payment
    of order 1) completes like any other: settlement reads the order, it does not guess it."""
    session = shop.for_order(1, 1)
    order_id, payment_id = ids(session)
    (event,) = shop.act(session, "pay")

    ok(send_stripe(hook, event))

    assert store.payment(payment_id).status == P.COMPLETED
    assert store.payment(1).status == P.FAILED  # superseded
    assert store.order(order_id).completed_payment == payment_id


def test_a_session_whose_metadata_names_another_user_is_a_mismatch_and_completes_nothing(hook, shop, store, output):
    session = shop.from_cart()
    _, payment_id = ids(session)
    (event,) = shop.act(session, "pay")
    event["data"]["object"]["metadata"]["user_id"] = "2"

    answer = ok(send_stripe(hook, event))

    assert answer["message"].startswith("mismatch")
    assert store.payment(payment_id).status == P.PENDING
    assert output.metrics()["AmountMismatch"] == 1
    assert ("pending", "pending", "mismatch") in transitions(store, payment_id)
    # The money Stripe took is named on the books, for whoever sorts it out (docs/money.md).
    obj = event["data"]["object"]
    [row] = [r for r in store.audit(payment_id) if r["reason"] == "mismatch"]
    assert row["details"]["transaction_id"] == obj["payment_intent"]
    assert row["details"]["session"] == obj["id"]
    assert (row["details"]["amount"], row["details"]["currency"]) == (f"{obj['amount_total'] / 100:.2f}", "usd")


def test_an_expiry_whose_metadata_names_another_user_still_gives_the_checkout_up(hook, shop, store):
    """Whose money it is matters only for money: the payment's own session expired (nothing can be
    paid through it), so the checkout is given up and its stock returned, whatever the metadata says."""
    session = shop.from_cart()
    order_id, payment_id = ids(session)
    (event,) = shop.act(session, "cancel")
    event["data"]["object"]["metadata"]["user_id"] = "2"

    ok(send_stripe(hook, event))

    assert store.payment(payment_id).status == P.FAILED
    assert store.order(order_id).status == "cancelled"


def test_an_early_completion_naming_another_checkout_attempt_completes_nothing(hook, shop, store, output):
    """Before the session is recorded, only our metadata's checkout key ties it to the payment: a key
    of another attempt (another deployment sharing the Stripe account reuses our ids) is refused."""
    session = shop.from_cart()
    _, payment_id = ids(session)
    (event,) = shop.act(session, "pay")
    shop.checkout._store.client.update_item(
        TableName=store.tables["PaymentsTable"],
        Key={"user": {"N": "1"}, "id": {"N": str(payment_id)}},
        UpdateExpression="REMOVE checkout_session_id, checkout_url",
    )
    event["data"]["object"]["metadata"]["checkout_key"] = "halum-checkout-4-" + "0" * 32

    answer = ok(send_stripe(hook, event))

    assert answer["message"].startswith("mismatch")
    assert store.payment(payment_id).status == P.PENDING
    assert output.metrics()["AmountMismatch"] == 1
