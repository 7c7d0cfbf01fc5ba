"""Stripe, in-process: local/stripe_sandbox.py's request dispatcher (sessions, idempotency keys,
charges, signed events) behind stripe-python, with no sockets, on virtual time, with faults.

stripe-python reaches it through the layer's own `BoundedUrllibClient`: only the opener that
client builds (`stripe_checkout._TimeoutOpener`) is replaced, so stripe-python's retries, its
idempotency keys and the client's timeout handling all run as in production. Each request is an
I/O point. Faults: a 500, an answer lost after processing (stripe-python retries with the same
idempotency key and gets the saved answer), an answer slower than the client's timeout (processed,
then the client times out), and `idempotency_key_in_use` (409) for a request whose key is already
being processed, which stripe-python retries.

Idempotency as Stripe API v1 documents it ("Idempotent requests"): a result is saved for its key
once the endpoint started executing, 500s included, and replayed to every retry under that key
(with `Stripe-Should-Retry: false`, so stripe-python does not retry a replayed 500); a 500 from
before the endpoint ran saves nothing (half of the injected 500s, drawn); keys are forgotten
after 24 hours; a request whose key is in flight is refused with `idempotency_key_in_use`.

What the sandbox does not do and Stripe does is added here: sessions expire at `expires_at`
(with their `checkout.session.expired` event), PaymentIntents can be retrieved (on their own or
expanded on a session), and events go to the world's delivery queue instead of over HTTP.
"""

from __future__ import annotations

import copy
import email.message
import hashlib
import io
import json
import random
import urllib.error
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from local.stripe_sandbox import StripeApiError, StripeSandbox, _json_reply, _Reply, _Saved

from .ledger import Ledger
from .scheduler import Killed, Scheduler

STRIPE_API = "https://api.stripe.com"
LATENCY = {"create": (0.15, 0.6), "retrieve": (0.05, 0.3), "expire": (0.1, 0.4), "other": (0.05, 0.3)}
KEY_LIFETIME = 24 * 3600  # Stripe forgets an idempotency key after 24 hours
SERVER_ERROR = {"error": {"type": "api_error", "message": "An unknown error occurred"}}


@dataclass
class StripeFaults:
    server_error: float = 0.0
    lost: float = 0.0
    slow: float = 0.0  # this answer comes after the client's timeout
    slow_episodes: float = 0.0  # share of ten-minute windows in which every answer takes 6-14 s (timeouts: 4-8 s)

    @property
    def any(self) -> bool:
        return any((self.server_error, self.lost, self.slow, self.slow_episodes))


@dataclass
class StripeCall:
    method: str
    path: str
    idempotency_key: str | None
    task: str
    function: str | None
    attempt: int

    @property
    def kind(self) -> str:
        if self.method == "POST" and self.path.rstrip("/") == "/v1/checkout/sessions":
            return "create"
        if self.path.endswith("/expire"):
            return "expire"
        if self.method == "GET":
            return "retrieve"
        return "other"


@dataclass
class StripeRule:
    when: Callable[[StripeCall], bool]
    fault: str  # server_error | lost | slow:<seconds>
    times: int = 1


@dataclass
class StripeStats:
    requests: int = 0
    faults: dict[str, int] = field(default_factory=dict)
    keys_in_use: int = 0


LISTING_LAG = 90  # seconds; within the sweep's 5-minute overlap


def _listing_lag(event: dict[str, Any]) -> float:
    return int(hashlib.sha256(str(event["id"]).encode()).hexdigest(), 16) % (LISTING_LAG + 1)


class SimulatedStripe(StripeSandbox):
    def __init__(
        self,
        scheduler: Scheduler,
        rng: random.Random,
        faults: StripeFaults,
        webhook_secret: str,
        seed: int,
        ledger: Ledger | None = None,
    ) -> None:
        super().__init__(webhook_secret=webhook_secret, quiet=True)
        self.seed = seed
        self.ledger = ledger or Ledger()
        self._key_saved_at: dict[str, float] = {}
        self.closed_at: dict[str, float] = {}  # session -> when it closed unpaid (expired, declined)
        self._failing_inside = False  # the request being processed fails with a 500 once executing
        self.scheduler = scheduler
        self.rng = rng
        self.faults = faults
        self.enabled = True
        self.rules: list[StripeRule] = []
        self.stats = StripeStats()
        self.trace: list[str] = []
        self.observers: list[Callable[[StripeCall, str], None]] = []
        self.on_event: Callable[[dict[str, Any]], None] = lambda event: None
        self._keys_in_flight: set[str] = set()
        self._attempts: dict[tuple[int, str], int] = {}
        self.created_at: dict[str, float] = {}  # session id -> virtual time Stripe created it
        self.on_created: Callable[[dict[str, Any]], None] = lambda session: None
        # Every List Events request as Stripe receives it: (the invocation, created[gte], created[lt], when).
        self.event_reads: list[tuple[Any, int, int | None, float]] = []
        # Stripe's API is eventually consistent: an event may appear in List Events a little after
        # its `created` (why the sweep re-reads 5 minutes back). Here each event is listed up to
        # LISTING_LAG seconds late, by its id (no draw from the seed's rng); a scenario may choose.
        self.listing_lag: Callable[[dict[str, Any]], float] = _listing_lag
        self.listed_at: dict[str, float] = {}

    # ------------------------------------------------------------------ events go to the world

    def event(self, type_: str, obj: Any, **kwargs: Any) -> dict[str, Any]:
        event = super().event(type_, obj, **kwargs)
        self.listed_at[event["id"]] = self.scheduler.clock.now + self.listing_lag(event)
        return event

    def _list_events(self, params: Any) -> dict[str, Any]:
        """List Events as Stripe answers it: an event only once it is listed."""
        everything, now = self._events, self.scheduler.clock.now
        self._events = [e for e in everything if self.listed_at.get(e["id"], 0.0) <= now]
        try:
            return super()._list_events(params)
        finally:
            self._events = everything

    def deliver(self, event_: Any) -> Any:
        self.on_event(copy.deepcopy(dict(event_)))
        return None

    # ------------------------------------------------------------------ what the sandbox lacks

    def _route(
        self, method: str, path: str, params: dict[str, Any], headers: Any
    ) -> tuple[_Reply, list[dict[str, Any]]]:
        parts = path.strip("/").split("/")
        if parts[:2] == ["v1", "payment_intents"] and len(parts) == 3 and method == "GET":
            with self._lock:
                return _json_reply(200, self.payment_intent(parts[2])), []
        if parts[:3] == ["v1", "checkout", "sessions"] and len(parts) == 4 and method == "GET":
            expand = params.get("expand") or []
            with self._lock:
                obj = copy.deepcopy(self._get(parts[3]).obj)
            if "payment_intent" in expand and obj.get("payment_intent"):
                obj["payment_intent"] = self.payment_intent(obj["payment_intent"])
            return _json_reply(200, obj), []
        reply, events = super()._route(method, path, params, headers)
        if (
            method == "POST"
            and len(parts) == 3
            and reply.status == 200
            and not reply.headers.get("Idempotent-Replayed")
        ):
            session = json.loads(reply.body)
            self.created_at[session["id"]] = self.scheduler.clock.now
            self.ledger.session_created(session, self.scheduler.clock.now)
            self.on_created(session)
        return reply, events

    def _idempotent(
        self, path: str, params: dict[str, Any], headers: Any, work: Callable[[], Any]
    ) -> tuple[_Reply, list[dict[str, Any]]]:
        key = headers.get("idempotency-key")
        now = self.scheduler.clock.now
        with self._lock:
            for old in [k for k, at in self._key_saved_at.items() if now - at >= KEY_LIFETIME]:
                self._idempotency.pop(old, None)
                del self._key_saved_at[old]
            if self._failing_inside and key and key not in self._idempotency:
                # The endpoint started executing and failed: Stripe saves that 500 for the key.
                body = json.dumps(SERVER_ERROR).encode()
                self._idempotency[key] = _Saved(path, json.dumps(params, sort_keys=True), 500, body)
                self._key_saved_at[key] = now
        if self._failing_inside and not key:
            return _json_reply(500, SERVER_ERROR), []
        reply, events = super()._idempotent(path, params, headers, work)
        if key and key not in self._key_saved_at and key in self._idempotency:
            self._key_saved_at[key] = now
        if reply.status >= 500:
            reply.headers["Stripe-Should-Retry"] = "false"  # a replayed result: retrying cannot help
        return reply, events

    def payment_intent(self, intent_id: str) -> dict[str, Any]:
        with self._lock:
            session = next((s for s in self._sessions.values() if s.obj.get("payment_intent") == intent_id), None)
            if session is None:
                raise StripeApiError(
                    404, "invalid_request_error", f"No such payment_intent: '{intent_id}'", code="resource_missing"
                )
            obj = session.obj
            if session.delayed == "processing":
                status = "processing"
            elif session.delayed == "failed":
                status = "requires_payment_method"  # what a failed delayed payment leaves
            elif obj.get("payment_status") == "paid":
                status = "succeeded"
            else:
                status = "requires_payment_method"
            return {
                "id": intent_id,
                "object": "payment_intent",
                "amount": obj["amount_total"],
                "currency": obj["currency"],
                "status": status,
                "metadata": dict(session.intent_metadata),
                "latest_charge": session.charge["id"] if session.charge else None,
            }

    def expire_due(self) -> None:
        """Stripe expires open sessions at `expires_at` and sends checkout.session.expired."""
        now = self.scheduler.clock.now
        events = []
        with self._lock:
            for session in self._sessions.values():
                obj = session.obj
                if obj["status"] == "open" and obj["expires_at"] <= now:
                    obj.update(status="expired", url=None)
                    self.closed_at[obj["id"]] = now
                    events.append(self.event("checkout.session.expired", obj))
        for event in events:
            self.deliver(event)

    def act(self, session_id: str, action: str, form: dict[str, str] | None = None) -> int:
        """A customer's (or the dashboard's) button; returns the page's status (303 done, 409 refused).
        Money that moved is written into the outside world's books as it moves."""
        self.expire_due()
        before = self.session_state(session_id) if session_id in self._sessions else None
        reply = self._act(session_id, action, form or {})
        if session_id in self._sessions and before is not None:
            state = self.session_state(session_id)
            self._book(session_id, before, state)
            if state["obj"]["status"] == "expired" or state["delayed"] == "failed":
                self.closed_at.setdefault(session_id, self.scheduler.clock.now)
        return reply.status

    def _expire_api(self, session_id: str, request: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        result = super()._expire_api(session_id, request)
        self.closed_at.setdefault(session_id, self.scheduler.clock.now)
        return result

    def _book(self, session_id: str, before: dict[str, Any], after: dict[str, Any]) -> None:
        """Write what the action moved into the outside world's books: a capture, a refund, a dispute."""
        charge, was = after["charge"], before["charge"]
        if charge is None:
            return
        now = self.scheduler.clock.now
        intent, currency = str(charge["payment_intent"]), str(charge["currency"])
        if was is None:
            self.ledger.stripe_captured(session_id, intent, int(charge["amount_captured"]), currency, now)
        if int(charge["amount_refunded"]) != int((was or {}).get("amount_refunded", 0)):
            self.ledger.stripe_refunded(intent, int(charge["amount_refunded"]), currency)
        dispute = after["dispute"]
        if dispute is not None and before["dispute"] is None:
            self.ledger.disputed(intent, dispute["id"], int(dispute["amount"]), currency, now)
        if dispute is not None and dispute["status"] in ("won", "lost"):
            self.ledger.dispute_closed(intent, dispute["id"], dispute["status"])

    def edit_metadata(self, session_id: str, **values: str) -> None:
        """Someone edits the session's metadata in the Dashboard (it travels in later events)."""
        with self._lock:
            self._sessions[session_id].obj["metadata"].update(values)

    def session_state(self, session_id: str) -> dict[str, Any]:
        with self._lock:
            session = self._sessions[session_id]
            return {
                "obj": copy.deepcopy(session.obj),
                "delayed": session.delayed,
                "charge": copy.deepcopy(session.charge),
                "dispute": copy.deepcopy(session.dispute),
            }

    def all_sessions(self) -> list[str]:
        with self._lock:
            return list(self._sessions)

    # ------------------------------------------------------------------ the wire

    def urlopen(self, request: Any, timeout: float | None = None, **_: Any) -> _Response:
        """`urllib.request.urlopen` as the layer's Stripe HTTP client calls it: an HTTP error status
        raises HTTPError, as urllib does."""
        if not str(request.full_url).startswith(STRIPE_API):
            raise AssertionError(f"the simulation reaches only Stripe, not {request.full_url}")
        response = self.exchange(request, timeout if timeout is not None else 80.0)
        if response.status >= 400:
            headers = email.message.Message()
            for name, value in response.headers.items():
                headers[name] = value
            raise urllib.error.HTTPError(
                request.full_url, response.status, "Stripe error", headers, io.BytesIO(response.read())
            )
        return response

    def opener_class(self) -> type:
        world = self

        class SimulatedOpener:
            """Replaces the layer's `_TimeoutOpener`: `open(request)` is one HTTP exchange with Stripe."""

            def __init__(self, timeout: float) -> None:
                self.timeout = timeout

            def open(self, request: Any) -> Any:
                return world.exchange(request, self.timeout)

        return SimulatedOpener

    def exchange(self, request: Any, timeout: float) -> _Response:
        url = urlsplit(request.full_url)
        method = request.get_method().upper()
        headers = dict(request.header_items())
        key = next((v for k, v in headers.items() if k.lower() == "idempotency-key"), None)
        task = self.scheduler.current()
        task_id = task.id if task else 0
        self._attempts[(task_id, url.path)] = self._attempts.get((task_id, url.path), 0) + 1
        call = StripeCall(
            method,
            url.path,
            key,
            task.name if task else "world",
            task.context.get("function") if task else None,
            self._attempts[(task_id, url.path)],
        )
        self.stats.requests += 1
        if method == "GET" and url.path == "/v1/events":
            query = parse_qs(url.query)
            since, before = query.get("created[gte]"), query.get("created[lt]")
            if since:
                invocation = task.context.get("invocation") if task else None
                end = int(before[0]) if before else None
                self.event_reads.append((invocation, int(since[0]), end, self.scheduler.clock.now))
        fault, latency = self._decide(call)
        if key and key in self._keys_in_flight:
            self.stats.keys_in_use += 1
            self.scheduler.io(self.rng.uniform(0.02, 0.08))
            self._log(call, "409-idempotency_key_in_use")
            return _Response(409, _in_use(key))
        if fault == "server_error" and (method != "POST" or not key or self.rng.random() < 0.5):
            # Failed before the endpoint ran (e.g. at Stripe's edge): nothing saved; stripe-python may retry.
            self.scheduler.io(latency)
            self._log(call, "fault-500")
            return _Response(500, SERVER_ERROR)
        if fault == "server_error":
            # Failed while executing: the 500 is the request's saved result for its key.
            self.scheduler.io(latency)
            self._failing_inside = True
            try:
                reply = self._process(method, url, headers, request)
            finally:
                self._failing_inside = False
            self._log(call, f"fault-500-saved-{reply.status}")
            return _Response(reply.status, reply.body, reply.headers)
        # Stripe does the work part of the way through the exchange; the rest is the answer
        # travelling back (a session can be paid before our checkout hears of it).
        late = latency > timeout
        waited = min(latency, timeout)
        work = waited * self.rng.uniform(0.2, 0.8)
        if key:
            self._keys_in_flight.add(key)
        try:
            self.scheduler.io(work)
        except Killed as killed:
            if killed.reason == "timeout":
                self._process(method, url, headers, request)  # it was sent: Stripe does the work anyway
            self._keys_in_flight.discard(key or "")
            self._log(call, f"killed-{killed.reason}")
            raise
        reply = self._process(method, url, headers, request)
        self._keys_in_flight.discard(key or "")
        try:
            self.scheduler.io(waited - work)
            self.scheduler.after_io()
        except Killed as killed:
            self._log(call, f"{reply.status}-then-killed-{killed.reason}")
            raise
        if fault == "lost" or late:
            self._log(call, f"fault-{reply.status}-then-timeout")
            raise TimeoutError("The read operation timed out")
        self._log(call, str(reply.status))
        return _Response(reply.status, reply.body, reply.headers)

    def _process(self, method: str, url: Any, headers: dict[str, str], request: Any) -> _Reply:
        body = request.data or b""
        if isinstance(body, str):
            body = body.encode()
        reply = self._api(method, url.path, headers, body, url.query)
        if reply is None:  # the sandbox's own fault injection is not used here
            raise AssertionError("unexpected dropped connection from the sandbox")
        return reply

    def _decide(self, call: StripeCall) -> tuple[str | None, float]:
        low, high = LATENCY[call.kind]
        latency = self.rng.uniform(low, high)
        for rule in self.rules:
            if rule.times > 0 and rule.when(call):
                rule.times -= 1
                self.stats.faults[rule.fault] = self.stats.faults.get(rule.fault, 0) + 1
                if rule.fault.startswith("slow:"):
                    return None, float(rule.fault.split(":", 1)[1])
                return rule.fault, latency
        if not self.enabled or not self.faults.any:
            return None, latency
        faults = self.faults
        if faults.slow_episodes and self._in_slow_episode():
            latency = self.rng.uniform(6.0, 14.0)
        elif faults.slow and self.rng.random() < faults.slow:
            latency = self.rng.uniform(5.0, 15.0)
        draw = self.rng.random()
        if draw < faults.server_error:
            self.stats.faults["server_error"] = self.stats.faults.get("server_error", 0) + 1
            return "server_error", latency
        if draw < faults.server_error + faults.lost:
            self.stats.faults["lost"] = self.stats.faults.get("lost", 0) + 1
            return "lost", latency
        return None, latency

    def _in_slow_episode(self) -> bool:
        window = int(self.scheduler.clock.elapsed // 600)  # incidents last ten minutes, after the first
        return window > 0 and random.Random(f"stripe-slow-{self.seed}-{window}").random() < self.faults.slow_episodes

    def _log(self, call: StripeCall, outcome: str) -> None:
        for observer in self.observers:
            observer(call, outcome)
        self.trace.append(f"{self.scheduler.clock.elapsed:.6f} {call.task} stripe {call.method} {call.path} {outcome}")


class _Response:
    """What urllib returns, as far as the layer's Stripe HTTP client reads it."""

    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        self.code = self.status = status
        self._body = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.headers = {"Content-Type": "application/json", **(headers or {})}

    def read(self) -> bytes:
        return self._body

    def info(self) -> dict[str, str]:
        return dict(self.headers)

    def __enter__(self) -> _Response:
        return self

    def __exit__(self, *_: object) -> None:
        return None


def _in_use(key: str) -> dict[str, Any]:
    return {
        "error": {
            "type": "idempotency_error",
            "code": "idempotency_key_in_use",
            "message": f"There is currently another in-progress request using this Idempotent Key: {key}.",
        }
    }
