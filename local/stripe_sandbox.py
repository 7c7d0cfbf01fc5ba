"""A local stand-in for the few Stripe endpoints we use, with a checkout page and signed webhooks.

Tests start it in-process on an ephemeral port and point stripe-python at it (`api_base`);
`make run` serves it on STRIPE_SANDBOX_PORT so a developer can pay, pay with a delayed method,
cancel, refund (in part, several times) and open a dispute (then close it won or lost) without a
Stripe account or internet, each action sending the signed events `stripe listen` would forward
(the dashboard's buttons, or `refund()`, `open_dispute()`, `close_dispute()` from Python).
Standalone: `python -m local.stripe_sandbox`.

It behaves like Stripe where our code depends on it: form-encoded bracket params, Bearer auth,
the Stripe error JSON and statuses, idempotency keys (replay / idempotency_error), `expires_at`
bounds, `url` only while a session is open, `expand[]=payment_intent` on a session, the event log
(`GET /v1/events` with its filters and paging, `GET /v1/events/{id}`: every event it created,
whether or not it was delivered), and `Stripe-Signature: t=...,v1=...` webhooks. Its Checkout
Sessions, PaymentIntents, Charges (with their Refunds), Disputes and Events carry every field
Stripe sends for such an object, null where Stripe sends null (a test holds them to Stripe's
published shapes: see
tests/tooling/test_stripe_shapes.py), so a service tested against it cannot come to depend on a field
Stripe does not send, nor miss one it does.
Stdlib only, so the local server can import it without extra dependencies.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import html
import http.client
import json
import operator
import os
import re
import secrets
import string
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

API_VERSION = "2026-10-28.endive"  # the version stripe-python 16 pins
DEFAULT_PORT = 12111
FailureMode = Literal["500", "429", "timeout", "lost", "down"]
FAILURE_MODES: tuple[str, ...] = ("500", "429", "timeout", "lost", "down")
# Stripe's currencies without minor units, and those with three decimals.
ZERO_DECIMAL = frozenset(
    {"bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv", "xaf", "xof", "xpf"}
)
THREE_DECIMAL = frozenset({"bhd", "jod", "kwd", "omr", "tnd"})
MIN_EXPIRY_SECONDS, MAX_EXPIRY_SECONDS = 30 * 60, 24 * 60 * 60
MAX_BODY = 1 << 20
_ALPHABET = string.ascii_letters + string.digits

# Parameters Stripe accepts (the common ones): like Stripe, anything else is rejected, so a typo
# in a nested name (payment_intent_data[metdata]) fails here instead of being silently dropped.
_SESSION_PARAMS = frozenset(
    {
        "after_expiration", "allow_promotion_codes", "automatic_tax", "billing_address_collection", "cancel_url",
        "client_reference_id", "consent_collection", "currency", "custom_fields", "custom_text", "customer",
        "customer_creation", "customer_email", "customer_update", "discounts", "expand", "expires_at",
        "invoice_creation", "line_items", "locale", "metadata", "mode", "payment_intent_data",
        "payment_method_collection", "payment_method_configuration", "payment_method_options",
        "payment_method_types", "phone_number_collection", "redirect_on_completion", "return_url",
        "saved_payment_method_options", "shipping_address_collection", "shipping_options", "submit_type",
        "success_url", "tax_id_collection", "ui_mode",
    }
)  # fmt: skip
_LINE_ITEM_PARAMS = frozenset(
    {"price", "price_data", "quantity", "adjustable_quantity", "dynamic_tax_rates", "tax_rates"}
)
_PRICE_DATA_PARAMS = frozenset(
    {"currency", "product", "product_data", "unit_amount", "unit_amount_decimal", "recurring", "tax_behavior"}
)
_PRODUCT_DATA_PARAMS = frozenset({"name", "description", "images", "metadata", "tax_code", "unit_label"})
_PAYMENT_INTENT_PARAMS = frozenset(
    {
        "application_fee_amount", "capture_method", "description", "metadata", "on_behalf_of", "receipt_email",
        "setup_future_usage", "shipping", "statement_descriptor", "statement_descriptor_suffix", "transfer_data",
        "transfer_group",
    }
)  # fmt: skip


_EVENT_LIST_PARAMS = frozenset(
    {"created", "delivery_success", "ending_before", "expand", "limit", "starting_after", "type", "types"}
)
_RANGE = {"gt": operator.gt, "gte": operator.ge, "lt": operator.lt, "lte": operator.le}


def _new_id(prefix: str) -> str:
    return prefix + "".join(secrets.choice(_ALPHABET) for _ in range(24))


def minor_unit_digits(currency: str) -> int:
    currency = currency.lower()
    return 0 if currency in ZERO_DECIMAL else 3 if currency in THREE_DECIMAL else 2


def format_amount(amount: int, currency: str) -> str:
    """`202350, "usd"` -> `2,023.50 USD`; `1500, "jpy"` -> `1,500 JPY`."""
    digits = minor_unit_digits(currency)
    return f"{Decimal(amount).scaleb(-digits):,.{digits}f} {currency.upper()}"


def sign_payload(payload: str, secret: str, timestamp: int | None = None) -> str:
    """The `Stripe-Signature` header Stripe sends (what stripe.WebhookSignature generates)."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{timestamp}.{payload}".encode(), hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


class StripeApiError(Exception):
    """An error answered in Stripe's shape: `{"error": {"type", "message", "code"?, "param"?}}`."""

    def __init__(
        self, status: int, type_: str, message: str, *, code: str | None = None, param: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body: dict[str, Any] = {"type": type_, "message": message}
        if code:
            self.body["code"] = code
        if param:
            self.body["param"] = param


def _invalid(message: str, param: str | None = None, code: str | None = None) -> StripeApiError:
    return StripeApiError(400, "invalid_request_error", message, code=code, param=param)


def parse_form(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Bracket-notation form pairs into nested data: `a[b][0][c]=1` -> `{"a": {"b": [{"c": "1"}]}}`.

    Values stay strings, as Stripe receives them; dicts keyed 0..n-1 become lists.
    """
    root: dict[str, Any] = {}
    for key, value in pairs:
        head, bracket, rest = key.partition("[")
        path = [head, *rest[:-1].split("][")] if bracket and rest.endswith("]") else [key]
        node = root
        for depth, name in enumerate(path):
            segment = name or str(len(node))  # `a[]=x` appends
            if depth == len(path) - 1:
                if isinstance(node.get(segment), dict):
                    raise _invalid(f"Invalid hash: {key}", param=key)
                node[segment] = value
            else:
                child = node.setdefault(segment, {})
                if not isinstance(child, dict):
                    raise _invalid(f"Invalid hash: {key}", param=key)
                node = child
    return _listify(root)


def _listify(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    converted = {key: _listify(value) for key, value in node.items()}
    if converted and set(converted) == {str(i) for i in range(len(converted))}:
        return [converted[str(i)] for i in range(len(converted))]
    return converted


@dataclass
class RecordedRequest:
    """One API request as the sandbox received it (and what it answered)."""

    method: str
    path: str
    headers: dict[str, str]
    params: dict[str, Any]
    body: bytes
    status: int | None = None  # None: the connection was dropped without an answer
    failure: str | None = None  # the injected failure mode, if any

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers.items() if k.lower() == name.lower()), None)


@dataclass
class Delivery:
    """One event's webhook delivery: `delivered`, `failed` (after every attempt) or `undelivered` (no URL,
    or webhooks paused: the event is lost, as when an endpoint is down past Stripe's retries)."""

    event: dict[str, Any]
    url: str | None
    status: Literal["delivered", "failed", "undelivered"]
    attempts: int
    responses: list[int | str] = field(default_factory=list)  # per attempt: HTTP status or error name


@dataclass
class _Session:
    obj: dict[str, Any]  # the Stripe-shaped checkout.session
    lines: list[dict[str, Any]]  # name, quantity, unit_amount, currency: for the page
    delayed: Literal["processing", "succeeded", "failed"] | None = None
    charge: dict[str, Any] | None = None
    intent_metadata: dict[str, str] = field(default_factory=dict)  # Stripe copies it onto the charge
    dispute: dict[str, Any] | None = None  # the charge's dispute, once the cardholder opens one
    paid_at: int | None = None  # when the PaymentIntent was confirmed


@dataclass
class _Reply:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class _Saved:
    """An idempotent result: what Stripe replays for the same key and parameters."""

    endpoint: str
    fingerprint: str
    status: int
    body: bytes


# A customer's or the dashboard's action: the events it causes and where the browser goes next,
# or the page refusing it.
_Done = tuple[list[dict[str, Any]], str] | _Reply


def _json_reply(status: int, data: Any, **headers: str) -> _Reply:
    return _Reply(status, json.dumps(data, indent=2).encode(), headers=dict(headers))


def _redirect(location: str) -> _Reply:
    return _Reply(303, b"", "text/plain", {"Location": location})


class StripeSandbox:
    """A thread-safe Stripe stand-in: checkout sessions API, checkout page, signed webhooks, faults."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        api_key: str | None = None,
        webhook_url: str | None = None,
        webhook_secret: str | None = None,
        public_url: str | None = None,
        delivery_attempts: int = 3,
        delivery_backoff: float = 0.05,
        delivery_timeout: float = 10.0,
        quiet: bool = False,
    ) -> None:
        self.host = host
        self.port = port
        self.api_key = api_key
        # A random secret by default: readable by the test that has to verify signatures.
        self.webhook_secret = webhook_secret or "whsec_" + secrets.token_hex(24)
        self.delivery_attempts = delivery_attempts
        self.delivery_backoff = delivery_backoff
        self.delivery_timeout = delivery_timeout
        self._webhook_url = webhook_url
        self._webhooks_paused = False
        self._public_url = public_url.rstrip("/") if public_url else None
        self._quiet = quiet
        self._lock = threading.RLock()  # all state below
        self._server_lock = threading.Lock()  # start/stop/down/recover
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._down = False
        self._sessions: dict[str, _Session] = {}
        self._charges: dict[str, dict[str, Any]] = {}
        self._idempotency: dict[str, _Saved] = {}
        self._requests: list[RecordedRequest] = []
        self._deliveries: list[Delivery] = []
        # Every event this sandbox created, oldest first, as Stripe keeps them (List Events):
        # `pending_webhooks` counts the endpoints that have not acknowledged it yet.
        self._events: list[dict[str, Any]] = []
        self._faults: list[tuple[str, float]] = []  # (mode, hold) for each of the next API requests
        self._released = threading.Event()  # set by stop()/recover(): ends held connections
        # Webhooks do not follow redirects (Stripe counts a 3xx as a failure) nor use env proxies.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> str:
        """Listen and serve in a daemon thread; returns the API base URL (stripe-python's `api_base`)."""
        with self._server_lock:
            if self._server is None:
                self._listen()
        return self.base_url

    def stop(self) -> None:
        self._release_held()
        with self._server_lock:
            self._down = False
            self._close_listener()

    def __enter__(self) -> StripeSandbox:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        host = "127.0.0.1" if self.host in ("", "0.0.0.0", "::") else self.host
        return f"http://{host}:{self.port}"

    @property
    def public_url(self) -> str:
        """Base of the checkout page links a browser opens (behind a proxy: set it explicitly)."""
        return self._public_url or self.base_url

    @property
    def webhook_url(self) -> str | None:
        return self._webhook_url

    @webhook_url.setter
    def webhook_url(self, url: str | None) -> None:
        with self._lock:
            self._webhook_url = url

    @property
    def webhooks_paused(self) -> bool:
        """While paused, events are dropped instead of delivered (lost webhooks, for reconciliation)."""
        return self._webhooks_paused

    @webhooks_paused.setter
    def webhooks_paused(self, paused: bool) -> None:
        with self._lock:
            self._webhooks_paused = paused

    def _listen(self) -> None:
        server = ThreadingHTTPServer((self.host, self.port), _Handler)
        server.daemon_threads = True
        server.sandbox = self  # type: ignore[attr-defined]
        self.port = server.server_address[1]  # the ephemeral port, kept across down/recover
        thread = threading.Thread(
            # A short poll: stop() and "down" wait for the loop to notice.
            target=server.serve_forever,
            kwargs={"poll_interval": 0.01},
            name="stripe-sandbox",
            daemon=True,
        )
        thread.start()
        self._server, self._thread = server, thread

    def _close_listener(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()  # from now on connections are refused
            self._server = self._thread = None

    # ------------------------------------------------------------------ faults

    def fail_next(self, n: int, mode: FailureMode, *, hold: float = 0.0) -> None:
        """Make the next `n` API requests fail (retries count), as Stripe or the network can.

        "500": api_error JSON, 500 (stripe-python retries it). "429": rate_limit, 429.
        "timeout": read the request, then close without answering (nothing is done).
        "lost": do the work, then close without answering: the ambiguous timeout, where the
        session exists but the caller never heard of it. "down": refuse connections (pages too)
        until `recover()`; `n` is ignored.
        `hold` keeps a "timeout"/"lost" connection open that long before closing it, to drive the
        client into its own read timeout (`stop()`/`recover()` release it early).
        """
        if mode not in FAILURE_MODES:
            raise ValueError(f"unknown failure mode {mode!r}; expected one of {FAILURE_MODES}")
        if mode == "down":
            with self._server_lock:
                if self._server is not None:
                    self._down = True
                    self._close_listener()
            return
        with self._lock:
            self._faults.extend([(mode, hold)] * n)

    def recover(self) -> None:
        """Clear pending failures and, if down, listen again on the same port."""
        with self._lock:
            self._faults.clear()
        self._release_held()
        with self._server_lock:
            if self._down:
                self._down = False
                self._listen()

    def _release_held(self) -> None:
        with self._lock:
            released, self._released = self._released, threading.Event()
        released.set()

    def reset(self) -> None:
        """Forget sessions, charges, idempotency keys, requests, deliveries and failures."""
        with self._lock:
            for store in (self._sessions, self._charges, self._idempotency):
                store.clear()
            for log in (self._requests, self._deliveries, self._faults, self._events):
                log.clear()

    # ------------------------------------------------------------------ state (snapshots)

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return copy.deepcopy(self._requests)

    @property
    def sessions(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {sid: copy.deepcopy(s.obj) for sid, s in self._sessions.items()}

    @property
    def charges(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(self._charges)

    @property
    def deliveries(self) -> list[Delivery]:
        with self._lock:
            return copy.deepcopy(self._deliveries)

    def session(self, session_id: str) -> dict[str, Any]:
        with self._lock:
            return copy.deepcopy(self._sessions[session_id].obj)

    @property
    def events(self) -> list[dict[str, Any]]:
        """Every event created so far, newest first (as `GET /v1/events` lists them)."""
        with self._lock:
            return copy.deepcopy(_newest_first(self._events))

    @property
    def disputes(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {s.dispute["id"]: copy.deepcopy(s.dispute) for s in self._sessions.values() if s.dispute}

    def submit(self, path: str, form: Mapping[str, str] | None = None) -> tuple[int, str]:
        """A browser's form POST to this sandbox's pages (a checkout page's buttons, the dashboard's);
        returns (status, Location). Any events it causes are delivered before it answers."""
        url = urlsplit(self.base_url)
        connection = http.client.HTTPConnection(url.hostname or "", url.port, timeout=10)
        try:
            connection.request(
                "POST", path, body=urlencode(form or {}), headers={"Content-Type": "application/x-www-form-urlencoded"}
            )
            response = connection.getresponse()
            response.read()
            return response.status, response.getheader("Location") or ""
        finally:
            connection.close()

    # ------------------------------------------------------------------ events

    def event(
        self,
        type_: str,
        obj: Mapping[str, Any],
        *,
        created: int | None = None,
        request_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """A Stripe-shaped event around `obj`, not delivered; kept in the event log (List Events)."""
        event = {
            "id": _new_id("evt_test_"),
            "object": "event",
            "api_version": API_VERSION,
            "created": int(time.time()) if created is None else created,
            "data": {"object": copy.deepcopy(dict(obj))},
            "livemode": False,
            "pending_webhooks": 1 if self._webhook_url else 0,
            "request": {"id": request_id, "idempotency_key": idempotency_key},
            "type": type_,
        }
        with self._lock:
            self._events.append(copy.deepcopy(event))
        return event

    def sign(self, payload: str, timestamp: int | None = None) -> str:
        return sign_payload(payload, self.webhook_secret, timestamp)

    def send_event(self, type_: str, data_object: Mapping[str, Any], *, created: int | None = None) -> dict[str, Any]:
        """Build, sign and deliver an event now; returns the event."""
        event = self.event(type_, data_object, created=created)
        self.deliver(event)
        return event

    def deliver(self, event_: Mapping[str, Any]) -> Delivery:
        """POST the event to `webhook_url`, signed, retrying non-2xx and connection errors."""
        event = copy.deepcopy(dict(event_))
        with self._lock:
            url, paused = self._webhook_url, self._webhooks_paused
        if not url or paused:
            delivery = Delivery(event, url, "undelivered", 0)
        else:
            payload = json.dumps(event, indent=2)  # serialised once: the signature covers these bytes
            responses: list[int | str] = []
            for attempt in range(1, self.delivery_attempts + 1):
                outcome = self._post_event(url, payload)
                responses.append(outcome)
                if isinstance(outcome, int) and 200 <= outcome < 300:
                    break
                if attempt < self.delivery_attempts:
                    time.sleep(self.delivery_backoff * 2 ** (attempt - 1))  # Stripe backs off too
            ok = isinstance(responses[-1], int) and 200 <= int(responses[-1]) < 300
            delivery = Delivery(event, url, "delivered" if ok else "failed", len(responses), responses)
            if ok:
                self._acknowledged(str(event.get("id")))
        self._say(
            f"webhook {event.get('type')} {event.get('id')} -> {delivery.status} "
            f"({delivery.attempts} attempt{'s' if delivery.attempts != 1 else ''})"
        )
        with self._lock:
            self._deliveries.append(delivery)
        return delivery

    def _acknowledged(self, event_id: str) -> None:
        """The endpoint answered 2xx: the event no longer waits for it (`delivery_success`)."""
        with self._lock:
            for logged in self._events:
                if logged["id"] == event_id:
                    logged["pending_webhooks"] = max(0, logged["pending_webhooks"] - 1)

    def _post_event(self, url: str, payload: str) -> int | str:
        request = urllib.request.Request(  # noqa: S310 - the configured webhook URL
            url,
            data=payload.encode(),
            method="POST",
            headers={
                "Content-Type": "application/json; charset=utf-8",
                "Stripe-Signature": self.sign(payload),  # a fresh timestamp per attempt, as Stripe does
                "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
            },
        )
        try:
            with self._opener.open(request, timeout=self.delivery_timeout) as response:
                response.read()
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)
        except (OSError, urllib.error.URLError) as exc:  # refused, reset, timed out
            return type(exc).__name__

    # ------------------------------------------------------------------ API

    def _api(self, method: str, path: str, headers: Mapping[str, str], body: bytes, query: str) -> _Reply | None:
        """Answer one /v1 request; None means: drop the connection without an answer."""
        record = RecordedRequest(method, path, dict(headers), {}, body)
        headers = {name.lower(): value for name, value in headers.items()}  # lookups below use lower case
        raw = body.decode("utf-8", "replace") if method == "POST" else query
        with self._lock:
            self._requests.append(record)  # recorded before anything can fail
            failure, hold = self._faults.pop(0) if self._faults else (None, 0.0)
            released = self._released  # this request's: recover() swaps in a fresh one
        record.failure = failure
        if failure == "timeout":
            released.wait(hold)
            return None
        if failure in ("500", "429"):
            error = (
                StripeApiError(500, "api_error", "An unknown error occurred")
                if failure == "500"
                else StripeApiError(
                    429, "invalid_request_error", "Too many requests hit the API too quickly.", code="rate_limit"
                )
            )
            return self._error(record, error)
        try:
            record.params = parse_form(parse_qsl(raw, keep_blank_values=True))
            self._authenticate(headers)
            reply, events = self._route(method, path, record.params, headers)
        except StripeApiError as exc:
            return self._error(record, exc)
        # Deliver before answering: when the caller hears back, the webhook has run (deterministic).
        for event in events:
            self.deliver(event)
        if failure == "lost":
            released.wait(hold)
            return None
        record.status = reply.status
        return reply

    def _error(self, record: RecordedRequest, error: StripeApiError) -> _Reply:
        record.status = error.status
        return _json_reply(error.status, {"error": error.body}, **{"Request-Id": _new_id("req_")})

    def _authenticate(self, headers: Mapping[str, str]) -> None:
        scheme, _, key = headers.get("authorization", "").partition(" ")
        if scheme.lower() == "basic":  # `curl -u sk_test_...:` as in Stripe's docs: the key is the user name
            try:
                key = base64.b64decode(key, validate=True).decode().partition(":")[0]
            except (ValueError, UnicodeDecodeError):
                key = ""
        elif scheme.lower() != "bearer":
            key = ""
        if not key:
            raise StripeApiError(
                401,
                "invalid_request_error",
                "You did not provide an API key. You need to provide your API key in the Authorization header, "
                "using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY').",
            )
        if self.api_key is not None and not hmac.compare_digest(key.encode(), self.api_key.encode()):
            masked = f"{key[:8]}{'*' * 12}{key[-4:]}" if len(key) > 12 else "****"  # Stripe masks it too
            raise StripeApiError(
                401, "invalid_request_error", f"Invalid API Key provided: {masked}", code="api_key_invalid"
            )

    def _route(
        self, method: str, path: str, params: dict[str, Any], headers: Mapping[str, str]
    ) -> tuple[_Reply, list[dict[str, Any]]]:
        parts = path.strip("/").split("/")  # v1 checkout sessions [id [expire]]
        if parts[:3] == ["v1", "checkout", "sessions"]:
            if method == "POST" and len(parts) == 3:
                return self._idempotent(path, params, headers, lambda: (self._create(params), []))
            if method == "GET" and len(parts) == 4:
                return _json_reply(200, self._retrieve_session(parts[3], params)), []
            if method == "POST" and len(parts) == 5 and parts[4] == "expire":
                request = {"request_id": _new_id("req_"), "idempotency_key": headers.get("idempotency-key")}
                return self._idempotent(path, params, headers, lambda: self._expire_api(parts[3], request))
        if method == "GET" and parts[:2] == ["v1", "events"] and len(parts) in (2, 3):
            with self._lock:
                found = self._list_events(params) if len(parts) == 2 else self._get_event(parts[2])
            return _json_reply(200, found), []
        if method == "GET" and parts[:2] == ["v1", "payment_intents"] and len(parts) == 3:
            return _json_reply(200, self.payment_intent(parts[2])), []
        raise StripeApiError(
            404,
            "invalid_request_error",
            f"Unrecognized request URL ({method}: {path}). The Stripe sandbox serves only the Checkout "
            "Sessions, Events and PaymentIntents endpoints Halum Hut uses.",
        )

    def _retrieve_session(self, session_id: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """A session; `expand[]=payment_intent` replaces the PaymentIntent's id with the object."""
        expand = params.get("expand") or []
        if not isinstance(expand, list) or any(field != "payment_intent" for field in expand):
            raise _invalid(f"This property cannot be expanded ({expand}).", "expand")
        with self._lock:
            obj = copy.deepcopy(self._get(session_id).obj)
        if expand and obj.get("payment_intent"):
            obj["payment_intent"] = self.payment_intent(obj["payment_intent"])
        return obj

    def payment_intent(self, intent_id: str) -> dict[str, Any]:
        """The PaymentIntent a paid (or delayed) checkout made, in Stripe's shape."""
        with self._lock:
            session = next((s for s in self._sessions.values() if s.obj.get("payment_intent") == intent_id), None)
            if session is None:
                raise StripeApiError(
                    404,
                    "invalid_request_error",
                    f"No such payment_intent: '{intent_id}'",
                    code="resource_missing",
                    param="intent",
                )
            return _payment_intent_object(session)

    # ------------------------------------------------------------------ the event log (List Events)

    def _get_event(self, event_id: str) -> dict[str, Any]:
        event = next((e for e in self._events if e["id"] == event_id), None)
        if event is None:
            raise StripeApiError(
                404, "invalid_request_error", f"No such event: '{event_id}'", code="resource_missing", param="id"
            )
        return copy.deepcopy(event)

    def _list_events(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """`GET /v1/events` as Stripe documents it: newest first, `limit` (1..100, default 10),
        `starting_after` / `ending_before` (an event id: the page after / before it), `type` (`*`
        wildcards) or `types[]` (up to 20), `created` (a time, or `gt`/`gte`/`lt`/`lte`), and
        `delivery_success` (false: events some endpoint has not acknowledged yet)."""
        unknown = sorted(set(params) - _EVENT_LIST_PARAMS)
        if unknown:
            raise _invalid(f"Received unknown parameter: {unknown[0]}", unknown[0], "parameter_unknown")
        limit = _integer(params.get("limit", "10"), "limit")
        if not 1 <= limit <= 100:
            raise _invalid("This value must be greater than or equal to 1 and less than or equal to 100.", "limit")
        if "starting_after" in params and "ending_before" in params:
            raise _invalid("You may only specify one of these parameters: ending_before, starting_after.")
        wanted = _event_filter(params)
        ordered = _newest_first(self._events)
        after, before = params.get("starting_after"), params.get("ending_before")
        if after is not None or before is not None:
            cursor = str(after if after is not None else before)
            position = next((i for i, e in enumerate(ordered) if e["id"] == cursor), None)
            if position is None:
                param = "starting_after" if after is not None else "ending_before"
                raise _invalid(f"No such event: '{cursor}'", param, "resource_missing")
            ordered = ordered[position + 1 :] if after is not None else ordered[:position]
        matching = [event for event in ordered if wanted(event)]
        page = matching[-limit:] if before is not None else matching[:limit]
        return {
            "object": "list",
            "data": copy.deepcopy(page),
            "has_more": len(matching) > limit,
            "url": "/v1/events",
        }

    def _idempotent(
        self,
        path: str,
        params: dict[str, Any],
        headers: Mapping[str, str],
        work: Callable[[], tuple[dict[str, Any], list[dict[str, Any]]]],
    ) -> tuple[_Reply, list[dict[str, Any]]]:
        """Stripe's idempotency: same key and parameters replay the saved answer; other parameters -> 400."""
        key = headers.get("idempotency-key")
        fingerprint = json.dumps(params, sort_keys=True)
        with self._lock:  # one lock for check, work and save: concurrent duplicates serialise
            saved = self._idempotency.get(key) if key else None
            if saved is not None:
                if saved.endpoint != path or saved.fingerprint != fingerprint:
                    raise StripeApiError(
                        400,
                        "idempotency_error",
                        "Keys for idempotent requests can only be used with the same parameters they were first "
                        f"used with. Try using a key other than '{key}' if you meant to execute a different request.",
                    )
                return _Reply(saved.status, saved.body, headers={"Idempotent-Replayed": "true"}), []
            data, events = work()
            reply = _json_reply(200, data, **{"Request-Id": _new_id("req_")})
            if key:  # only executed requests are saved; validation errors are not (as Stripe)
                self._idempotency[key] = _Saved(path, fingerprint, reply.status, reply.body)
            return reply, events

    def _get(self, session_id: str) -> _Session:
        session = self._sessions.get(session_id)
        if session is None:
            raise StripeApiError(
                404,
                "invalid_request_error",
                f"No such checkout.session: '{session_id}'",
                code="resource_missing",
                param="session",
            )
        return session

    def _expire_api(self, session_id: str, request: Mapping[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        session = self._get(session_id)
        if session.obj["status"] != "open":
            raise _invalid(
                f'Only Checkout Sessions with a status in ["open"] can be expired. This Checkout Session has '
                f'a status of "{session.obj["status"]}".',
            )
        session.obj.update(status="expired", url=None)
        return session.obj, [self.event("checkout.session.expired", session.obj, **request)]

    def _create(self, params: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(params) - _SESSION_PARAMS)
        if unknown:
            raise _invalid(f"Received unknown parameter: {unknown[0]}", unknown[0], "parameter_unknown")
        if params.get("mode") != "payment":
            if "mode" not in params:
                raise _invalid("Missing required param: mode.", "mode", "parameter_missing")
            raise _invalid("The Stripe sandbox supports only mode=payment.", "mode")
        lines = self._validate_lines(params.get("line_items"))
        currency = lines[0]["currency"]
        for name in ("success_url", "cancel_url"):
            value = params.get(name)
            if not isinstance(value, str) or not value:
                raise _invalid(f"Missing required param: {name}.", name, "parameter_missing")
            if urlsplit(value).scheme not in ("http", "https") or not urlsplit(value).netloc:
                raise _invalid(f"Not a valid URL: {value}", name, "url_invalid")
        now = int(time.time())
        expires_at = now + MAX_EXPIRY_SECONDS
        if "expires_at" in params:
            expires_at = _integer(params["expires_at"], "expires_at")
            if expires_at < now + MIN_EXPIRY_SECONDS:
                raise _invalid(
                    "The `expires_at` timestamp must be at least 30 minutes from Checkout Session creation.",
                    "expires_at",
                )
            if expires_at > now + MAX_EXPIRY_SECONDS:
                raise _invalid(
                    "The `expires_at` timestamp must be less than 24 hours from Checkout Session creation.",
                    "expires_at",
                )
        metadata = _metadata(params.get("metadata"), "metadata")
        intent_data = params.get("payment_intent_data") or {}
        if not isinstance(intent_data, dict):
            raise _invalid("Invalid object", "payment_intent_data")
        _no_unknown(intent_data, _PAYMENT_INTENT_PARAMS, "payment_intent_data")
        intent_metadata = _metadata(intent_data.get("metadata"), "payment_intent_data[metadata]")
        total = sum(line["unit_amount"] * line["quantity"] for line in lines)
        session_id = _new_id("cs_test_")
        obj = _session_object(
            session_id,
            params,
            currency=currency,
            total=total,
            created=now,
            expires_at=expires_at,
            metadata=metadata,
            url=f"{self.public_url}/checkout/{session_id}",
        )
        self._sessions[session_id] = _Session(obj, lines, intent_metadata=intent_metadata)
        return obj

    @staticmethod
    def _validate_lines(raw: Any) -> list[dict[str, Any]]:
        if not raw:
            raise _invalid("Missing required param: line_items.", "line_items", "parameter_missing")
        if not isinstance(raw, list):
            raise _invalid("Invalid array", "line_items")
        lines: list[dict[str, Any]] = []
        for index, item in enumerate(raw):
            where = f"line_items[{index}]"
            if not isinstance(item, dict):
                raise _invalid("Invalid object", where)
            _no_unknown(item, _LINE_ITEM_PARAMS, where)
            price = item.get("price_data")
            if not isinstance(price, dict):
                raise _invalid(
                    "The Stripe sandbox needs price_data on every line item (no Price ids).",
                    f"{where}[price_data]",
                    "parameter_missing",
                )
            _no_unknown(price, _PRICE_DATA_PARAMS, f"{where}[price_data]")
            currency = price.get("currency")
            if not currency:
                raise _invalid(
                    "Missing required param: currency.", f"{where}[price_data][currency]", "parameter_missing"
                )
            if not isinstance(currency, str) or len(currency) != 3 or not currency.isalpha():
                raise _invalid(f"Invalid currency: {currency}", f"{where}[price_data][currency]")
            product = price.get("product_data")
            if not isinstance(product, dict) or not product.get("name"):
                raise _invalid(
                    "Missing required param: product_data[name].",
                    f"{where}[price_data][product_data][name]",
                    "parameter_missing",
                )
            _no_unknown(product, _PRODUCT_DATA_PARAMS, f"{where}[price_data][product_data]")
            if "unit_amount" not in price:
                raise _invalid(
                    "Missing required param: unit_amount.", f"{where}[price_data][unit_amount]", "parameter_missing"
                )
            unit_amount = _integer(price["unit_amount"], f"{where}[price_data][unit_amount]")
            if unit_amount < 0:
                raise _invalid("This value must be greater than or equal to 0.", f"{where}[price_data][unit_amount]")
            if currency.lower() in THREE_DECIMAL and unit_amount % 10:  # Stripe charges these in tens
                raise _invalid(
                    f"Amounts in {currency.upper()} must be divisible by 10.", f"{where}[price_data][unit_amount]"
                )
            if "quantity" not in item:
                raise _invalid("Missing required param: quantity.", f"{where}[quantity]", "parameter_missing")
            quantity = _integer(item["quantity"], f"{where}[quantity]")
            if quantity < 1:
                raise _invalid("This value must be greater than or equal to 1.", f"{where}[quantity]")
            lines.append(
                {
                    "name": product["name"],
                    "quantity": quantity,
                    "unit_amount": unit_amount,
                    "currency": currency.lower(),
                }
            )
        if len({line["currency"] for line in lines}) > 1:
            raise _invalid("All line items must use the same currency.", "line_items")
        return lines

    # ------------------------------------------------------------------ customer actions (checkout page)

    def _charge(self, session: _Session) -> dict[str, Any]:
        obj = session.obj
        charge = _charge_object(
            obj, session.intent_metadata, receipt_url=f"{self.public_url}/checkout/{quote(obj['id'])}"
        )
        session.charge = charge
        self._charges[charge["id"]] = charge
        return charge

    def _act(self, session_id: str, action: str, form: Mapping[str, str]) -> _Reply:
        """One button on the checkout page or dashboard; events are delivered before the redirect."""
        reply, _ = self._press(session_id, action, form)
        return reply

    def _press(self, session_id: str, action: str, form: Mapping[str, str]) -> tuple[_Reply, list[dict[str, Any]]]:
        """`action` on a session: the page's answer (a redirect when done) and the events it sent."""
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None:
                return self._page(404, "Not found", "<p>No such checkout session.</p>"), []
            act = _ACTIONS.get(action)
            if act is None:
                return self._page(404, "Not found", "<p>Unknown action.</p>"), []
            done = act(self, session, form)
        if isinstance(done, _Reply):
            return done, []
        events, location = done
        for event in events:  # outside the lock: the receiver may call the API back
            self.deliver(event)
        return _redirect(location), events

    def _pay(self, session: _Session, form: Mapping[str, str]) -> _Done:
        obj = session.obj
        if obj["status"] != "open":
            return self._checkout_page(session, status=409)
        obj.update(customer_details=_customer_details(obj["customer_email"]))  # the form Stripe collects
        obj.update(status="complete", payment_status="paid", payment_intent=_new_id("pi_test_"), url=None)
        session.paid_at = int(time.time())
        self._charge(session)
        return [self.event("checkout.session.completed", obj)], _success(obj)

    def _pay_delayed(self, session: _Session, form: Mapping[str, str]) -> _Done:
        obj = session.obj
        if obj["status"] != "open":
            return self._checkout_page(session, status=409)
        obj.update(customer_details=_customer_details(obj["customer_email"]))
        obj.update(status="complete", payment_intent=_new_id("pi_test_"), url=None)
        session.paid_at = int(time.time())
        session.delayed = "processing"
        return [self.event("checkout.session.completed", obj)], f"/checkout/{obj['id']}"

    def _bank_answers(self, session: _Session, confirmed: bool) -> _Done:
        obj = session.obj
        if session.delayed != "processing":
            return self._checkout_page(session, status=409)
        if not confirmed:
            session.delayed = "failed"
            return [self.event("checkout.session.async_payment_failed", obj)], obj["cancel_url"]
        session.delayed = "succeeded"
        obj.update(payment_status="paid")
        self._charge(session)
        return [self.event("checkout.session.async_payment_succeeded", obj)], _success(obj)

    def _cancel(self, session: _Session, form: Mapping[str, str]) -> _Done:
        obj = session.obj
        if obj["status"] != "open":
            return self._checkout_page(session, status=409)
        obj.update(status="expired", url=None)
        return [self.event("checkout.session.expired", obj)], obj["cancel_url"]

    def _refund(self, session: _Session, form: Mapping[str, str]) -> _Done:
        """Refund `amount` (minor units; the rest of the charge by default): one `charge.refunded`
        per refund, its charge carrying the cumulative `amount_refunded`, `refunded` only when in full."""
        charge = session.charge
        remaining = charge["amount"] - charge["amount_refunded"] if charge else 0
        try:
            amount = int(form.get("amount") or remaining)
        except ValueError:
            amount = 0
        if charge is None or charge["disputed"] or not 0 < amount <= remaining:
            why = "it is disputed" if charge and charge["disputed"] else f"an amount outside 1..{remaining}"
            return self._page(400, "Refund refused", f"<p>Nothing to refund, or {html.escape(why)}.</p>")
        charge["amount_refunded"] += amount
        charge["refunded"] = charge["amount_refunded"] == charge["amount"]
        refunds = charge["refunds"]
        refunds["data"].insert(0, _refund_object(charge, amount))  # newest first, as Stripe lists
        refunds["total_count"] = len(refunds["data"])
        return [self.event("charge.refunded", charge)], "/"

    def _open_dispute(self, session: _Session, form: Mapping[str, str]) -> _Done:
        """The cardholder disputes the charge: `charge.dispute.created`, then the funds are withdrawn."""
        charge = session.charge
        if charge is None or charge["disputed"] or charge["refunded"]:
            return self._page(400, "Dispute refused", "<p>No charge that can be disputed.</p>")
        dispute = _dispute_object(charge, form.get("reason") or "fraudulent")
        session.dispute = dispute
        charge["disputed"] = True
        created = self.event("charge.dispute.created", dispute)
        dispute["balance_transactions"].append(
            _balance_transaction(
                -dispute["amount"], dispute["currency"], dispute["id"], "dispute", "Chargeback withdrawal"
            )
        )
        return [created, self.event("charge.dispute.funds_withdrawn", dispute)], "/"

    def _close_dispute(self, session: _Session, won: bool) -> _Done:
        """The bank decides: won (`closed`, then the funds are reinstated) or lost (`closed`)."""
        dispute = session.dispute
        if dispute is None or dispute["status"] in ("won", "lost"):
            return self._page(400, "No open dispute", "<p>This charge has no open dispute.</p>")
        dispute["status"] = "won" if won else "lost"
        events = [self.event("charge.dispute.closed", dispute)]
        if won:
            dispute["balance_transactions"].append(
                _balance_transaction(
                    dispute["amount"], dispute["currency"], dispute["id"], "dispute_reversal", "Chargeback reversal"
                )
            )
            events.append(self.event("charge.dispute.funds_reinstated", dispute))
        return events, "/"

    # ------------------------------------------------------------------ the dashboard's actions, from Python

    def refund(self, session_id: str, amount: int | None = None) -> dict[str, Any]:
        """Refund `amount` minor units of the session's charge (the rest by default), as the
        dashboard does; returns the `charge.refunded` event (delivered already)."""
        return self._dashboard_action(session_id, "refund", {"amount": str(amount)} if amount else {})[-1]

    def open_dispute(self, session_id: str, reason: str = "fraudulent") -> dict[str, Any]:
        """The cardholder disputes the session's charge; returns the dispute (its events delivered)."""
        events = self._dashboard_action(session_id, "dispute", {"reason": reason})
        return dict(events[-1]["data"]["object"])

    def close_dispute(self, session_id: str, *, won: bool) -> dict[str, Any]:
        """The bank closes the session's dispute, won or lost; returns the dispute."""
        events = self._dashboard_action(session_id, "dispute-won" if won else "dispute-lost", {})
        return dict(events[0]["data"]["object"])

    def _dashboard_action(self, session_id: str, action: str, form: Mapping[str, str]) -> list[dict[str, Any]]:
        reply, events = self._press(session_id, action, form)
        if reply.status != 303:
            raise ValueError(f"{action} refused for {session_id}: {reply.status}")
        return events

    # ------------------------------------------------------------------ pages

    def _page(self, status: int, title: str, body: str) -> _Reply:
        page = (
            '<!doctype html><html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{html.escape(title)} · Stripe sandbox</title><style>{_CSS}</style></head>"
            f'<body><main><p class="badge">Stripe sandbox · test mode</p><h1>{html.escape(title)}</h1>'
            f"{body}</main></body></html>"
        )
        return _Reply(status, page.encode(), "text/html; charset=utf-8")

    def _checkout_page(self, session: _Session, status: int = 200) -> _Reply:
        obj = session.obj
        rows = "".join(
            f'<tr class="line"><td class="name">{html.escape(line["name"])}</td>'
            f'<td class="quantity">{line["quantity"]}</td>'
            f'<td class="unit">{format_amount(line["unit_amount"], line["currency"])}</td></tr>'
            for line in session.lines
        )
        total = format_amount(obj["amount_total"], obj["currency"])
        summary = (
            "<table><thead><tr><th>Item</th><th>Qty</th><th>Unit price</th></tr></thead>"
            f'<tbody>{rows}</tbody><tfoot><tr><th colspan="2">Total</th>'
            f'<th id="total">{total}</th></tr></tfoot></table>'
        )
        base = f"/checkout/{quote(obj['id'])}"
        if obj["status"] == "open":
            state = '<p id="status" data-status="open">Awaiting payment</p>'
            buttons = (
                _button(f"{base}/pay", "pay", "Pay", "primary")
                + _button(f"{base}/pay-delayed", "pay-delayed", "Pay (delayed method)")
                + _button(f"{base}/cancel", "cancel", "Cancel")
            )
            return self._page(status, "Checkout", summary + state + f'<div class="actions">{buttons}</div>')
        if session.delayed == "processing":
            state = (
                '<p id="status" data-status="processing">Processing: waiting for the bank to confirm the payment.</p>'
            )
            buttons = _button(f"{base}/confirm", "bank-confirms", "Bank confirms", "primary") + _button(
                f"{base}/decline", "bank-declines", "Bank declines"
            )
            return self._page(status, "Processing", summary + state + f'<div class="actions">{buttons}</div>')
        label = {"succeeded": "paid", "failed": "payment failed"}.get(session.delayed or "", obj["payment_status"])
        state = (
            f'<p id="status" data-status="{html.escape(obj["status"])}">This checkout is '
            f"{html.escape(obj['status'])} ({html.escape(label)}).</p>"
        )
        return self._page(status, "Checkout", summary + state)

    def _dashboard(self) -> _Reply:
        with self._lock:
            sessions = sorted(self._sessions.values(), key=lambda s: s.obj["created"], reverse=True)
            rows = []
            for session in sessions:
                obj = session.obj
                refund = _money_actions(session)
                order = html.escape(str((obj.get("metadata") or {}).get("order_id", "")))
                rows.append(
                    f'<tr><td><a href="/checkout/{quote(obj["id"])}">{html.escape(obj["id"])}</a></td>'
                    f"<td>{order}</td><td>{format_amount(obj['amount_total'], obj['currency'])}</td>"
                    f"<td>{html.escape(obj['status'])}</td><td>{html.escape(obj['payment_status'])}</td>"
                    f"<td>{refund}</td></tr>"
                )
            deliveries = "".join(
                f"<tr><td>{html.escape(str(d.event.get('type')))}</td><td>{html.escape(str(d.event.get('id')))}</td>"
                f"<td>{d.status}</td><td>{d.attempts}</td></tr>"
                for d in reversed(self._deliveries[-20:])
            )
            pending = len(self._faults)
        faults = (
            '<form method="post" action="/_sandbox/fail" class="inline">Fail the next '
            '<input name="n" type="number" min="1" value="1"> API requests with '
            '<select name="mode"><option>500</option><option>429</option><option>timeout</option>'
            '<option>lost</option></select> <button type="submit" id="fail">Apply</button></form> '
            '<form method="post" action="/_sandbox/recover" class="inline">'
            f'<button type="submit" id="recover">Clear ({pending} pending)</button></form>'
        )
        body = (
            "<h2>Checkout sessions</h2><table><thead><tr><th>Session</th><th>Order</th><th>Total</th>"
            f"<th>Status</th><th>Payment</th><th>Refunds and disputes</th></tr></thead><tbody>{''.join(rows)}"
            "</tbody></table>"
            "<h2>Webhook deliveries</h2><table><thead><tr><th>Type</th><th>Event</th><th>Delivery</th>"
            f"<th>Attempts</th></tr></thead><tbody>{deliveries}</tbody></table>"
            f"<h2>Faults</h2>{faults}<p>Webhook endpoint: {html.escape(self._webhook_url or 'not set')}</p>"
            + _webhook_switch(self._webhooks_paused)
        )
        return self._page(200, "Dashboard", body)

    def _browser(self, method: str, path: str, body: bytes) -> _Reply:
        parts = path.strip("/").split("/")
        form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)) if method == "POST" else {}
        if method == "GET" and path == "/":
            return self._dashboard()
        if parts[0] == "checkout" and len(parts) == 2 and method == "GET":
            with self._lock:
                session = self._sessions.get(parts[1])
                if session is None:
                    return self._page(404, "Not found", "<p>No such checkout session.</p>")
                return self._checkout_page(session)
        if parts[0] == "checkout" and len(parts) == 3 and method == "POST":
            return self._act(parts[1], parts[2], form)
        if path == "/_sandbox/fail" and method == "POST" and form.get("mode") in ("500", "429", "timeout", "lost"):
            count = form.get("n", "1")
            self.fail_next(int(count) if count.isdigit() and int(count) > 0 else 1, form["mode"])  # type: ignore[arg-type]
            return _redirect("/")
        if path == "/_sandbox/webhooks" and method == "POST" and form.get("state") in ("paused", "live"):
            self.webhooks_paused = form["state"] == "paused"
            self._say(f"webhooks {form['state']}")
            return _redirect("/")
        if path == "/_sandbox/recover" and method == "POST":
            self.recover()
            return _redirect("/")
        return self._page(404, "Not found", "<p>Nothing here.</p>")

    def _say(self, line: str) -> None:
        if not self._quiet:  # looked up per call: test runners swap sys.stderr
            sys.stderr.write(f"stripe-sandbox: {line}\n")
            sys.stderr.flush()


_ACTIONS: dict[str, Callable[[StripeSandbox, _Session, Mapping[str, str]], Any]] = {
    "pay": StripeSandbox._pay,
    "pay-delayed": StripeSandbox._pay_delayed,
    "confirm": lambda box, session, form: box._bank_answers(session, confirmed=True),
    "decline": lambda box, session, form: box._bank_answers(session, confirmed=False),
    "cancel": StripeSandbox._cancel,
    "refund": StripeSandbox._refund,
    "dispute": StripeSandbox._open_dispute,
    "dispute-won": lambda box, session, form: box._close_dispute(session, won=True),
    "dispute-lost": lambda box, session, form: box._close_dispute(session, won=False),
}

# ---------------------------------------------------------------------- Stripe's object shapes
# Every field Stripe sends for these objects (the fields of Stripe's own fixtures for API version
# 2026-10-28: tests/tooling/test_stripe_shapes.py), with the values Stripe gives a hosted, card-only,
# one-time payment Checkout Session built from `price_data` line items and no Customer: the
# features we do not use are null (or off), as Stripe sends them.

TEST_CUSTOMER_NAME = "Test Customer"
TEST_CARD = {"brand": "visa", "country": "US", "exp_month": 12, "exp_year": 2034, "last4": "4242"}


def _session_object(
    session_id: str,
    params: Mapping[str, Any],
    *,
    currency: str,
    total: int,
    created: int,
    expires_at: int,
    metadata: dict[str, str],
    url: str,
) -> dict[str, Any]:
    return {
        "id": session_id,
        "object": "checkout.session",
        "adaptive_pricing": {"enabled": False},
        "after_expiration": None,
        "allow_promotion_codes": None,
        "amount_subtotal": total,
        "amount_total": total,
        "automatic_tax": {"enabled": False, "liability": None, "provider": None, "status": None},
        "billing_address_collection": None,
        "cancel_url": params["cancel_url"],
        "client_reference_id": params.get("client_reference_id"),
        "client_secret": None,  # embedded modes only
        "collected_information": None,
        "consent": None,
        "consent_collection": None,
        "created": created,
        "currency": currency,
        "currency_conversion": None,
        "custom_fields": [],
        "custom_text": {
            "after_submit": None,
            "shipping_address": None,
            "submit": None,
            "terms_of_service_acceptance": None,
        },
        "customer": None,
        "customer_account": None,
        "customer_creation": "if_required",
        "customer_details": None,  # until the customer fills the form
        "customer_email": params.get("customer_email"),
        "discounts": [],
        "expires_at": expires_at,
        "integration_identifier": None,
        "invoice": None,
        "invoice_creation": {
            "enabled": False,
            "invoice_data": {
                "account_tax_ids": None,
                "custom_fields": None,
                "description": None,
                "footer": None,
                "issuer": None,
                "metadata": {},
                "rendering_options": None,
            },
        },
        "livemode": False,
        "locale": None,
        "managed_payments": None,
        "metadata": metadata,
        "mode": "payment",
        "origin_context": None,
        "payment_intent": None,  # created when the customer pays
        "payment_link": None,
        "payment_method_collection": "if_required",
        "payment_method_configuration_details": None,
        "payment_method_options": {"card": {"request_three_d_secure": "automatic"}},
        "payment_method_types": ["card"],
        "payment_status": "unpaid",
        "permissions": None,
        "phone_number_collection": {"enabled": False},
        "recovered_from": None,
        "saved_payment_method_options": None,
        "setup_intent": None,
        "shipping_address_collection": None,
        "shipping_cost": None,
        "shipping_options": [],
        "status": "open",
        "submit_type": None,
        "subscription": None,
        "success_url": params["success_url"],
        "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
        "ui_mode": "hosted_page",
        "url": url,
        "wallet_options": None,
    }


def _address() -> dict[str, Any]:
    """What Checkout collects for a card in the US: country and postal code."""
    return {"city": None, "country": "US", "line1": None, "line2": None, "postal_code": "42424", "state": None}


def _customer_details(email: str | None) -> dict[str, Any]:
    return {
        "address": _address(),
        "business_name": None,
        "email": email or "customer@example.com",
        "individual_name": None,
        "name": TEST_CUSTOMER_NAME,
        "phone": None,
        "tax_exempt": "none",
        "tax_ids": [],
    }


def _charge_object(session: Mapping[str, Any], metadata: Mapping[str, str], *, receipt_url: str) -> dict[str, Any]:
    charge_id = _new_id("ch_test_")
    amount = session["amount_total"]
    details = session.get("customer_details") or _customer_details(session.get("customer_email"))
    return {
        "id": charge_id,
        "object": "charge",
        "amount": amount,
        "amount_captured": amount,
        "amount_refunded": 0,
        "application": None,
        "application_fee": None,
        "application_fee_amount": None,
        "balance_transaction": _new_id("txn_test_"),
        "billing_details": {
            "address": details["address"],
            "email": details["email"],
            "name": details["name"],
            "phone": None,
            "tax_id": None,
        },
        "calculated_statement_descriptor": "HALUM HUT",
        "captured": True,
        "created": int(time.time()),
        "currency": session["currency"],
        "customer": None,
        "description": None,
        "disputed": False,
        "failure_balance_transaction": None,
        "failure_code": None,
        "failure_message": None,
        "fraud_details": {},
        "livemode": False,
        "metadata": dict(metadata),  # the PaymentIntent's, which Stripe copies onto its charges
        "on_behalf_of": None,
        "outcome": {
            "advice_code": None,
            "network_advice_code": None,
            "network_decline_code": None,
            "network_status": "approved_by_network",
            "reason": None,
            "risk_level": "normal",
            "risk_score": 32,
            "seller_message": "Payment complete.",
            "type": "authorized",
        },
        "paid": True,
        "payment_intent": session["payment_intent"],
        "payment_method": _new_id("pm_test_"),
        "payment_method_details": {
            "card": {
                "amount_authorized": amount,
                "authorization_code": None,
                "brand": TEST_CARD["brand"],
                "checks": {"address_line1_check": None, "address_postal_code_check": "pass", "cvc_check": "pass"},
                "country": TEST_CARD["country"],
                "exp_month": TEST_CARD["exp_month"],
                "exp_year": TEST_CARD["exp_year"],
                "extended_authorization": {"status": "disabled"},
                "fingerprint": "sandboxFingerprint",
                "funding": "credit",
                "incremental_authorization": {"status": "unavailable"},
                "installments": None,
                "last4": TEST_CARD["last4"],
                "mandate": None,
                "multicapture": {"status": "unavailable"},
                "network": TEST_CARD["brand"],
                "network_token": {"used": False},
                "network_transaction_id": "".join(secrets.choice(string.digits) for _ in range(15)),
                "overcapture": {"maximum_amount_capturable": amount, "status": "unavailable"},
                "regulated_status": "unregulated",
                "three_d_secure": None,
                "wallet": None,
            },
            "type": "card",
        },
        "receipt_email": None,
        "receipt_number": None,
        "receipt_url": receipt_url,
        "refunded": False,
        "refunds": {
            "object": "list",
            "data": [],
            "has_more": False,
            "total_count": 0,
            "url": f"/v1/charges/{charge_id}/refunds",
        },
        "review": None,
        "shipping": None,
        "source": None,
        "source_transfer": None,
        "statement_descriptor": None,
        "statement_descriptor_suffix": None,
        "status": "succeeded",
        "transfer_data": None,
        "transfer_group": None,
    }


def _refund_object(charge: Mapping[str, Any], amount: int) -> dict[str, Any]:
    return {
        "id": _new_id("re_test_"),
        "object": "refund",
        "amount": amount,
        "balance_transaction": _new_id("txn_test_"),
        "charge": charge["id"],
        "created": int(time.time()),
        "currency": charge["currency"],
        "customer": None,
        "customer_account": None,
        "destination_details": {
            "card": {"reference_status": "pending", "reference_type": "acquirer_reference_number", "type": "refund"},
            "type": "card",
        },
        "metadata": {},
        "payment_intent": charge["payment_intent"],
        "payment_method": charge["payment_method"],
        "reason": None,
        "receipt_number": None,
        "source_transfer_reversal": None,
        "status": "succeeded",
        "transfer_reversal": None,
    }


def _newest_first(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Stripe's order for lists: newest first (created, then creation order)."""
    return [event for _, event in sorted(enumerate(events), key=lambda p: (p[1]["created"], p[0]), reverse=True)]


def _event_filter(params: Mapping[str, Any]) -> Callable[[Mapping[str, Any]], bool]:
    """List Events' filters (`type` or `types`, `created`, `delivery_success`) as one predicate."""
    if "type" in params and "types" in params:
        raise _invalid("You may pass either type or types, but not both.", "types")
    types = params.get("types")
    if types is not None and (not isinstance(types, list) or not 1 <= len(types) <= 20):
        raise _invalid("types must be an array of up to 20 event types.", "types")
    pattern = params.get("type")
    if pattern is not None and not isinstance(pattern, str):
        raise _invalid("Invalid string", "type")
    kind = re.compile(re.escape(pattern).replace(r"\*", ".*")) if pattern is not None else None
    created = _created_range(params.get("created"))
    delivery = params.get("delivery_success")
    if delivery not in (None, "true", "false"):
        raise _invalid(f"Invalid boolean: {delivery}", "delivery_success")

    def wanted(event: Mapping[str, Any]) -> bool:
        if (types is not None and event["type"] not in types) or (kind and not kind.fullmatch(event["type"])):
            return False
        if not all(compare(event["created"], bound) for compare, bound in created):
            return False
        return delivery is None or (event["pending_webhooks"] == 0) == (delivery == "true")

    return wanted


def _created_range(raw: Any) -> list[tuple[Callable[[int, int], bool], int]]:
    if raw is None:
        return []
    if not isinstance(raw, dict):
        return [(operator.eq, _integer(raw, "created"))]
    unknown = sorted(set(raw) - set(_RANGE))
    if unknown:
        raise _invalid(f"Received unknown parameter: created[{unknown[0]}]", f"created[{unknown[0]}]")
    return [(_RANGE[name], _integer(value, f"created[{name}]")) for name, value in raw.items()]


def _payment_intent_object(session: _Session) -> dict[str, Any]:
    """The PaymentIntent behind a session (Stripe's fields; card-only, automatic capture)."""
    obj, charge = session.obj, session.charge
    if session.delayed == "processing":
        status = "processing"
    elif charge is not None:
        status = "succeeded"
    elif obj["status"] == "expired":
        status = "canceled"
    else:
        status = "requires_payment_method"  # what a declined or failed delayed payment leaves
    amount = obj["amount_total"]
    return {
        "id": obj["payment_intent"],
        "object": "payment_intent",
        "amount": amount,
        "amount_capturable": 0,
        "amount_details": {"tip": {}},
        "amount_received": amount if status == "succeeded" else 0,
        "application": None,
        "application_fee_amount": None,
        "automatic_payment_methods": None,
        "canceled_at": obj["expires_at"] if status == "canceled" else None,
        "cancellation_reason": "expired" if status == "canceled" else None,
        "capture_method": "automatic_async",
        "client_secret": f"{obj['payment_intent']}_secret_{obj['id'][-12:]}",
        "confirmation_method": "automatic",
        "created": session.paid_at or obj["created"],
        "currency": obj["currency"],
        "customer": None,
        "customer_account": None,
        "description": None,
        "excluded_payment_method_types": None,
        "last_payment_error": None,
        "latest_charge": charge["id"] if charge else None,
        "livemode": False,
        "managed_payments": None,
        "metadata": dict(session.intent_metadata),
        "next_action": None,
        "on_behalf_of": None,
        "payment_method": charge["payment_method"] if charge else None,
        "payment_method_configuration_details": None,
        "payment_method_options": {},
        "payment_method_types": ["card"],
        "processing": None,
        "receipt_email": None,
        "review": None,
        "setup_future_usage": None,
        "shipping": None,
        "source": None,
        "statement_descriptor": None,
        "statement_descriptor_suffix": None,
        "status": status,
        "transfer_data": None,
        "transfer_group": None,
    }


def _balance_transaction(amount: int, currency: str, source: str, category: str, description: str) -> dict[str, Any]:
    """A dispute's withdrawal or reinstatement (with Stripe's 15.00 dispute fee on the withdrawal)."""
    fee = 1500 if amount < 0 else 0
    now = int(time.time())
    return {
        "id": _new_id("txn_test_"),
        "object": "balance_transaction",
        "amount": amount,
        "available_on": now,
        "balance_type": "payments",
        "created": now,
        "currency": currency,
        "description": description,
        "exchange_rate": None,
        "fee": fee,
        "fee_details": [
            {
                "amount": fee,
                "application": None,
                "currency": currency,
                "description": "Dispute fee",
                "type": "stripe_fee",
            }
        ]
        if fee
        else [],
        "net": amount - fee,
        "reporting_category": category,
        "source": source,
        "status": "available",
        "type": "adjustment",
    }


def _dispute_object(charge: Mapping[str, Any], reason: str) -> dict[str, Any]:
    """A chargeback on `charge` (Stripe's fields), before its funds are withdrawn."""
    created = int(time.time())
    return {
        "id": _new_id("dp_test_"),
        "object": "dispute",
        "amount": charge["amount"] - charge["amount_refunded"],
        "balance_transactions": [],
        "charge": charge["id"],
        "created": created,
        "currency": charge["currency"],
        "enhanced_eligibility_types": [],
        "evidence": {
            **dict.fromkeys(_EVIDENCE_FIELDS),
            "enhanced_evidence": {},
        },
        "evidence_details": {
            "due_by": created + 21 * 24 * 3600,
            "enhanced_eligibility": {},
            "has_evidence": False,
            "past_due": False,
            "submission_count": 0,
            "submission_method": "not_submitted",
        },
        "is_charge_refundable": False,  # a chargeback: the funds are withdrawn, nothing left to refund
        "livemode": False,
        "metadata": {},
        "payment_intent": charge["payment_intent"],
        "payment_method_details": {
            "card": {
                "brand": TEST_CARD["brand"],
                "case_type": "chargeback",
                "network": TEST_CARD["brand"],
                "network_reason_code": "10.4",
            },
            "type": "card",
        },
        "reason": reason,
        "status": "needs_response",
    }


_EVIDENCE_FIELDS = (
    "access_activity_log", "billing_address", "cancellation_policy", "cancellation_policy_disclosure",
    "cancellation_rebuttal", "customer_communication", "customer_email_address", "customer_name",
    "customer_purchase_ip", "customer_signature", "duplicate_charge_documentation", "duplicate_charge_explanation",
    "duplicate_charge_id", "product_description", "receipt", "refund_policy", "refund_policy_disclosure",
    "refund_refusal_explanation", "service_date", "service_documentation", "shipping_address", "shipping_carrier",
    "shipping_date", "shipping_documentation", "shipping_tracking_number", "uncategorized_file",
    "uncategorized_text",
)  # fmt: skip


def _success(obj: Mapping[str, Any]) -> str:
    return str(obj["success_url"]).replace("{CHECKOUT_SESSION_ID}", obj["id"])


def _money_actions(session: _Session) -> str:
    """The dashboard's refund (in part: any amount up to what is left) and dispute controls for a charge."""
    charge, dispute = session.charge, session.dispute
    if charge is None:
        return ""
    base = f"/checkout/{quote(session.obj['id'])}"
    sid = html.escape(session.obj["id"])
    parts = []
    refunded = charge["amount_refunded"]
    if refunded:
        parts.append(
            f'<span class="refunded">{"refunded" if charge["refunded"] else "refunded in part"}: '
            f"{format_amount(refunded, charge['currency'])}</span>"
        )
    if not charge["refunded"] and not charge["disputed"]:
        remaining = charge["amount"] - refunded
        parts.append(
            f'<form method="post" action="{base}/refund" class="inline">'
            f'<input name="amount" type="number" min="1" max="{remaining}" value="{remaining}">'
            f'<button type="submit" id="refund-{sid}">Refund</button></form>'
        )
        parts.append(_button(f"{base}/dispute", f"dispute-{sid}", "Open a dispute", "inline"))
    if dispute is not None:
        parts.append(
            f'<span class="dispute" data-status="{html.escape(dispute["status"])}">dispute: '
            f"{html.escape(dispute['status'])}</span>"
        )
        if dispute["status"] not in ("won", "lost"):
            parts.append(_button(f"{base}/dispute-won", f"dispute-won-{sid}", "Dispute won", "inline"))
            parts.append(_button(f"{base}/dispute-lost", f"dispute-lost-{sid}", "Dispute lost", "inline"))
    return " ".join(parts)


def _webhook_switch(paused: bool) -> str:
    """Pause deliveries to lose events on purpose, e.g. to watch reconciliation settle them."""
    state = "paused: events are dropped (lost)" if paused else "delivering"
    value, id_, label = ("live", "resume-webhooks", "Resume") if paused else ("paused", "pause-webhooks", "Pause")
    button = f'<button type="submit" id="{id_}">{label}</button>'
    return (
        f'<form method="post" action="/_sandbox/webhooks" class="inline"><span id="webhooks" data-paused='
        f'"{str(paused).lower()}">Webhooks: {state}</span> <input type="hidden" name="state" value="{value}">'
        f"{button}</form>"
    )


def _button(action: str, id_: str, label: str, css: str = "") -> str:
    return (
        f'<form method="post" action="{action}"><button type="submit" id="{id_}" name="{id_}" '
        f'class="{css}">{html.escape(label)}</button></form>'
    )


def _integer(value: Any, param: str) -> int:
    try:
        return int(str(value), 10)
    except ValueError:
        raise _invalid(f"Invalid integer: {value}", param, "parameter_invalid_integer") from None


def _no_unknown(data: Mapping[str, Any], known: frozenset[str], where: str) -> None:
    unknown = sorted(set(data) - known)
    if unknown:
        param = f"{where}[{unknown[0]}]"
        raise _invalid(f"Received unknown parameter: {param}", param, "parameter_unknown")


def _metadata(raw: Any, param: str) -> dict[str, str]:
    """Stripe's metadata limits: 50 keys, keys up to 40 characters, values up to 500."""
    if raw in (None, ""):
        return {}
    if not isinstance(raw, dict) or any(not isinstance(v, str) for v in raw.values()):
        raise _invalid("Invalid hash", param, "parameter_invalid_empty")
    if len(raw) > 50 or any(len(k) > 40 or len(v) > 500 for k, v in raw.items()):
        raise _invalid("Metadata can have up to 50 keys, keys up to 40 characters and values up to 500.", param)
    return dict(raw)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *_: Any) -> None:
        return None


class _Handler(BaseHTTPRequestHandler):
    server_version = "stripe-sandbox"
    sys_version = ""

    @property
    def sandbox(self) -> StripeSandbox:
        return self.server.sandbox  # type: ignore[attr-defined]

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def _serve(self, method: str) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self._send(
                _json_reply(413, {"error": {"type": "invalid_request_error", "message": "Body too large"}}),
                method,
                url.path,
            )
            return
        body = self.rfile.read(length) if length else b""
        headers = dict(self.headers.items())
        try:
            if url.path.startswith("/v1/"):
                reply = self.sandbox._api(method, url.path, headers, body, url.query)
            else:
                reply = self.sandbox._browser(method, url.path, body)
        except Exception as exc:  # noqa: BLE001 - a sandbox bug must still answer, as Stripe's 500 would
            self.sandbox._say(f"internal error {type(exc).__name__}: {exc}")
            reply = _json_reply(500, {"error": {"type": "api_error", "message": "Sandbox internal error"}})
        if reply is None:  # an injected timeout: close without a word
            self.close_connection = True
            self.sandbox._say(f"{method} {url.path} -> dropped")
            return
        self._send(reply, method, url.path)

    def _send(self, reply: _Reply, method: str, path: str) -> None:
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("Stripe-Version", API_VERSION)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(reply.body)
        self.sandbox._say(f"{method} {path} -> {reply.status}")  # never headers: they carry the API key

    def log_message(self, format: str, *args: Any) -> None:
        """Silenced: `_send` logs one line per request, without headers or query strings."""


_CSS = (
    "body{font-family:system-ui,sans-serif;background:#f6f9fc;color:#1a1f36;margin:0}"
    "main{max-width:44rem;margin:2rem auto;background:#fff;padding:1.5rem 2rem;border-radius:8px;"
    "box-shadow:0 2px 8px #0001}table{width:100%;border-collapse:collapse;margin:1rem 0}"
    "td,th{padding:.4rem;border-bottom:1px solid #e3e8ee;text-align:left}"
    ".badge{display:inline-block;background:#ffde92;border-radius:4px;padding:.1rem .5rem;font-size:.8rem}"
    ".actions{display:flex;gap:.5rem;flex-wrap:wrap}button{padding:.6rem 1.2rem;border-radius:6px;"
    "border:1px solid #c1c9d2;background:#fff;cursor:pointer}button.primary{background:#635bff;color:#fff;"
    "border-color:#635bff}form.inline{display:inline}input{width:7rem}"
)


def main() -> None:
    """`python -m local.stripe_sandbox`: serve until Ctrl-C (env STRIPE_SANDBOX_PORT, STRIPE_WEBHOOK_URL,
    STRIPE_WEBHOOK_SECRET; optional STRIPE_SANDBOX_HOST, STRIPE_SANDBOX_PUBLIC_URL, STRIPE_SECRET_KEY)."""
    from local.defaults import LOCAL_STRIPE_WEBHOOK_SECRET

    sandbox = StripeSandbox(
        os.environ.get("STRIPE_SANDBOX_HOST", "127.0.0.1"),
        int(os.environ.get("STRIPE_SANDBOX_PORT") or DEFAULT_PORT),
        api_key=os.environ.get("STRIPE_SECRET_KEY") or None,
        webhook_url=os.environ.get("STRIPE_WEBHOOK_URL") or None,
        webhook_secret=os.environ.get("STRIPE_WEBHOOK_SECRET") or LOCAL_STRIPE_WEBHOOK_SECRET,
        public_url=os.environ.get("STRIPE_SANDBOX_PUBLIC_URL") or None,
    )
    base = sandbox.start()
    secret_source = "from the environment" if os.environ.get("STRIPE_WEBHOOK_SECRET") else "local default"
    sys.stderr.write(  # where the secret comes from, never the secret
        f"Stripe sandbox on {base} (STRIPE_API_BASE={base}); dashboard {sandbox.public_url}/\n"
        f"Webhooks to {sandbox.webhook_url or '(none: set STRIPE_WEBHOOK_URL)'}, signed with the "
        f"STRIPE_WEBHOOK_SECRET {secret_source}\n"
    )
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        sandbox.stop()


if __name__ == "__main__":
    main()
