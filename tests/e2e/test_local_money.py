"""The money that moves after checkout, against `python -m local` (what `make run` serves) over HTTP:
partial refunds, disputes and a refund lost while the sandbox's webhooks are paused (settled by
`make reconcile` reading Stripe's event log), and the seven findings of issue 18's attack.

The server has its own Stripe sandbox (delivering signed webhooks), its own tables, every open
Stripe payment due to the sweep (RECONCILE_AFTER_MINUTES=0), and users 41..49 of the e2e seed.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from support.local_api import reconcile_command
from support.signing import gateway_signature, stripe_signature

from local.defaults import LOCAL_PAYMENT_WEBHOOK_SECRET

pytestmark = pytest.mark.e2e

GATEWAY = "/orders/api/payment-webhook/"
STRIPE = "/orders/api/stripe-webhook/"
# The first of the server's STRIPE_WEBHOOK_SECRET (conftest.ROTATED_SECRET): what Stripe signs with.
STRIPE_SECRET = "whsec_e2e_current_" + "c" * 16
LocalServer = Any  # conftest.LocalServer


@pytest.fixture
def server(reconcile_server: LocalServer) -> LocalServer:
    return reconcile_server


def make_reconcile(server: LocalServer) -> dict[str, Any]:
    """`make reconcile` against this server: the sweep's summary."""
    result = reconcile_command(server.port)
    assert result.returncode == 0, result.stderr
    summary: dict[str, Any] = json.loads(result.stdout)
    return summary


def paid(server: LocalServer, user: int, action: str = "pay") -> tuple[str, int, dict[str, Any]]:
    """A checkout of the user's cart, paid on the sandbox's page (its webhook delivered)."""
    session = server.checkout(user, user)["id"]
    server.sandbox.press(session, action)
    order = int(server.sandbox.session(session)["metadata"]["order_id"])
    return session, order, server.payment_of_order(user, order)


def money_rows(server: LocalServer, payment: int, *reasons: str) -> list[dict[str, Any]]:
    return [row for row in server.store().audit(payment) if row["reason"] in reasons]


def send_gateway(server: LocalServer, **event: str) -> Any:
    body = json.dumps({"timestamp": "2026-01-15T15:30:00Z", **event}).encode()
    headers = {
        "X-Webhook-Signature": gateway_signature(body, LOCAL_PAYMENT_WEBHOOK_SECRET),
        "Content-Type": "application/json",
    }
    return server.request("POST", GATEWAY, headers=headers, body=body)


def gateway(server: LocalServer, kind: str, txn: str, order: int, amount: str) -> Any:
    return send_gateway(
        server,
        event_type=f"payment.{kind}",
        status=kind,
        payment_id=txn,
        order_reference=str(order),
        amount=amount,
    )


# ---------------------------------------------------------------------- refunds and disputes


def test_partial_refunds_from_the_dashboard_are_recorded_and_the_rest_refunds_the_payment(server):
    session, _, payment = paid(server, 41)  # 2 x 12.50
    server.sandbox.press(session, "refund", {"amount": "500"})
    server.sandbox.press(session, "refund", {"amount": "700"})

    assert server.get(f"/orders/api/payments/{payment['id']}/", 41).json["status"] == "completed"
    partial = money_rows(server, payment["id"], "partial_refund")
    assert [(row["details"]["refunded"], row["details"]["amount"]) for row in partial] == [
        ("5.00", "25.00"),
        ("12.00", "25.00"),
    ]

    server.sandbox.press(session, "refund")  # the rest
    assert server.get(f"/orders/api/payments/{payment['id']}/", 41).json["status"] == "refunded"


def test_a_refund_lost_while_webhooks_are_paused_is_settled_by_make_reconcile(server):
    session, _, payment = paid(server, 42)
    with server.sandbox.webhooks_lost():
        server.sandbox.press(session, "refund")
    assert server.get(f"/orders/api/payments/{payment['id']}/", 42).json["status"] == "completed"

    summary = make_reconcile(server)

    assert summary["outcomes"].get("refunded") == 1, summary
    assert server.get(f"/orders/api/payments/{payment['id']}/", 42).json["status"] == "refunded"
    (refunded,) = money_rows(server, payment["id"], "refunded")
    assert (refunded["source"], refunded["details"]["refunded"]) == ("reconciliation", "12.50")
    assert make_reconcile(server)["outcomes"].get("refunded") is None  # applied once


@pytest.mark.parametrize(("user", "won"), [(43, False), (44, True)])
def test_a_dispute_opened_and_closed_on_the_dashboard_is_recorded_step_by_step(server, user, won):
    session, _, payment = paid(server, user)
    server.sandbox.press(session, "dispute")
    server.sandbox.press(session, "dispute-won" if won else "dispute-lost")

    steps = [row["reason"] for row in server.store().audit(payment["id"]) if row["reason"].startswith("dispute_")]
    if won:
        assert steps == ["dispute_opened", "dispute_funds_withdrawn", "dispute_won", "dispute_funds_reinstated"]
    else:
        assert steps == ["dispute_opened", "dispute_funds_withdrawn", "dispute_lost"]
    (closing,) = money_rows(server, payment["id"], "dispute_won", "dispute_lost")
    assert closing["details"]["amount"] == payment["amount"] and closing["details"]["dispute"].startswith("dp_")
    assert server.get(f"/orders/api/payments/{payment['id']}/", user).json["status"] == "completed"


# ---------------------------------------------------------------------- the findings


def test_finding_1_gateway_money_for_a_paid_order_is_recorded_for_a_refund(server):
    # Order 2 of the demo seed is paid (ONLINE payment 2): money under another transaction is refused
    # and recorded, once, with no payment of ours to file it under.
    for _ in range(2):
        assert gateway(server, "completed", "txn_e2e_twice", 2, "899.00").status == 409
    rows = [row for row in server.store().scan("PaymentAuditTable") if row["reason"] == "needs_refund"]
    assert [(int(row["payment"]), int(row["order"]), row["details"]["transaction_id"]) for row in rows] == [
        (0, 2, "txn_e2e_twice")
    ]


def test_finding_2_a_signed_refund_whose_metadata_names_an_online_payment_refunds_nothing(server):
    charge = {
        "id": "ch_e2e_forged",
        "object": "charge",
        "amount": 89900,
        "amount_refunded": 89900,
        "refunded": True,
        "currency": "usd",
        "payment_intent": None,
        "metadata": {"order_id": "2", "payment_id": "2", "user_id": "1"},
    }
    event = {"id": "evt_e2e_forged", "object": "event", "type": "charge.refunded", "data": {"object": charge}}
    body = json.dumps(event).encode()
    headers = {"Stripe-Signature": stripe_signature(body, STRIPE_SECRET), "Content-Type": "application/json"}
    assert server.request("POST", STRIPE, headers=headers, body=body).status == 200
    assert server.get("/orders/api/payments/2/", 1).json["status"] == "completed"


def test_finding_3_the_gateway_payment_failing_last_gives_the_checkouts_order_and_stock_back(server):
    store = server.store()
    session = server.checkout(45, 45)["id"]
    order = int(server.sandbox.session(session)["metadata"]["order_id"])
    stock = store.stock(11)
    assert gateway(server, "processing", "txn_e2e_slow", order, "12.50").status == 200
    server.sandbox.press(session, "cancel")  # the session expires; the gateway payment is still open
    assert store.order(order).status == "pending"

    assert gateway(server, "failed", "txn_e2e_slow", order, "12.50").status == 200

    assert store.order(order).status == "cancelled"
    assert store.stock(11) == stock + 1


def test_finding_4_a_superseded_delayed_payment_is_no_stripe_error_for_the_sweep(server):
    _, order, stripe_payment = paid(server, 46, action="pay-delayed")
    assert stripe_payment["status"] == "processing"
    assert gateway(server, "completed", "txn_e2e_faster", order, "24.75").status == 200
    assert server.payment_of_order(46, order)["status"] == "failed"  # superseded

    summary = make_reconcile(server)

    assert summary["stripe_errors"] == 0, summary
    assert summary["outcomes"].get("processing") == 1, summary


def test_finding_5_a_cart_that_breaks_its_contract_is_a_409_and_the_log_names_table_and_key(server):
    """Issue 20: the cart's contract (schemas/records/cart.v1.json) checked on read, over HTTP."""
    store = server.store()
    store.put("CartsTable", {"user": 47, "items": [{"variant": "11", "quantity": 1}]})
    start = len(server.output.lines)
    reply = server.post_json("/orders/api/create-stripe-order/", {"shipping_address": 47}, 47)
    assert (reply.status, reply.json) == (409, {"detail": "A line of your cart cannot be read; update your cart."})
    logged = server.output.wait_for(r'"message":"a record breaks its contract".*"table":"CartsTable"', start=start)
    assert logged is not None and '"key":{"user":"47"}' in logged.string


def test_finding_6_the_gateway_refunds_in_parts(server):
    session = server.checkout(49, 49)["id"]  # 4 x 12.50 = 50.00
    order = int(server.sandbox.session(session)["metadata"]["order_id"])
    assert gateway(server, "completed", "txn_e2e_parts", order, "50.00").status == 200
    for refunded, message in (("20.00", "Partial refund recorded"), ("50.00", "Payment refund recorded")):
        reply = gateway(server, "refunded", "txn_e2e_parts", order, refunded)
        assert (reply.status, reply.json["message"]) == (200, message), reply
    assert server.payment_of_order(49, order, method="ONLINE")["status"] == "refunded"


def test_finding_7_a_keyed_replay_of_an_expired_checkout_is_409(server):
    headers = {"Idempotency-Key": "e2e-expired-checkout", "Content-Type": "application/json"}

    def keyed() -> Any:
        body = json.dumps({"shipping_address": 48}).encode()
        return server.request(
            "POST", "/orders/api/create-stripe-order/", headers={**headers, **server.auth(48)}, body=body
        )

    first = keyed()
    assert first.status == 200, first
    server.sandbox.press(first.json["id"], "cancel")

    again = keyed()

    assert again.status == 409, again
    assert "check out again with a new key" in again.json["detail"]
