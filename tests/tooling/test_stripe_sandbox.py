"""The Stripe sandbox itself, over plain HTTP: Stripe's API behaviour, the checkout page, faults, events.

Webhook deliveries go nowhere here (recorded as undelivered); signed delivery to a real receiver is in
tests/integration/test_stripe_gateway.py, with stripe-python on the other side.
"""

from __future__ import annotations

import base64
import http.client
import http.server
import json
import os
import re
import subprocess
import sys
import threading
import time
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
import stripe
from support import ROOT
from support.stripe_http import KEY, SECRET, create, request, session_form

from halum_payments import money
from local import stripe_sandbox
from local.stripe_sandbox import StripeSandbox, format_amount, parse_form


def events(box: StripeSandbox) -> list[dict[str, Any]]:
    return [delivery.event for delivery in box.deliveries]


# ---------------------------------------------------------------------- helpers Stripe-compatible


def test_parse_form_builds_nested_data_and_lists_like_stripe():
    pairs = [
        ("line_items[0][price_data][currency]", "usd"),
        ("line_items[1][quantity]", "3"),
        ("line_items[0][quantity]", "1"),
        ("metadata[order_id]", "4"),
        ("expand[]", "line_items"),
        ("expand[]", "payment_intent"),
        ("mode", "payment"),
    ]
    assert parse_form(pairs) == {
        "line_items": [{"price_data": {"currency": "usd"}, "quantity": "1"}, {"quantity": "3"}],
        "metadata": {"order_id": "4"},
        "expand": ["line_items", "payment_intent"],
        "mode": "payment",
    }
    assert parse_form([("metadata[1]", "x")]) == {"metadata": {"1": "x"}}  # not 0..n-1: stays a hash


def test_parse_form_rejects_a_scalar_and_a_hash_under_one_name():
    with pytest.raises(stripe_sandbox.StripeApiError):
        parse_form([("metadata", "x"), ("metadata[a]", "y")])


@pytest.mark.parametrize(
    ("amount", "currency", "shown"),
    [(202350, "usd", "2,023.50 USD"), (1500, "jpy", "1,500 JPY"), (1230, "KWD", "1.230 KWD"), (5, "eur", "0.05 EUR")],
)
def test_amounts_are_formatted_in_the_currencys_minor_units(amount, currency, shown):
    assert format_amount(amount, currency) == shown


def test_currency_exponents_agree_with_the_payments_layer():
    assert stripe_sandbox.ZERO_DECIMAL == money.ZERO_DECIMAL
    assert stripe_sandbox.THREE_DECIMAL == money.THREE_DECIMAL


def test_signatures_verify_with_stripe_python_and_match_its_own_signer(sandbox):
    payload = json.dumps(sandbox.event("checkout.session.completed", {"id": "cs_test_1", "object": "checkout.session"}))
    header = sandbox.sign(payload, timestamp=1_700_000_000)
    assert header == stripe.WebhookSignature.generate_signature_header(payload, SECRET, timestamp=1_700_000_000)
    event = stripe.Webhook.construct_event(payload, sandbox.sign(payload), SECRET, tolerance=300)
    assert event.type == "checkout.session.completed"
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(payload, header, SECRET, tolerance=300)  # too old


def test_a_default_webhook_secret_is_random_and_readable():
    first, second = StripeSandbox(quiet=True), StripeSandbox(quiet=True)
    assert first.webhook_secret.startswith("whsec_")
    assert first.webhook_secret != second.webhook_secret


def test_events_are_shaped_like_stripes(sandbox):
    event = sandbox.event("charge.refunded", {"id": "ch_1", "object": "charge"}, created=1_700_000_000)
    assert set(event) == {
        "id", "object", "api_version", "created", "data", "livemode", "pending_webhooks", "request", "type"
    }  # fmt: skip
    assert event["id"].startswith("evt_")
    assert (event["object"], event["created"], event["livemode"]) == ("event", 1_700_000_000, False)
    assert event["api_version"] == stripe.api_version
    assert event["data"] == {"object": {"id": "ch_1", "object": "charge"}}
    assert event["request"] == {"id": None, "idempotency_key": None}


def test_send_event_without_a_webhook_url_is_recorded_as_undelivered(sandbox):
    event = sandbox.send_event("checkout.session.expired", {"id": "cs_test_x"}, created=1_700_000_000)
    (delivery,) = sandbox.deliveries
    assert (delivery.status, delivery.attempts, delivery.url) == ("undelivered", 0, None)
    assert delivery.event == event
    assert event["pending_webhooks"] == 0


# ---------------------------------------------------------------------- the API


def test_create_answers_a_stripe_shaped_open_session(sandbox):
    form = session_form()
    session = create(sandbox)
    assert re.fullmatch(r"cs_test_[A-Za-z0-9]{24}", session["id"])
    assert session["object"] == "checkout.session"
    assert session["amount_total"] == session["amount_subtotal"] == 1999 * 2 + 500
    assert (session["currency"], session["mode"], session["status"]) == ("usd", "payment", "open")
    assert (session["payment_status"], session["payment_intent"], session["livemode"]) == ("unpaid", None, False)
    assert session["metadata"] == {"order_id": "7", "payment_id": "9", "user_id": "1"}
    assert session["client_reference_id"] == "7"
    assert session["url"] == f"{sandbox.base_url}/checkout/{session['id']}"
    assert session["expires_at"] == int(form["expires_at"])
    assert session["success_url"] == form["success_url"]  # the placeholder stays until redirecting
    assert session["cancel_url"] == form["cancel_url"]
    assert abs(session["created"] - time.time()) < 5
    assert sandbox.sessions == {session["id"]: session}


def test_retrieve_answers_the_session_and_404_for_an_unknown_id(sandbox):
    session = create(sandbox)
    assert request(sandbox, "GET", f"/v1/checkout/sessions/{session['id']}").json() == session
    missing = request(sandbox, "GET", "/v1/checkout/sessions/cs_test_nope")
    assert missing.status == 404
    assert missing.json()["error"]["type"] == "invalid_request_error"
    assert missing.json()["error"]["code"] == "resource_missing"


def test_a_public_url_is_the_base_of_checkout_links():
    with StripeSandbox(public_url="https://pay.example.test/", quiet=True) as box:
        session = create(box)
    assert session["url"] == f"https://pay.example.test/checkout/{session['id']}"


@pytest.mark.parametrize(
    ("overrides", "param", "code"),
    [
        ({"mode": None}, "mode", "parameter_missing"),
        ({"mode": "subscription"}, "mode", None),
        ({"success_url": None}, "success_url", "parameter_missing"),
        ({"cancel_url": "not a url"}, "cancel_url", "url_invalid"),
        ({"line_items[0][quantity]": "0"}, "line_items[0][quantity]", None),
        ({"line_items[0][quantity]": None}, "line_items[0][quantity]", "parameter_missing"),
        ({"line_items[1][price_data][unit_amount]": "-1"}, "line_items[1][price_data][unit_amount]", None),
        (
            {"line_items[1][price_data][unit_amount]": "5.5"},
            "line_items[1][price_data][unit_amount]",
            "parameter_invalid_integer",
        ),
        ({"line_items[0][price_data][currency]": None}, "line_items[0][price_data][currency]", "parameter_missing"),
        ({"line_items[1][price_data][currency]": "eur"}, "line_items", None),
        (
            {"line_items[0][price_data][product_data][name]": None},
            "line_items[0][price_data][product_data][name]",
            "parameter_missing",
        ),
        ({"payment_intent_data[metdata][order_id]": "7"}, "payment_intent_data[metdata]", "parameter_unknown"),
        ({"succes_url": "https://x.example"}, "succes_url", "parameter_unknown"),
        ({"metadata[" + "k" * 41 + "]": "v"}, "metadata", None),
        ({"expires_at": "soon"}, "expires_at", "parameter_invalid_integer"),
    ],
)
def test_invalid_parameters_are_stripes_400(sandbox, overrides, param, code):
    answer = request(sandbox, "POST", "/v1/checkout/sessions", session_form(**overrides))
    assert answer.status == 400, answer.text
    error = answer.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert error.get("code") == code
    assert error["message"]
    assert sandbox.sessions == {}


def test_line_items_are_required(sandbox):
    form = {k: v for k, v in session_form().items() if not k.startswith("line_items")}
    answer = request(sandbox, "POST", "/v1/checkout/sessions", form)
    assert answer.status == 400
    assert answer.json()["error"]["param"] == "line_items"


@pytest.mark.parametrize(
    ("expires_in", "ok"), [(29 * 60, False), (31 * 60, True), (23 * 3600, True), (25 * 3600, False)]
)
def test_expires_at_must_be_30_minutes_to_24_hours_away(sandbox, expires_in, ok):
    answer = request(sandbox, "POST", "/v1/checkout/sessions", session_form(expires_in=expires_in))
    assert answer.status == (200 if ok else 400), answer.text
    if not ok:
        assert answer.json()["error"]["param"] == "expires_at"


def test_expires_at_exactly_30_minutes_before_the_request_is_already_too_soon(sandbox):
    # What Stripe does: the bound counts from the session's creation, i.e. when the request arrives.
    answer = request(sandbox, "POST", "/v1/checkout/sessions", session_form(expires_in=30 * 60 - 1))
    assert answer.status == 400


def test_without_expires_at_a_session_lasts_24_hours(sandbox):
    session = create(sandbox, expires_at=None)
    assert session["expires_at"] - session["created"] == 24 * 3600


def test_three_decimal_currencies_are_charged_in_tens(sandbox):
    kwd: dict[str, Any] = {"line_items[0][price_data][currency]": "kwd", "line_items[1][price_data][currency]": "kwd"}
    form = session_form(**kwd)
    assert request(sandbox, "POST", "/v1/checkout/sessions", form).status == 400  # 1999 fils
    form["line_items[0][price_data][unit_amount]"] = "1990"
    assert request(sandbox, "POST", "/v1/checkout/sessions", form).status == 200


def test_expire_turns_an_open_session_expired_once(sandbox):
    session = create(sandbox)
    answer = request(
        sandbox, "POST", f"/v1/checkout/sessions/{session['id']}/expire", headers={"Idempotency-Key": "x1"}
    )
    assert answer.status == 200
    assert (answer.json()["status"], answer.json()["url"]) == ("expired", None)
    (event,) = events(sandbox)
    assert event["type"] == "checkout.session.expired"
    assert event["data"]["object"]["status"] == "expired"
    assert event["request"]["idempotency_key"] == "x1"
    assert event["request"]["id"].startswith("req_")
    again = request(sandbox, "POST", f"/v1/checkout/sessions/{session['id']}/expire")
    assert again.status == 400
    assert again.json()["error"]["type"] == "invalid_request_error"
    assert request(sandbox, "POST", "/v1/checkout/sessions/cs_test_nope/expire").status == 404
    assert len(events(sandbox)) == 1


def test_an_unknown_endpoint_is_stripes_404(sandbox):
    answer = request(sandbox, "POST", "/v1/customers", {"email": "a@b.c"})
    assert answer.status == 404
    assert "Unrecognized request URL (POST: /v1/customers)" in answer.json()["error"]["message"]


@pytest.mark.parametrize("key", [None, "sk_test_wrong_key_123456"])
def test_a_missing_or_wrong_api_key_is_stripes_401(sandbox, key):
    answer = request(sandbox, "POST", "/v1/checkout/sessions", session_form(), key=key)
    assert answer.status == 401
    error = answer.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert KEY not in answer.text
    if key:
        assert key not in answer.text  # masked, as Stripe does
    assert sandbox.sessions == {}


def test_basic_auth_with_the_key_as_user_name_is_accepted_as_stripe_does(sandbox):
    basic = "Basic " + base64.b64encode(f"{KEY}:".encode()).decode()
    answer = request(
        sandbox, "POST", "/v1/checkout/sessions", session_form(), key=None, headers={"Authorization": basic}
    )
    assert answer.status == 200
    wrong = "Basic " + base64.b64encode(b"sk_test_other:").decode()
    assert request(sandbox, "GET", "/v1/checkout/sessions/x", key=None, headers={"Authorization": wrong}).status == 401


def test_without_an_api_key_configured_any_bearer_key_is_accepted():
    with StripeSandbox(quiet=True) as box:
        assert request(box, "POST", "/v1/checkout/sessions", session_form(), key="sk_test_anything").status == 200


def test_requests_are_recorded_with_headers_nested_params_and_raw_body(sandbox):
    form = session_form()
    create(sandbox)
    (recorded,) = sandbox.requests
    assert (recorded.method, recorded.path, recorded.status, recorded.failure) == (
        "POST", "/v1/checkout/sessions", 200, None
    )  # fmt: skip
    assert recorded.header("authorization") == f"Bearer {KEY}"
    assert recorded.body == urlencode(form).encode()
    assert recorded.params["line_items"][1] == {
        "price_data": {"currency": "usd", "product_data": {"name": "Mug (SKU-2)"}, "unit_amount": "500"},
        "quantity": "1",
    }
    assert recorded.params["payment_intent_data"] == {"metadata": {"order_id": "7"}}


# ---------------------------------------------------------------------- idempotency


def test_the_same_key_and_parameters_replay_the_first_answer(sandbox):
    form = session_form()
    first = request(sandbox, "POST", "/v1/checkout/sessions", form, headers={"Idempotency-Key": "k-1"})
    second = request(sandbox, "POST", "/v1/checkout/sessions", form, headers={"Idempotency-Key": "k-1"})
    assert first.status == second.status == 200
    assert second.body == first.body
    assert second.headers.get("idempotent-replayed") == "true"
    assert "idempotent-replayed" not in first.headers
    assert len(sandbox.sessions) == 1


def test_the_same_key_with_other_parameters_is_an_idempotency_error(sandbox):
    form = session_form()
    request(sandbox, "POST", "/v1/checkout/sessions", form, headers={"Idempotency-Key": "k-2"})
    changed = {**form, "line_items[0][quantity]": "3"}
    answer = request(sandbox, "POST", "/v1/checkout/sessions", changed, headers={"Idempotency-Key": "k-2"})
    assert answer.status == 400
    assert answer.json()["error"]["type"] == "idempotency_error"
    assert len(sandbox.sessions) == 1


def test_a_rejected_request_is_not_saved_under_its_key(sandbox):
    bad = session_form(mode=None)
    assert request(sandbox, "POST", "/v1/checkout/sessions", bad, headers={"Idempotency-Key": "k-3"}).status == 400
    good = request(sandbox, "POST", "/v1/checkout/sessions", session_form(), headers={"Idempotency-Key": "k-3"})
    assert good.status == 200


def test_concurrent_duplicates_create_one_session(sandbox):
    form, answers = session_form(), []
    barrier = threading.Barrier(8)

    def post() -> None:
        barrier.wait()
        answers.append(request(sandbox, "POST", "/v1/checkout/sessions", form, headers={"Idempotency-Key": "k-4"}))

    threads = [threading.Thread(target=post) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert {answer.status for answer in answers} == {200}
    assert len({answer.json()["id"] for answer in answers}) == 1
    assert len(sandbox.sessions) == 1


# ---------------------------------------------------------------------- faults


def test_fail_next_500_and_429_answer_stripes_errors_then_recover(sandbox):
    sandbox.fail_next(1, "500")
    sandbox.fail_next(1, "429")
    first = request(sandbox, "POST", "/v1/checkout/sessions", session_form())
    second = request(sandbox, "POST", "/v1/checkout/sessions", session_form())
    assert (first.status, first.json()["error"]["type"]) == (500, "api_error")
    assert (second.status, second.json()["error"]["code"]) == (429, "rate_limit")
    assert "stripe-should-retry" not in first.headers
    assert request(sandbox, "POST", "/v1/checkout/sessions", session_form()).status == 200
    assert [(r.status, r.failure) for r in sandbox.requests] == [(500, "500"), (429, "429"), (200, None)]
    assert len(sandbox.sessions) == 1  # failed requests did nothing


def test_timeout_closes_the_connection_without_an_answer_and_does_nothing(sandbox):
    sandbox.fail_next(1, "timeout")
    with pytest.raises(http.client.RemoteDisconnected):
        request(sandbox, "POST", "/v1/checkout/sessions", session_form(), headers={"Idempotency-Key": "k-5"})
    assert sandbox.sessions == {}
    assert [(r.status, r.failure) for r in sandbox.requests] == [(None, "timeout")]
    assert (
        request(sandbox, "POST", "/v1/checkout/sessions", session_form(), headers={"Idempotency-Key": "k-5"}).status
        == 200
    )


def test_lost_does_the_work_and_drops_the_answer_so_a_retry_replays_it(sandbox):
    form = session_form()
    sandbox.fail_next(1, "lost")
    with pytest.raises(http.client.RemoteDisconnected):
        request(sandbox, "POST", "/v1/checkout/sessions", form, headers={"Idempotency-Key": "k-6"})
    (created,) = sandbox.sessions.values()
    retry = request(sandbox, "POST", "/v1/checkout/sessions", form, headers={"Idempotency-Key": "k-6"})
    assert retry.headers.get("idempotent-replayed") == "true"
    assert retry.json() == created


def test_a_held_timeout_keeps_the_client_waiting_until_its_own_timeout(sandbox):
    sandbox.fail_next(1, "timeout", hold=30)
    url = urlsplit(sandbox.base_url)
    connection = http.client.HTTPConnection(url.hostname or "", url.port, timeout=0.3)
    connection.request("GET", "/v1/checkout/sessions/cs_test_x", headers={"Authorization": f"Bearer {KEY}"})
    with pytest.raises(TimeoutError):
        connection.getresponse()
    connection.close()
    sandbox.recover()  # releases the held connection at once


def test_down_refuses_connections_until_recover_on_the_same_port(sandbox):
    session = create(sandbox)
    base = sandbox.base_url
    sandbox.fail_next(1, "down")
    with pytest.raises(ConnectionRefusedError):
        request(sandbox, "GET", f"/v1/checkout/sessions/{session['id']}")
    sandbox.recover()
    assert sandbox.base_url == base
    assert request(sandbox, "GET", f"/v1/checkout/sessions/{session['id']}").json() == session


def test_an_unknown_failure_mode_is_refused(sandbox):
    with pytest.raises(ValueError, match="unknown failure mode"):
        sandbox.fail_next(1, "slow")


def test_browser_pages_do_not_consume_api_failures(sandbox):
    session = create(sandbox)
    sandbox.fail_next(1, "500")
    assert request(sandbox, "GET", f"/checkout/{session['id']}", key=None).status == 200
    assert request(sandbox, "GET", "/v1/checkout/sessions/" + session["id"]).status == 500


def test_reset_forgets_everything(sandbox):
    create(sandbox)
    sandbox.fail_next(3, "500")
    sandbox.reset()
    assert (sandbox.sessions, sandbox.requests, sandbox.deliveries) == ({}, [], [])
    assert request(sandbox, "POST", "/v1/checkout/sessions", session_form()).status == 200


# ---------------------------------------------------------------------- the checkout page


def test_the_checkout_page_shows_lines_total_and_three_buttons(sandbox):
    session = create(sandbox)
    page = request(sandbox, "GET", f"/checkout/{session['id']}", key=None)
    assert page.status == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "Tee &lt;b&gt;Blue&lt;/b&gt; (SKU-1)" in page.text  # product names are escaped
    assert re.search(r'class="quantity">2<.*class="unit">19\.99 USD<', page.text)
    assert re.search(r'class="quantity">1<.*class="unit">5\.00 USD<', page.text)
    assert 'id="total">44.98 USD<' in page.text
    for button, action in (("pay", "pay"), ("pay-delayed", "pay-delayed"), ("cancel", "cancel")):
        assert f'action="/checkout/{session["id"]}/{action}"' in page.text
        assert f'id="{button}"' in page.text
    assert ">Pay<" in page.text
    assert ">Pay (delayed method)<" in page.text
    assert ">Cancel<" in page.text


def test_the_checkout_page_respects_zero_decimal_currencies(sandbox):
    session = create(
        sandbox,
        **{
            "line_items[0][price_data][currency]": "jpy",
            "line_items[0][price_data][unit_amount]": "1500",
            "line_items[1][price_data][currency]": "jpy",
        },
    )
    page = request(sandbox, "GET", f"/checkout/{session['id']}", key=None).text
    assert 'class="unit">1,500 JPY<' in page
    assert 'id="total">3,500 JPY<' in page


def test_an_unknown_checkout_page_is_404(sandbox):
    assert request(sandbox, "GET", "/checkout/cs_test_nope", key=None).status == 404
    assert request(sandbox, "POST", "/checkout/cs_test_nope/pay", key=None).status == 404


def test_pay_completes_the_session_and_redirects_to_success(sandbox):
    session = create(sandbox)
    answer = request(sandbox, "POST", f"/checkout/{session['id']}/pay", {}, key=None)
    assert answer.status == 303
    assert answer.headers["location"] == f"https://shop.example/paid?session={session['id']}"
    paid = sandbox.session(session["id"])
    assert (paid["status"], paid["payment_status"], paid["url"]) == ("complete", "paid", None)
    assert paid["payment_intent"].startswith("pi_")
    (charge,) = sandbox.charges.values()
    assert charge["id"].startswith("ch_")
    assert (charge["amount"], charge["payment_intent"], charge["refunded"]) == (4498, paid["payment_intent"], False)
    (event,) = events(sandbox)
    assert (event["type"], event["data"]["object"]) == ("checkout.session.completed", paid)


def test_a_session_that_is_not_open_shows_its_state_without_buttons(sandbox):
    session = create(sandbox)
    request(sandbox, "POST", f"/checkout/{session['id']}/cancel", {}, key=None)
    page = request(sandbox, "GET", f"/checkout/{session['id']}", key=None)
    assert page.status == 200
    assert 'data-status="expired"' in page.text
    assert "<button" not in page.text
    again = request(sandbox, "POST", f"/checkout/{session['id']}/pay", {}, key=None)
    assert again.status == 409
    assert "<button" not in again.text
    assert [e["type"] for e in events(sandbox)] == ["checkout.session.expired"]


def test_pay_delayed_shows_processing_until_the_bank_decides(sandbox):
    session = create(sandbox)
    answer = request(sandbox, "POST", f"/checkout/{session['id']}/pay-delayed", {}, key=None)
    assert (answer.status, answer.headers["location"]) == (303, f"/checkout/{session['id']}")
    state = sandbox.session(session["id"])
    assert (state["status"], state["payment_status"]) == ("complete", "unpaid")
    page = request(sandbox, "GET", f"/checkout/{session['id']}", key=None).text
    assert 'data-status="processing"' in page
    assert 'id="bank-confirms"' in page
    assert 'id="bank-declines"' in page
    assert 'id="pay"' not in page
    assert sandbox.charges == {}  # no money yet


def test_concurrent_pay_clicks_complete_the_session_once(sandbox):
    session = create(sandbox)
    barrier, statuses = threading.Barrier(6), []

    def click() -> None:
        barrier.wait()
        statuses.append(request(sandbox, "POST", f"/checkout/{session['id']}/pay", {}, key=None).status)

    threads = [threading.Thread(target=click) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [303, 409, 409, 409, 409, 409]
    assert len(events(sandbox)) == 1
    assert len(sandbox.charges) == 1


def test_refunds_are_bounded_by_what_was_paid(sandbox):
    session = create(sandbox)
    assert request(sandbox, "POST", f"/checkout/{session['id']}/refund", {}, key=None).status == 400  # unpaid
    request(sandbox, "POST", f"/checkout/{session['id']}/pay", {}, key=None)
    assert request(sandbox, "POST", f"/checkout/{session['id']}/refund", {"amount": "5000"}, key=None).status == 400
    assert request(sandbox, "POST", f"/checkout/{session['id']}/refund", {"amount": "98"}, key=None).status == 303
    answer = request(sandbox, "POST", f"/checkout/{session['id']}/refund", {}, key=None)  # the rest
    assert (answer.status, answer.headers["location"]) == (303, "/")
    refunds = [e["data"]["object"] for e in events(sandbox) if e["type"] == "charge.refunded"]
    assert [(c["amount_refunded"], c["refunded"]) for c in refunds] == [(98, False), (4498, True)]
    assert request(sandbox, "POST", f"/checkout/{session['id']}/refund", {}, key=None).status == 400


def test_the_dashboard_lists_sessions_with_links_and_deliveries(sandbox):
    open_one, paid_one = create(sandbox), create(sandbox)
    request(sandbox, "POST", f"/checkout/{paid_one['id']}/pay", {}, key=None)
    page = request(sandbox, "GET", "/", key=None)
    assert page.status == 200
    assert f'href="/checkout/{open_one["id"]}"' in page.text
    assert f'id="refund-{paid_one["id"]}"' in page.text
    assert "checkout.session.completed" in page.text


def test_the_dashboard_can_inject_api_failures(sandbox):
    answer = request(sandbox, "POST", "/_sandbox/fail", {"n": "2", "mode": "500"}, key=None)
    assert answer.status == 303
    assert request(sandbox, "POST", "/v1/checkout/sessions", session_form()).status == 500
    request(sandbox, "POST", "/_sandbox/recover", {}, key=None)
    assert request(sandbox, "POST", "/v1/checkout/sessions", session_form()).status == 200


# ---------------------------------------------------------------------- refunds in part, disputes


def test_several_partial_refunds_each_send_the_cumulative_amount_refunded(sandbox):
    session = create(sandbox)  # 4498 cents
    request(sandbox, "POST", f"/checkout/{session['id']}/pay", {}, key=None)
    first, second = sandbox.refund(session["id"], 1000), sandbox.refund(session["id"], 498)
    last = sandbox.refund(session["id"])  # the rest
    charges = [event["data"]["object"] for event in (first, second, last)]
    assert [event["type"] for event in (first, second, last)] == ["charge.refunded"] * 3
    assert [(c["amount_refunded"], c["refunded"]) for c in charges] == [(1000, False), (1498, False), (4498, True)]
    assert [[r["amount"] for r in c["refunds"]["data"]] for c in charges] == [
        [1000],
        [498, 1000],
        [3000, 498, 1000],
    ]  # newest first
    assert {c["payment_intent"] for c in charges} == {sandbox.session(session["id"])["payment_intent"]}
    with pytest.raises(ValueError, match="refund refused"):
        sandbox.refund(session["id"], 1)


def test_a_dispute_withdraws_the_funds_and_closes_won_with_the_funds_reinstated(sandbox):
    session = create(sandbox)
    request(sandbox, "POST", f"/checkout/{session['id']}/pay", {}, key=None)
    sandbox.refund(session["id"], 498)
    dispute = sandbox.open_dispute(session["id"], reason="product_not_received")
    (charge,) = sandbox.charges.values()
    assert dispute["id"].startswith("dp_")
    assert (dispute["object"], dispute["charge"], dispute["payment_intent"]) == (
        "dispute",
        charge["id"],
        charge["payment_intent"],
    )
    assert (dispute["amount"], dispute["currency"], dispute["status"], dispute["reason"]) == (
        4000,
        "usd",
        "needs_response",
        "product_not_received",
    )  # what was left of the charge
    assert charge["disputed"] is True
    with pytest.raises(ValueError, match="refused"):
        sandbox.refund(session["id"], 1)  # a disputed charge cannot be refunded
    closed = sandbox.close_dispute(session["id"], won=True)
    assert closed["status"] == "won"
    kinds = [(e["type"], e["data"]["object"].get("status")) for e in events(sandbox) if "dispute" in e["type"]]
    assert kinds == [
        ("charge.dispute.created", "needs_response"),
        ("charge.dispute.funds_withdrawn", "needs_response"),
        ("charge.dispute.closed", "won"),
        ("charge.dispute.funds_reinstated", "won"),
    ]
    reinstated = events(sandbox)[-1]["data"]["object"]["balance_transactions"]
    assert [bt["amount"] for bt in reinstated] == [-4000, 4000]
    with pytest.raises(ValueError, match="refused"):
        sandbox.close_dispute(session["id"], won=False)  # closed once


def test_a_lost_dispute_sends_only_its_closing(sandbox):
    session = create(sandbox)
    request(sandbox, "POST", f"/checkout/{session['id']}/pay", {}, key=None)
    sandbox.open_dispute(session["id"])
    sandbox.close_dispute(session["id"], won=False)
    kinds = [(e["type"], e["data"]["object"].get("status")) for e in events(sandbox)][-2:]
    assert kinds == [("charge.dispute.funds_withdrawn", "needs_response"), ("charge.dispute.closed", "lost")]


def test_the_dashboard_refunds_in_part_and_opens_and_closes_disputes(sandbox):
    session = create(sandbox)
    sid = session["id"]
    request(sandbox, "POST", f"/checkout/{sid}/pay", {}, key=None)
    assert request(sandbox, "POST", f"/checkout/{sid}/refund", {"amount": "98"}, key=None).status == 303
    page = request(sandbox, "GET", "/", key=None).text
    assert "refunded in part: 0.98 USD" in page
    assert f'id="refund-{sid}"' in page and f'id="dispute-{sid}"' in page
    assert request(sandbox, "POST", f"/checkout/{sid}/dispute", {}, key=None).status == 303
    page = request(sandbox, "GET", "/", key=None).text
    assert 'data-status="needs_response"' in page and f'id="dispute-lost-{sid}"' in page
    assert f'id="refund-{sid}"' not in page
    assert request(sandbox, "POST", f"/checkout/{sid}/dispute-lost", {}, key=None).status == 303
    assert 'data-status="lost"' in request(sandbox, "GET", "/", key=None).text
    unpaid = create(sandbox)
    assert request(sandbox, "POST", f"/checkout/{unpaid['id']}/dispute", {}, key=None).status == 400


# ---------------------------------------------------------------------- the event log and PaymentIntents


def listed(box: StripeSandbox, query: list[tuple[str, str]] | None = None) -> dict[str, Any]:
    answer = request(box, "GET", "/v1/events" + (f"?{urlencode(query)}" if query else ""))
    assert answer.status == 200, answer.text
    return answer.json()


def test_list_events_is_newest_first_ten_by_default_and_pages_both_ways(sandbox):
    made = [sandbox.event(f"test.event.{n}", {"id": f"obj_{n}"}, created=1_700_000_000 + n // 3) for n in range(25)]
    newest_first = [event["id"] for event in reversed(made)]
    first = listed(sandbox)
    assert (first["object"], first["url"], first["has_more"]) == ("list", "/v1/events", True)
    assert [e["id"] for e in first["data"]] == newest_first[:10]
    second = listed(sandbox, [("limit", "10"), ("starting_after", first["data"][-1]["id"])])
    third = listed(sandbox, [("limit", "10"), ("starting_after", second["data"][-1]["id"])])
    assert [e["id"] for e in second["data"] + third["data"]] == newest_first[10:]
    assert (second["has_more"], third["has_more"]) == (True, False)
    back = listed(sandbox, [("limit", "3"), ("ending_before", third["data"][0]["id"])])
    assert [e["id"] for e in back["data"]] == newest_first[17:20]  # the page just before, still newest first
    assert back["has_more"] is True
    assert listed(sandbox, [("ending_before", newest_first[0])]) == {
        "object": "list",
        "data": [],
        "has_more": False,
        "url": "/v1/events",
    }
    assert len(listed(sandbox, [("limit", "100")])["data"]) == 25


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ([("limit", "0")], "limit"),
        ([("limit", "101")], "limit"),
        ([("limit", "ten")], "limit"),
        ([("starting_after", "evt_nope")], "starting_after"),
        ([("ending_before", "evt_nope")], "ending_before"),
        ([("type", "a.b"), ("types[0]", "a.b")], "types"),
        ([("types[" + str(n) + "]", f"a.{n}") for n in range(21)], "types"),
        ([("created[since]", "1")], "created[since]"),
        ([("delivery_success", "maybe")], "delivery_success"),
        ([("colour", "blue")], "colour"),
    ],
)
def test_list_events_refuses_what_stripe_refuses(sandbox, query, param):
    answer = request(sandbox, "GET", f"/v1/events?{urlencode(query)}")
    assert answer.status == 400, answer.text
    assert answer.json()["error"]["type"] == "invalid_request_error"
    assert answer.json()["error"].get("param") == param


def test_list_events_filters_by_types_type_wildcards_and_created(sandbox):
    kinds = ["charge.refunded", "charge.dispute.created", "checkout.session.completed", "charge.dispute.closed"]
    made = [sandbox.event(kind, {"id": kind}, created=1_700_000_000 + n * 10) for n, kind in enumerate(kinds)]

    def types(query: list[tuple[str, str]]) -> list[str]:
        return [event["type"] for event in listed(sandbox, query)["data"]]

    assert types([("types[0]", "charge.refunded"), ("types[1]", "charge.dispute.closed")]) == [
        "charge.dispute.closed",
        "charge.refunded",
    ]
    assert types([("types[]", "checkout.session.completed")]) == ["checkout.session.completed"]  # `types[]=` too
    assert types([("type", "charge.dispute.*")]) == ["charge.dispute.closed", "charge.dispute.created"]
    assert types([("type", "charge.refunded")]) == ["charge.refunded"]
    assert types([("created[gte]", "1700000010"), ("created[lt]", "1700000030")]) == kinds[2:0:-1]
    assert types([("created[gt]", "1700000010"), ("created[lte]", "1700000030")]) == kinds[3:1:-1]
    assert types([("created", "1700000000")]) == ["charge.refunded"]
    found = request(sandbox, "GET", f"/v1/events/{made[1]['id']}")
    assert (found.status, found.json()) == (200, made[1])
    missing = request(sandbox, "GET", "/v1/events/evt_nope")
    assert (missing.status, missing.json()["error"]["code"]) == (404, "resource_missing")


def test_delivery_success_false_lists_the_events_no_endpoint_acknowledged():
    acknowledged: list[str] = []

    class Receiver(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            ok = body["type"] != "refuse.me"
            if ok:
                acknowledged.append(body["id"])
            self.send_response(200 if ok else 500)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    box = StripeSandbox(api_key=KEY, webhook_url=url, quiet=True, delivery_attempts=2, delivery_backoff=0)
    with box:
        delivered = box.send_event("take.me", {"id": "x"})
        refused = box.send_event("refuse.me", {"id": "y"})
        box.webhooks_paused = True
        lost = box.send_event("lost.while.paused", {"id": "z"})
        box.webhook_url = None
        nowhere = box.send_event("no.endpoint", {"id": "w"})  # no endpoint: nothing is pending for it
        pending = listed(box, [("delivery_success", "false")])["data"]
        assert [e["id"] for e in pending] == [lost["id"], refused["id"]]
        assert [e["pending_webhooks"] for e in pending] == [1, 1]
        done = listed(box, [("delivery_success", "true")])["data"]
        assert [e["id"] for e in done] == [nowhere["id"], delivered["id"]]
        assert acknowledged == [delivered["id"]]
    server.shutdown()


def test_retrieve_expands_the_payment_intent_in_stripes_shape(sandbox):
    session = create(sandbox)
    expand = urlencode([("expand[0]", "payment_intent")])
    unpaid = request(sandbox, "GET", f"/v1/checkout/sessions/{session['id']}?{expand}").json()
    assert unpaid["payment_intent"] is None  # no PaymentIntent before the customer pays
    request(sandbox, "POST", f"/checkout/{session['id']}/pay", {}, key=None)
    paid = request(sandbox, "GET", f"/v1/checkout/sessions/{session['id']}?{expand}").json()
    intent = paid["payment_intent"]
    (charge,) = sandbox.charges.values()
    assert (intent["object"], intent["id"], intent["status"], intent["latest_charge"]) == (
        "payment_intent",
        charge["payment_intent"],
        "succeeded",
        charge["id"],
    )
    assert (intent["amount"], intent["amount_received"], intent["currency"]) == (4498, 4498, "usd")
    assert intent["metadata"] == {"order_id": "7"}  # payment_intent_data[metadata]
    assert sandbox.payment_intent(intent["id"]) == intent
    assert request(sandbox, "GET", f"/v1/payment_intents/{intent['id']}").json() == intent
    plain = request(sandbox, "GET", f"/v1/checkout/sessions/{session['id']}").json()
    assert plain["payment_intent"] == intent["id"]
    bad = request(sandbox, "GET", f"/v1/checkout/sessions/{session['id']}?{urlencode([('expand[0]', 'x')])}")
    assert (bad.status, bad.json()["error"]["param"]) == (400, "expand")
    assert request(sandbox, "GET", "/v1/payment_intents/pi_nope").status == 404


def test_a_delayed_payment_intent_is_processing_then_succeeds_or_needs_a_payment_method(sandbox):
    statuses = []
    for outcome in ("confirm", "decline"):
        session = create(sandbox)
        request(sandbox, "POST", f"/checkout/{session['id']}/pay-delayed", {}, key=None)
        intent = sandbox.session(session["id"])["payment_intent"]
        statuses.append(sandbox.payment_intent(intent)["status"])
        request(sandbox, "POST", f"/checkout/{session['id']}/{outcome}", {}, key=None)
        statuses.append(sandbox.payment_intent(intent)["status"])
    assert statuses == ["processing", "succeeded", "processing", "requires_payment_method"]


def test_stripe_python_lists_and_retrieves_events_and_expands_the_intent(sandbox):
    client = stripe.StripeClient(KEY, base_addresses={"api": sandbox.base_url}, max_network_retries=0)
    session = create(sandbox)
    request(sandbox, "POST", f"/checkout/{session['id']}/pay", {}, key=None)
    sandbox.refund(session["id"], 100)
    page = client.v1.events.list(params={"types": ["charge.refunded", "checkout.session.completed"], "limit": 1})
    assert [e.type for e in page.data] == ["charge.refunded"] and page.has_more
    rest = client.v1.events.list(params={"types": ["charge.refunded"], "starting_after": page.data[0].id})
    assert rest.data == [] and not rest.has_more
    assert client.v1.events.retrieve(page.data[0].id).data.object.amount_refunded == 100
    retrieved = client.v1.checkout.sessions.retrieve(session["id"], params={"expand": ["payment_intent"]})
    assert retrieved.payment_intent.status == "succeeded"


# ---------------------------------------------------------------------- logging and standalone


def test_one_log_line_per_request_without_the_key_or_the_secret(capsys):
    with StripeSandbox(api_key=KEY, webhook_secret=SECRET) as box:
        session = create(box)
        request(box, "POST", f"/checkout/{session['id']}/pay", {}, key=None)
        request(box, "GET", "/v1/checkout/sessions/cs_test_nope")
    err = capsys.readouterr().err
    assert "POST /v1/checkout/sessions -> 200" in err
    assert f"POST /checkout/{session['id']}/pay -> 303" in err
    assert "GET /v1/checkout/sessions/cs_test_nope -> 404" in err
    assert "checkout.session.completed" in err
    assert KEY not in err
    assert SECRET not in err


def test_python_dash_m_serves_the_sandbox_standalone():
    env = {**os.environ, "STRIPE_SANDBOX_PORT": "0", "STRIPE_WEBHOOK_SECRET": SECRET, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-m", "local.stripe_sandbox"], cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        assert process.stderr is not None
        banner = process.stderr.readline() + process.stderr.readline()
        base = re.search(r"Stripe sandbox on (http://\S+)", banner)
        assert base, banner
        url = urlsplit(base.group(1))
        connection = http.client.HTTPConnection(url.hostname or "", url.port, timeout=5)
        connection.request("GET", "/")
        assert connection.getresponse().status == 200
        connection.close()
        assert SECRET not in banner
    finally:
        process.terminate()
        process.wait(timeout=10)
