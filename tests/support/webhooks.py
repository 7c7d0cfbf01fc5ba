"""Webhook test helpers: signing deliveries (Stripe, generic gateway), invoking the handlers, real
Stripe checkouts against the local Stripe stand-in, and capturing every log line and EMF metric a
handler prints (what settlement stored: support.tables.Store)."""

from __future__ import annotations

import copy
import hashlib
import hmac
import io
import json
import logging
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from types import ModuleType
from typing import Any

from support import PAYMENT_WEBHOOK_SECRET, STRIPE_WEBHOOK_SECRET, Reply, call
from support.environments import run_together

STRIPE_KEY = "sk_test_webhooks_0123456789"  # the Stripe stand-in's API key (not a webhook secret)
STRIPE_PATH = "/orders/api/stripe-webhook/"
GATEWAY_PATH = "/orders/api/payment-webhook/"
JSON = "application/json; charset=utf-8"

# ---------------------------------------------------------------------- signing and sending


def stripe_header(payload: str, secret: str = STRIPE_WEBHOOK_SECRET, timestamp: int | None = None) -> str:
    import stripe

    stamp = int(time.time()) if timestamp is None else timestamp
    return stripe.WebhookSignature.generate_signature_header(payload, secret, timestamp=stamp)


def stripe_payload(event: dict[str, Any] | str) -> str:
    return event if isinstance(event, str) else json.dumps(event, indent=2)  # as Stripe sends it


def send_stripe(
    module: ModuleType,
    event: dict[str, Any] | str,
    *,
    secret: str = STRIPE_WEBHOOK_SECRET,
    header: str | None = None,
    signed: bool = True,
    binary: bool = False,
) -> Reply:
    """POST one Stripe delivery to the Function URL handler. `binary` sends the body as bytes that
    the Function URL base64-encodes (isBase64Encoded), as it does for non-text content types."""
    payload = stripe_payload(event)
    headers = {"content-type": "application/octet-stream" if binary else JSON}
    if header is not None:
        headers["stripe-signature"] = header
    elif signed:
        headers["stripe-signature"] = stripe_header(payload, secret)
    body: str | bytes = payload.encode() if binary else payload
    return call(module, "POST", STRIPE_PATH, headers=headers, body=body, function_url=True)


def gateway_signature(body: str | bytes, secret: str = PAYMENT_WEBHOOK_SECRET) -> str:
    raw = body.encode() if isinstance(body, str) else body
    return hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()


def send_gateway(
    module: ModuleType,
    body: dict[str, Any] | str,
    *,
    secret: str = PAYMENT_WEBHOOK_SECRET,
    signature: str | None = None,
    signed: bool = True,
) -> Reply:
    raw = body if isinstance(body, str) else json.dumps(body)
    headers = {"content-type": "application/json"}
    if signature is not None:
        headers["x-webhook-signature"] = signature
    elif signed:
        headers["x-webhook-signature"] = gateway_signature(raw, secret)
    return call(module, "POST", GATEWAY_PATH, headers=headers, body=raw)


def concurrently(n: int, fn: Callable[[int], Reply]) -> list[Reply]:
    """Run `fn(i)` in `n` threads released together (see support.environments); every thread's
    reply (an exception is re-raised)."""
    replies = run_together([lambda i=i: fn(i) for i in range(n)], timeout=60)
    assert all(isinstance(reply, Reply) for reply in replies), replies
    return replies


# ---------------------------------------------------------------------- Stripe checkouts


class StripeShop:
    """Real checkouts (our checkout service + stripe-python) against the Stripe stand-in, whose
    customer actions (pay, pay-delayed, confirm, decline, cancel, refund) give back the events
    Stripe would send; nothing is delivered by the stand-in itself."""

    def __init__(self, sandbox: Any, settings: Any, client: Any) -> None:
        from halum_payments import wiring
        from halum_payments.gateways.stripe_checkout import StripeCheckoutGateway

        self.sandbox = sandbox
        gateway = StripeCheckoutGateway(STRIPE_KEY, api_base=sandbox.base_url, timeout=5.0, max_network_retries=0)
        self.checkout = wiring.stripe_checkout(settings, gateway, client)

    def from_cart(self, user: int = 1, address: int = 1) -> dict[str, Any]:
        started = self.checkout.from_cart(user, address)
        return self.sandbox.session(started.session_id)

    def for_order(self, user: int, order: int) -> dict[str, Any]:
        started = self.checkout.for_order(user, order)
        return self.sandbox.session(started.session_id)

    def act(
        self, session: dict[str, Any] | str, action: str, form: dict[str, str] | None = None
    ) -> list[dict[str, Any]]:
        """Press a button on the stand-in's checkout page (or refund from its dashboard); the events it produced."""
        session_id = session if isinstance(session, str) else session["id"]
        before = len(self.sandbox.deliveries)
        status, _ = self.sandbox.submit(f"/checkout/{session_id}/{action}", form)
        assert status == 303, f"{action} on {session_id}: {status}"
        return [delivery.event for delivery in self.sandbox.deliveries[before:]]

    def event(self, type_: str, obj: dict[str, Any]) -> dict[str, Any]:
        return self.sandbox.event(type_, obj)


def ids(session: dict[str, Any]) -> tuple[int, int]:
    """(order id, payment id) our checkout put in the session's metadata."""
    return int(session["metadata"]["order_id"]), int(session["metadata"]["payment_id"])


def paid(session: dict[str, Any], intent: str = "pi_test_late0001", **changes: Any) -> dict[str, Any]:
    """The session as Stripe shows it once paid (for sessions the stand-in no longer lets us pay)."""
    obj = copy.deepcopy(session)
    obj.update(status="complete", payment_status="paid", payment_intent=intent, url=None, **changes)
    return obj


def with_object(event: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A copy of `event` whose data.object has `changes` (the same event id)."""
    changed = copy.deepcopy(event)
    changed["data"]["object"].update(changes)
    return changed


def minor(amount: str | Decimal) -> int:
    return int(Decimal(amount) * 100)


# ---------------------------------------------------------------------- logs and metrics


class Output:
    """Everything the handlers print: Powertools log lines and EMF metric blobs, plus stdlib log records."""

    def __init__(self, capsys: Any, caplog: Any) -> None:
        self._capsys = capsys
        self._caplog = caplog
        self._text: list[str] = []

    def _drain(self) -> None:
        captured = self._capsys.readouterr()
        self._text.append(captured.out)
        self._text.append(captured.err)

    @property
    def text(self) -> str:
        self._drain()
        phases = [*self._caplog.get_records("setup"), *self._caplog.get_records("call"), *self._caplog.records]
        records = "\n".join(f"{r.name} {r.levelname} {r.getMessage()} {r.__dict__}" for r in phases)
        return "".join(self._text) + "\n" + records

    def lines(self) -> list[dict[str, Any]]:
        parsed = []
        for raw in self.text.splitlines():
            line = raw.strip()
            if line.startswith("{"):
                try:
                    parsed.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
        return parsed

    def logs(self) -> list[dict[str, Any]]:
        return [line for line in self.lines() if "_aws" not in line]

    def errors(self) -> list[str]:
        return [str(line.get("message")) for line in self.logs() if line.get("level") == "ERROR"]

    def metrics(self) -> Counter[str]:
        """Metric name -> total value over every EMF blob printed so far."""
        totals: Counter[str] = Counter()
        for blob in self.lines():
            if "_aws" not in blob:
                continue
            for directive in blob["_aws"]["CloudWatchMetrics"]:
                for metric in directive["Metrics"]:
                    value = blob[metric["Name"]]
                    totals[metric["Name"]] += int(sum(value) if isinstance(value, list) else value)
        return totals

    def clear(self) -> None:
        self._drain()
        self._text.clear()
        self._caplog.clear()


class _CurrentStdout:
    """Writes to whatever sys.stdout is at the time: pytest swaps capsys's stream between phases."""

    def write(self, text: str) -> int:
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()


@contextmanager
def captured_output(capsys: Any, caplog: Any, *, level: int = logging.INFO) -> Iterator[Output]:
    """Route the Powertools logger (bound to the stdout of its import time) into capsys, at `level`."""
    from halum_payments.observability import logger

    handler = logger.logger_handler
    previous_stream = getattr(handler, "stream", None)
    previous_level = logger.log_level
    handler.stream = _CurrentStdout()
    logger.setLevel(level)
    caplog.set_level(level)
    try:
        yield Output(capsys, caplog)
    finally:
        handler.stream = previous_stream if previous_stream is not None else io.StringIO()
        logger.setLevel(previous_level)
