"""StripeCheckoutGateway (real stripe-python) against the Stripe sandbox, and the sandbox's signed webhooks
verified by stripe-python in a small receiving HTTP server, as our webhook function will verify them."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

import pytest
import stripe

from halum_payments.gateways.stripe_checkout import (
    CheckoutSession,
    LineItem,
    ProviderError,
    SessionRequest,
    StripeCheckoutGateway,
)
from local.stripe_sandbox import StripeSandbox

KEY = "sk_test_gateway_integration_0123"
SECRET = "whsec_integration_" + "w" * 24
SUCCESS = "https://shop.example/orders/paid?session={CHECKOUT_SESSION_ID}"
CANCEL = "https://shop.example/cart"


@dataclass
class Received:
    event: dict[str, Any]
    signature: str
    content_type: str


class Receiver:
    """A webhook endpoint that verifies `Stripe-Signature` with stripe-python, then answers `answers` in turn."""

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.events: list[Received] = []
        self.rejected: list[str] = []
        self.answers: list[int] = []  # statuses to answer next; then 200
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                payload = self.rfile.read(int(self.headers["Content-Length"])).decode()
                signature = self.headers.get("Stripe-Signature", "")
                try:
                    stripe.Webhook.construct_event(payload, signature, receiver.secret, tolerance=300)
                except (stripe.SignatureVerificationError, ValueError) as exc:
                    with receiver._lock:
                        receiver.rejected.append(str(exc))
                    status = 400
                else:
                    with receiver._lock:
                        receiver.events.append(
                            Received(json.loads(payload), signature, self.headers.get("Content-Type", ""))
                        )
                        status = receiver.answers.pop(0) if receiver.answers else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/orders/api/stripe-webhook/"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True).start()

    def types(self) -> list[str]:
        return [received.event["type"] for received in self.events]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    endpoint = Receiver(SECRET)
    yield endpoint
    endpoint.close()


@pytest.fixture
def sandbox(receiver: Receiver) -> Iterator[StripeSandbox]:
    box = StripeSandbox(api_key=KEY, webhook_secret=SECRET, delivery_backoff=0.01, quiet=True)
    box.start()
    box.webhook_url = receiver.url  # may be set after start, as the local server does
    yield box
    box.stop()


@pytest.fixture(autouse=True)
def fast_client_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """stripe-python sleeps 0.5-1 s between retries; the retry logic under test is unchanged."""
    monkeypatch.setattr(stripe.HTTPClient, "INITIAL_DELAY", 0.01)
    monkeypatch.setattr(stripe.HTTPClient, "MAX_DELAY", 0.02)


def gateway(box: StripeSandbox, *, key: str = KEY, timeout: float = 5.0, retries: int = 2) -> StripeCheckoutGateway:
    return StripeCheckoutGateway(key, api_base=box.base_url, timeout=timeout, max_network_retries=retries)


def session_request(
    *, key: str = "halum-checkout-payment-9", quantity: int = 2, currency: str = "usd"
) -> SessionRequest:
    return SessionRequest(
        currency=currency,
        line_items=(LineItem("Tee (SKU-1)", 1999, quantity), LineItem("Mug (SKU-2)", 500, 1)),
        metadata={"order_id": "7", "payment_id": "9", "user_id": "1"},
        client_reference_id="7",
        success_url=SUCCESS,
        cancel_url=CANCEL,
        expires_at=int(time.time()) + 3600,
        idempotency_key=key,
    )


# ---------------------------------------------------------------------- the API through stripe-python


def test_create_retrieve_expire_round_trip(sandbox, receiver):
    client = gateway(sandbox)
    created = client.create_session(session_request())
    assert created.id.startswith("cs_test_")
    assert created.url == f"{sandbox.public_url}/checkout/{created.id}"
    assert (created.status, created.payment_status, created.payment_intent) == ("open", "unpaid", None)
    assert (created.amount_total, created.currency) == (1999 * 2 + 500, "usd")
    assert created.metadata == {"order_id": "7", "payment_id": "9", "user_id": "1"}
    assert client.retrieve_session(created.id) == created
    client.expire_session(created.id)
    expired = client.retrieve_session(created.id)
    assert (expired.status, expired.url) == ("expired", None)
    (received,) = receiver.events
    assert received.event["type"] == "checkout.session.expired"
    assert received.event["data"]["object"]["id"] == created.id
    client.expire_session(created.id)  # Stripe's 400 for a session no longer open: logged, not raised
    assert len(receiver.events) == 1


def test_retrieving_an_unknown_session_is_rejected(sandbox):
    with pytest.raises(ProviderError) as raised:
        gateway(sandbox).retrieve_session("cs_test_missing")
    assert raised.value.kind == "rejected"


def test_the_exact_form_fields_stripe_python_sends_arrive_parsed(sandbox):
    request = session_request()
    gateway(sandbox).create_session(request)
    (recorded,) = sandbox.requests
    metadata = {"order_id": "7", "payment_id": "9", "user_id": "1"}
    assert recorded.params == {
        "mode": "payment",
        "line_items": [
            {
                "price_data": {"currency": "usd", "product_data": {"name": "Tee (SKU-1)"}, "unit_amount": "1999"},
                "quantity": "2",
            },
            {
                "price_data": {"currency": "usd", "product_data": {"name": "Mug (SKU-2)"}, "unit_amount": "500"},
                "quantity": "1",
            },
        ],
        "metadata": metadata,
        "payment_intent_data": {"metadata": metadata},
        "client_reference_id": "7",
        "success_url": SUCCESS,
        "cancel_url": CANCEL,
        "expires_at": str(request.expires_at),
    }
    fields = [name for name, _ in parse_qsl(recorded.body.decode())]
    assert "line_items[1][price_data][product_data][name]" in fields
    assert "payment_intent_data[metadata][payment_id]" in fields
    assert len(fields) == len(set(fields)) == 19  # 1 + 2 x 4 + 3 + 3 + 4
    assert recorded.header("Content-Type") == "application/x-www-form-urlencoded"
    assert recorded.header("Authorization") == f"Bearer {KEY}"
    assert recorded.header("Idempotency-Key") == request.idempotency_key
    assert recorded.header("Stripe-Version") == stripe.api_version


def test_an_idempotent_retry_returns_the_same_session(sandbox):
    client, request = gateway(sandbox), session_request()  # one request: expires_at is a parameter too
    first = client.create_session(request)
    again = client.create_session(request)
    assert again == first
    assert len(sandbox.sessions) == 1


def test_the_same_key_with_changed_parameters_is_rejected(sandbox):
    client = gateway(sandbox)
    client.create_session(session_request())
    with pytest.raises(ProviderError) as raised:
        client.create_session(session_request(quantity=3))
    assert raised.value.kind == "rejected"
    assert isinstance(raised.value.__cause__, stripe.IdempotencyError)
    assert len(sandbox.sessions) == 1


def test_invalid_parameters_are_rejected(sandbox):
    too_soon = replace(session_request(), expires_at=int(time.time()) + 600)  # Stripe wants 30 minutes at least
    with pytest.raises(ProviderError) as raised:
        gateway(sandbox).create_session(too_soon)
    assert raised.value.kind == "rejected"
    assert isinstance(raised.value.__cause__, stripe.InvalidRequestError)
    assert sandbox.sessions == {}


def test_a_wrong_api_key_is_rejected(sandbox):
    with pytest.raises(ProviderError) as raised:
        gateway(sandbox, key="sk_test_not_the_right_key_999").create_session(session_request())
    assert raised.value.kind == "rejected"
    assert isinstance(raised.value.__cause__, stripe.AuthenticationError)
    assert sandbox.sessions == {}


def test_two_500s_are_absorbed_by_stripe_pythons_retries(sandbox):
    sandbox.fail_next(2, "500")
    session = gateway(sandbox, retries=2).create_session(session_request())
    assert session.status == "open"
    attempts = sandbox.requests
    assert [r.status for r in attempts] == [500, 500, 200]
    assert {r.header("Idempotency-Key") for r in attempts} == {"halum-checkout-payment-9"}  # one key across retries


def test_five_500s_surface_as_unavailable_after_three_attempts(sandbox):
    sandbox.fail_next(5, "500")
    with pytest.raises(ProviderError) as raised:
        gateway(sandbox, retries=2).create_session(session_request())
    assert raised.value.kind == "unavailable"
    assert len(sandbox.requests) == 3
    sandbox.recover()  # drops the two failures left
    assert gateway(sandbox).create_session(session_request()).status == "open"


def test_a_429_surfaces_as_unavailable(sandbox):
    sandbox.fail_next(1, "429")
    with pytest.raises(ProviderError) as raised:
        gateway(sandbox).create_session(session_request())
    assert raised.value.kind == "unavailable"
    assert len(sandbox.requests) == 1  # stripe-python retries a 429 only when Stripe-Should-Retry says so


def test_stripe_down_surfaces_as_timeout_quickly(sandbox):
    sandbox.fail_next(1, "down")
    started = time.monotonic()
    with pytest.raises(ProviderError) as raised:
        gateway(sandbox, timeout=1.0, retries=0).create_session(session_request())
    assert raised.value.kind == "timeout"
    assert time.monotonic() - started < 1.0
    sandbox.recover()
    assert gateway(sandbox).create_session(session_request()).status == "open"


@pytest.mark.parametrize("hold", [0.0, 3.0], ids=["closed-without-answer", "read-timeout"])
def test_a_stripe_timeout_surfaces_as_timeout_quickly(sandbox, hold):
    sandbox.fail_next(1, "timeout", hold=hold)
    started = time.monotonic()
    try:
        with pytest.raises(ProviderError) as raised:
            gateway(sandbox, timeout=1.0, retries=0).create_session(session_request())
    finally:
        assert time.monotonic() - started < 2.0
        sandbox.recover()  # releases a held connection
    assert raised.value.kind == "timeout"


@pytest.mark.parametrize("mode", ["timeout", "lost"])
def test_a_dropped_connection_is_retried_with_the_same_idempotency_key(sandbox, mode):
    sandbox.fail_next(1, mode)
    session = gateway(sandbox, timeout=1.0, retries=2).create_session(session_request())
    assert session.status == "open"
    creates = [r for r in sandbox.requests if r.method == "POST" and r.path == "/v1/checkout/sessions"]
    assert len(creates) == 2
    assert {r.header("Idempotency-Key") for r in creates} == {"halum-checkout-payment-9"}
    assert len(sandbox.sessions) == 1  # "lost": the first attempt's session is the one replayed


# ---------------------------------------------------------------------- the checkout page's signed events


def open_session(sandbox: StripeSandbox, key: str = "halum-checkout-payment-9") -> CheckoutSession:
    return gateway(sandbox).create_session(session_request(key=key))


def test_pay_delivers_a_signed_completed_event_then_redirects_to_success(sandbox, receiver):
    session = open_session(sandbox)
    status, location = sandbox.submit(f"/checkout/{session.id}/pay")
    assert (status, location) == (303, f"https://shop.example/orders/paid?session={session.id}")
    (received,) = receiver.events  # delivered before the redirect: no waiting
    assert received.content_type.startswith("application/json")
    assert received.signature.startswith("t=")
    event = received.event
    assert (event["type"], event["object"], event["livemode"]) == ("checkout.session.completed", "event", False)
    assert event["id"].startswith("evt_")
    assert event["pending_webhooks"] == 1
    obj = event["data"]["object"]
    assert (obj["id"], obj["object"], obj["status"], obj["payment_status"]) == (
        session.id, "checkout.session", "complete", "paid"
    )  # fmt: skip
    assert obj["payment_intent"].startswith("pi_")
    assert (obj["amount_total"], obj["currency"], obj["client_reference_id"]) == (4498, "usd", "7")
    assert obj["metadata"] == {"order_id": "7", "payment_id": "9", "user_id": "1"}
    assert gateway(sandbox).retrieve_session(session.id).payment_intent == obj["payment_intent"]
    (delivery,) = sandbox.deliveries
    assert (delivery.status, delivery.attempts, delivery.responses) == ("delivered", 1, [200])
    assert receiver.rejected == []


def test_pay_delayed_then_bank_confirms(sandbox, receiver):
    session = open_session(sandbox)
    assert sandbox.submit(f"/checkout/{session.id}/pay-delayed") == (303, f"/checkout/{session.id}")
    completed = receiver.events[0].event["data"]["object"]
    assert (completed["status"], completed["payment_status"]) == ("complete", "unpaid")
    assert completed["payment_intent"].startswith("pi_")
    status, location = sandbox.submit(f"/checkout/{session.id}/confirm")
    assert (status, location) == (303, f"https://shop.example/orders/paid?session={session.id}")
    assert receiver.types() == ["checkout.session.completed", "checkout.session.async_payment_succeeded"]
    succeeded = receiver.events[1].event["data"]["object"]
    assert (succeeded["id"], succeeded["status"], succeeded["payment_status"]) == (session.id, "complete", "paid")
    assert succeeded["payment_intent"] == completed["payment_intent"]
    assert sandbox.submit(f"/checkout/{session.id}/decline")[0] == 409  # decided already


def test_pay_delayed_then_bank_declines(sandbox, receiver):
    session = open_session(sandbox)
    sandbox.submit(f"/checkout/{session.id}/pay-delayed")
    assert sandbox.submit(f"/checkout/{session.id}/decline") == (303, CANCEL)
    assert receiver.types() == ["checkout.session.completed", "checkout.session.async_payment_failed"]
    failed = receiver.events[1].event["data"]["object"]
    assert (failed["id"], failed["status"], failed["payment_status"]) == (session.id, "complete", "unpaid")
    assert failed["metadata"]["payment_id"] == "9"
    assert sandbox.charges == {}


def test_cancel_expires_the_session_and_redirects_to_cancel(sandbox, receiver):
    session = open_session(sandbox)
    assert sandbox.submit(f"/checkout/{session.id}/cancel") == (303, CANCEL)
    (received,) = receiver.events
    obj = received.event["data"]["object"]
    assert (received.event["type"], obj["id"], obj["status"], obj["payment_status"]) == (
        "checkout.session.expired", session.id, "expired", "unpaid"
    )  # fmt: skip
    assert gateway(sandbox).retrieve_session(session.id).status == "expired"


def test_partial_then_full_refund_deliver_charge_refunded(sandbox, receiver):
    session = open_session(sandbox)
    sandbox.submit(f"/checkout/{session.id}/pay")
    intent = receiver.events[0].event["data"]["object"]["payment_intent"]
    assert sandbox.submit(f"/checkout/{session.id}/refund", {"amount": "1000"}) == (303, "/")
    assert sandbox.submit(f"/checkout/{session.id}/refund") == (303, "/")
    assert receiver.types() == ["checkout.session.completed", "charge.refunded", "charge.refunded"]
    partial, full = (received.event["data"]["object"] for received in receiver.events[1:])
    for charge in (partial, full):
        assert charge["id"].startswith("ch_")
        assert (charge["object"], charge["amount"], charge["currency"]) == ("charge", 4498, "usd")
        assert (charge["payment_intent"], charge["metadata"]) == (
            intent,
            {"order_id": "7", "payment_id": "9", "user_id": "1"},
        )
    assert (partial["amount_refunded"], partial["refunded"]) == (1000, False)
    assert (full["amount_refunded"], full["refunded"]) == (4498, True)
    assert partial["id"] == full["id"]


def test_a_failing_receiver_gets_three_signed_attempts(sandbox, receiver):
    receiver.answers = [500, 503, 500]
    session = open_session(sandbox)
    assert sandbox.submit(f"/checkout/{session.id}/pay")[0] == 303
    assert len(receiver.events) == 3
    assert len({received.event["id"] for received in receiver.events}) == 1  # the same event, redelivered
    (delivery,) = sandbox.deliveries
    assert (delivery.status, delivery.attempts, delivery.responses) == ("failed", 3, [500, 503, 500])


def test_a_receiver_that_recovers_gets_the_event_on_a_retry(sandbox, receiver):
    receiver.answers = [500]
    event = sandbox.send_event("checkout.session.expired", {"id": "cs_test_x", "object": "checkout.session"})
    assert [received.event for received in receiver.events] == [event, event]
    (delivery,) = sandbox.deliveries
    assert (delivery.status, delivery.attempts, delivery.responses) == ("delivered", 2, [500, 200])


def test_an_unreachable_webhook_is_attempted_three_times(sandbox, receiver):
    receiver.close()  # nothing listens there any more
    event = sandbox.send_event("checkout.session.expired", {"id": "cs_test_x"})
    (delivery,) = sandbox.deliveries
    assert (delivery.event, delivery.status, delivery.attempts) == (event, "failed", 3)
    assert all(isinstance(response, str) for response in delivery.responses)  # connection errors, by name


def test_events_signed_with_another_secret_fail_verification(sandbox, receiver):
    sandbox.webhook_secret = "whsec_" + "0" * 32
    sandbox.send_event("checkout.session.completed", {"id": "cs_test_x"})
    assert receiver.events == []
    assert len(receiver.rejected) == 3  # 400 each time: Stripe would retry too


def test_expiring_a_session_says_what_is_known_about_its_money(sandbox, monkeypatch):
    """The session as it is once no longer open: `paid` (money to refund, with its PaymentIntent),
    `closed` (nobody can pay it any more), or neither (a delayed method is processing: money may
    still come); None when Stripe cannot say whether a closed session was paid."""
    client = gateway(sandbox, retries=0)
    open_ = open_session(sandbox, key="expire-open")
    paid = open_session(sandbox, key="expire-paid")
    processing = open_session(sandbox, key="expire-processing")
    sandbox.submit(f"/checkout/{paid.id}/pay")
    sandbox.submit(f"/checkout/{processing.id}/pay-delayed")

    def fate(session: Any) -> tuple[bool, bool, str | None]:
        return session.paid, session.closed, session.payment_intent

    assert fate(client.expire_session(open_.id)) == (False, True, None)
    assert fate(client.expire_session(open_.id)) == (False, True, None)  # already expired: refused, then looked up
    assert fate(client.expire_session(paid.id)) == (True, False, sandbox.session(paid.id)["payment_intent"])
    assert fate(client.expire_session(processing.id))[:2] == (False, False)

    def unreachable(session_id: str) -> Any:
        raise ProviderError("timeout", "Stripe could not be reached")

    monkeypatch.setattr(client, "retrieve_session", unreachable)
    assert client.expire_session(paid.id) is None  # refused as closed, then no answer (seed 114: was a 500)
    still_open = open_session(sandbox, key="expire-down")
    sandbox.fail_next(1, "500")
    assert client.expire_session(still_open.id) is None  # Stripe down: the session may still be open
