"""`POST /_local/reconcile` and `make reconcile` (`python -m local.reconcile`) against the sandbox.

The server starts with RECONCILE_AFTER_MINUTES=0, so every open Stripe payment is due; webhooks
are lost with the sandbox's pause switch, as when an endpoint is down past Stripe's retries.
"""

from __future__ import annotations

import json

import pytest
from support.local_api import reconcile_command

pytestmark = pytest.mark.e2e

RECONCILE = "/_local/reconcile"
SUMMARY_KEYS = {
    "run",
    "events",
    "checked",
    "outcomes",
    "stripe_errors",
    "finished",
    "skipped",
    "oldest_open_minutes",
    "duration_ms",
}
TUNA = 13  # the variant user 22's cart holds (4 of them), of the e2e seed's own stock of 100


def test_a_sweep_settles_the_checkouts_whose_webhooks_were_lost(reconcile_server):
    server, sandbox = reconcile_server, reconcile_server.sandbox
    paid = server.checkout(user=21, address=21)
    expired = server.checkout(user=22, address=22)
    with sandbox.webhooks_lost():
        sandbox.press(paid["id"], "pay")
        sandbox.press(expired["id"], "cancel")  # Stripe's truth: the session expired
    paid_order = int(sandbox.session(paid["id"])["metadata"]["order_id"])
    expired_order = int(sandbox.session(expired["id"])["metadata"]["order_id"])
    assert server.payment_of_order(21, paid_order)["status"] == "pending"
    assert server.payment_of_order(22, expired_order)["status"] == "pending"
    store = server.store()
    assert store.stock(TUNA) == 96  # still held for the expired checkout

    # A body cannot reconfigure the sweep (that is the server's RECONCILE_AFTER_MINUTES): it is ignored.
    reply = server.request("POST", RECONCILE, body=json.dumps({"after_minutes": 10**6}).encode())

    assert reply.status == 200, reply
    assert reply.headers["Content-Type"] == "application/json"
    summary = reply.json
    assert set(summary) == SUMMARY_KEYS
    # Settled from Stripe's event log (the two lost events), with no lookup of either payment.
    assert (summary["events"]["listed"], summary["checked"]) == (2, 0), summary
    assert (summary["outcomes"], summary["stripe_errors"], summary["finished"]) == (
        {"completed": 1, "failed": 1},
        0,
        True,
    )
    completed = server.payment_of_order(21, paid_order)
    assert (completed["status"], completed["transaction_id"]) == (
        "completed",
        sandbox.session(paid["id"])["payment_intent"],
    )
    assert server.payment_of_order(22, expired_order)["status"] == "failed"
    assert store.order(expired_order).status == "cancelled"
    assert store.stock(TUNA) == 100  # released
    sources = [entry["source"] for entry in store.audit(completed["id"]) if entry.get("from")]
    assert sources == ["reconciliation"]

    # `make reconcile`: a second sweep finds nothing left to settle.
    result = reconcile_command(server.port)
    assert result.returncode == 0, result.stderr
    again = json.loads(result.stdout)
    assert (again["checked"], again["outcomes"], again["finished"]) == (0, {}, True)
    assert again["events"] == {"listed": 2, "already_applied": 2}  # read again (the overlap): nothing twice
    assert again["run"] != summary["run"]


def test_the_sandbox_signs_with_the_first_of_rotated_webhook_secrets(reconcile_server):
    # The server's STRIPE_WEBHOOK_SECRET is "current,previous": the function accepts both.
    started = reconcile_server.checkout(user=23, address=23)
    reconcile_server.sandbox.press(started["id"], "pay")  # delivered, not lost
    order = int(reconcile_server.sandbox.session(started["id"])["metadata"]["order_id"])
    assert reconcile_server.payment_of_order(23, order)["status"] == "completed"


def test_only_post_is_served_and_the_command_says_when_no_server_listens(reconcile_server):
    assert reconcile_server.request("GET", RECONCILE).status == 404  # as API Gateway answers an unknown route
    result = reconcile_command("1")  # nothing listens on port 1
    assert result.returncode == 1
    assert "no local server at http://127.0.0.1:1/_local/reconcile" in result.stderr
    assert "make run" in result.stderr
