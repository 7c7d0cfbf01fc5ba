"""20-way concurrent storms of identical webhook deliveries against the local server, over HTTP.

Each delivery is its own connection and invocation (the server runs up to LOCAL_CONCURRENCY
environments per function, like Lambda's concurrent executions): what keeps the outcome single is
the functions' idempotency and conditional writes, checked here in the server's own DynamoDB.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from support.payment_data import SPEC_GATEWAY_EVENT
from support.tables import Store
from support.webhooks import stripe_header

from local.defaults import LOCAL_PAYMENT_WEBHOOK_SECRET, LOCAL_STRIPE_WEBHOOK_SECRET
from local.stripe_sandbox import API_VERSION

pytestmark = pytest.mark.e2e

STORM = 20
STRIPE_WEBHOOK = "/orders/api/stripe-webhook/"
PAYMENT_WEBHOOK = "/orders/api/payment-webhook/"
SPEC_EVENT = SPEC_GATEWAY_EVENT
CONFIRMED = {"status": "success", "message": "Payment confirmed"}


def storm(n: int, send: Callable[[], Any]) -> list[Any]:
    """`send()` from `n` threads released together; every reply."""
    barrier = threading.Barrier(n)
    replies: list[Any] = [None] * n

    def run(index: int) -> None:
        barrier.wait()
        try:
            replies[index] = send()
        except Exception as exc:
            replies[index] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    errors = [r for r in replies if isinstance(r, Exception) or r is None]
    assert not errors, errors
    return replies


def transitions(store: Store, payment_id: int) -> list[tuple[str | None, str | None, str]]:
    """The payment's audit trail in order: (from, to, source); a creation has no `from`."""
    return [(entry.get("from"), entry.get("to"), entry["source"]) for entry in store.audit(payment_id)]


def test_20_identical_stripe_deliveries_complete_the_payment_once(stripe_server):
    sandbox = stripe_server.sandbox
    started = stripe_server.checkout(user=15, address=15)
    with sandbox.webhooks_lost():  # the customer pays; the one event of it is ours to deliver
        sandbox.press(started["id"], "pay")
    session = sandbox.session(started["id"])
    assert (session["status"], session["payment_status"]) == ("complete", "paid")
    order, payment_id = int(session["metadata"]["order_id"]), int(session["metadata"]["payment_id"])
    event = {
        "id": f"evt_test_storm{int(time.time() * 1000)}",
        "object": "event",
        "api_version": API_VERSION,
        "created": int(time.time()),
        "data": {"object": session},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": "checkout.session.completed",
    }
    payload = json.dumps(event, indent=2).encode()
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "Stripe-Signature": stripe_header(payload.decode(), LOCAL_STRIPE_WEBHOOK_SECRET),
        "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
    }

    replies = storm(STORM, lambda: stripe_server.request("POST", STRIPE_WEBHOOK, headers=headers, body=payload))

    assert [r.status for r in replies] == [200] * STORM, [r for r in replies if r.status != 200]
    assert len({r.body for r in replies}) == 1, {r.body for r in replies}  # the replays answer the same
    payment = stripe_server.payment_of_order(15, order)
    assert (payment["id"], payment["status"], payment["transaction_id"]) == (
        payment_id,
        "completed",
        session["payment_intent"],
    )
    store = stripe_server.store()
    assert transitions(store, payment_id) == [(None, "pending", "checkout"), ("pending", "completed", "stripe")]
    (completion,) = [entry for entry in store.audit(payment_id) if entry["to"] == "completed"]
    assert completion["event_id"] == event["id"]
    assert store.order(order).status == "confirmed"


def test_20_identical_gateway_deliveries_make_one_online_payment(stripe_server):
    body = json.dumps(SPEC_EVENT).encode()
    signature = hmac.new(LOCAL_PAYMENT_WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
    headers = {"Content-Type": "application/json", "X-Webhook-Signature": signature}

    replies = storm(STORM, lambda: stripe_server.request("POST", PAYMENT_WEBHOOK, headers=headers, body=body))

    assert [(r.status, r.json) for r in replies] == [(200, CONFIRMED)] * STORM, [r for r in replies if r.status != 200]
    payments = [p for p in stripe_server.payments(1) if p["order"] == 1]
    (online,) = [p for p in payments if p["method"] == "ONLINE"]
    assert (online["status"], online["transaction_id"], online["amount"]) == ("completed", "txn_123456789", "1598.00")
    (cod,) = [p for p in payments if p["method"] == "COD"]
    assert cod["status"] == "failed"  # superseded: an order has one completed payment, ever
    store = stripe_server.store()
    assert [to for _, to, _ in transitions(store, online["id"])] == ["completed"]
    assert [(f, to) for f, to, _ in transitions(store, cod["id"])] == [("pending", "failed")]
