"""DynamoDB as the simulation sees it: moto underneath the process's own botocore client, reached
through a `before-send` handler that adds latency, faults, DynamoDB's transaction-conflict rule and
ClientRequestToken idempotency (moto implements neither of the last two).

Every HTTP attempt botocore makes (its own retries included) comes here, so throttling, 500s and
lost answers go through botocore's real retry logic and the layer's own. The handler is the
transport: it yields to the scheduler (the I/O point), then either answers with a fault or has
moto execute the request.

- Throttling / 500: answered without executing (DynamoDB refused the request).
- Lost answer: executed (committed), then the connection drops: botocore retries the same HTTP
  request, with the same auto-generated ClientRequestToken for a TransactWriteItems.
- Transaction conflicts, DynamoDB's rule: a TransactWriteItems is in flight from its arrival until
  it executes, one latency later. Another TransactWriteItems touching one of its items in that
  window is cancelled (TransactionCanceledException, reason TransactionConflict on that item); a
  PutItem/UpdateItem/DeleteItem of such an item fails with TransactionConflictException.
- ClientRequestToken: a TransactWriteItems that succeeded is remembered for 10 minutes by its
  token; the same token with the same parameters answers success without applying anything, with
  other parameters IdempotentParameterMismatchException, and while the first is still in flight
  TransactionInProgressException.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from botocore.awsrequest import AWSResponse
from botocore.exceptions import ConnectionClosedError
from moto.core.botocore_stubber import MockRawResponse

from .scheduler import Killed, Scheduler

TOKEN_WINDOW_SECONDS = 600
PREFIX = "com.amazonaws.dynamodb.v20120810#"
READS = frozenset({"GetItem", "BatchGetItem", "Query", "Scan", "TransactGetItems", "DescribeTable"})
SINGLE_WRITES = frozenset({"PutItem", "UpdateItem", "DeleteItem"})
LATENCY = {"read": (0.002, 0.009), "write": (0.004, 0.014), "txn": (0.008, 0.030)}


@dataclass
class DynamoFaults:
    """Per-attempt probabilities. `bursts` is the share of 10-second windows of virtual time in
    which DynamoDB throttles most requests (throttling comes in bursts)."""

    throttle: float = 0.0
    server_error: float = 0.0
    lost: float = 0.0
    slow: float = 0.0  # this attempt takes 20x as long
    bursts: float = 0.0

    @property
    def any(self) -> bool:
        return any((self.throttle, self.server_error, self.lost, self.slow, self.bursts))


@dataclass
class Call:
    """One HTTP attempt as DynamoDB receives it."""

    op: str
    body: dict[str, Any]
    task: str
    function: str | None
    attempt: int  # 1 for the task's first call of this operation, 2 for its second...
    keys: frozenset[tuple[str, str]] = frozenset()
    context: dict[str, Any] = field(default_factory=dict)  # the calling task's (its invocation)
    count: int | None = None  # a Query's answer: how many items it returned

    @property
    def tables(self) -> set[str]:
        return {table for table, _ in self.keys} | _tables_of(self.op, self.body)


@dataclass
class Rule:
    """A scripted fault (scenarios): the first `times` calls matching `when` get `fault`."""

    when: Callable[[Call], bool]
    fault: str  # throttle | throttle_txn | server_error | denied | lost | conflict | slow:<seconds>
    times: int = 1


@dataclass
class _Token:
    fingerprint: str
    expires: float | None  # None: still in flight


@dataclass
class DynamoStats:
    operations: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    conflicts: int = 0  # transactions cancelled with TransactionConflict, single writes refused
    condition_failures: int = 0  # transactions cancelled by a ConditionalCheckFailed
    token_replays: int = 0


class DynamoDB:
    def __init__(self, scheduler: Scheduler, rng: random.Random, faults: DynamoFaults, seed: int) -> None:
        self.scheduler = scheduler
        self.rng = rng
        self.faults = faults
        self.seed = seed
        self.enabled = True  # faults on; the quiescent end of a run turns them off
        self.rules: list[Rule] = []
        self.stats = DynamoStats()
        self.trace: list[str] = []
        self.listeners: list[Callable[[Call], None]] = []  # writes DynamoDB applied
        self.observers: list[Callable[[Call, str], None]] = []  # every attempt and its outcome
        self._in_flight: dict[tuple[str, str], int] = {}  # item -> id of the transaction holding it
        self._tokens: dict[str, _Token] = {}
        self._attempts: Counter[tuple[int, str]] = Counter()
        self._ids = 0
        self._key_attrs: dict[str, list[str]] = {}

    # ------------------------------------------------------------------ wiring

    def install(self, client: Any) -> None:
        """Become the transport of `client`: moto's own stubber must not run as well (it would
        execute every request a second time), so it is taken off this client's handlers; moto is
        then reached through it explicitly, only when DynamoDB would execute the request."""
        from moto.core.models import botocore_stubber

        client.meta.events.unregister("before-send", botocore_stubber)
        client.meta.events.register_first("before-send.dynamodb", self._handle)
        self._moto = botocore_stubber

    def backend(self) -> Any:
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.dynamodb.models import dynamodb_backends

        return dynamodb_backends[DEFAULT_ACCOUNT_ID]["us-east-1"]

    # ------------------------------------------------------------------ one HTTP attempt

    def _handle(self, request: Any, **_: Any) -> AWSResponse:
        target = request.headers.get("X-Amz-Target") or ""
        op = (target.decode() if isinstance(target, bytes) else target).split(".")[-1]
        body = json.loads(request.body or b"{}")
        task = self.scheduler.current()
        self.stats.operations[op] += 1
        if task is None:  # the world being set up: no latency, no faults
            return self._execute(request)
        function = task.context.get("function")
        self._attempts[(task.id, op)] += 1
        call = Call(op, body, task.name, function, self._attempts[(task.id, op)], self._keys(op, body), task.context)
        fault, latency = self._decide(call)
        self._ids += 1
        txn_id = self._ids

        # What DynamoDB decides when the request arrives.
        early: AWSResponse | None = None
        token = body.get("ClientRequestToken") if op == "TransactWriteItems" else None
        registered: list[tuple[str, str]] = []
        if fault in ("throttle", "throttle_txn", "server_error", "denied"):
            early = self._fault_response(op, fault, call)
        elif op == "TransactWriteItems":
            early = self._token_answer(token, body)
            if early is None:
                busy = [key for key in call.keys if key in self._in_flight]
                if busy or fault == "conflict":
                    early = self._conflict_response(body, busy or sorted(call.keys)[:1])
                else:
                    registered = sorted(call.keys)
                    for key in registered:
                        self._in_flight[key] = txn_id
                    if token:
                        self._tokens[token] = _Token(_fingerprint(body), None)

        try:
            self.scheduler.io(latency)
        except Killed as killed:
            if killed.reason == "timeout" and early is None and op not in READS:
                self._finish(call, request, token, registered)  # it was sent: DynamoDB executes it anyway
            else:
                self._release(registered, token)
            raise
        if early is not None:
            self._release(registered, token)
            self._log(call, ("fault-" if fault else "") + self._outcome_of(early))
            return early
        if op in SINGLE_WRITES and any(key in self._in_flight for key in call.keys):
            self._log(call, "TransactionConflictException")
            self.stats.conflicts += 1
            return _error(400, "TransactionConflictException", "Transaction is ongoing for the item")
        response = self._finish(call, request, token, registered)
        if op == "Query" and response.status_code == 200:
            call.count = int(json.loads(response.content).get("Count", 0))
        self.scheduler.after_io()
        if fault == "lost":
            self.stats.faults["lost"] += 1
            self._log(call, "lost-after-" + self._outcome_of(response))
            raise ConnectionClosedError(endpoint_url=request.url)
        self._log(call, self._outcome_of(response))
        return response

    def _finish(self, call: Call, request: Any, token: str | None, registered: list[tuple[str, str]]) -> AWSResponse:
        try:
            response = self._execute(request)
        finally:
            for key in registered:
                self._in_flight.pop(key, None)
        if token:
            if response.status_code == 200:
                self._tokens[token] = _Token(_fingerprint(call.body), self.scheduler.clock.now + TOKEN_WINDOW_SECONDS)
            else:
                self._tokens.pop(token, None)
        if call.op == "TransactWriteItems" and response.status_code != 200:
            reasons = json.loads(response.content or b"{}").get("CancellationReasons") or []
            if any(r.get("Code") == "ConditionalCheckFailed" for r in reasons):
                self.stats.condition_failures += 1
        if response.status_code == 200 and call.op not in READS:
            for listener in self.listeners:
                listener(call)
        return response

    def _release(self, registered: list[tuple[str, str]], token: str | None) -> None:
        for key in registered:
            self._in_flight.pop(key, None)
        if token and self._tokens.get(token) is not None and self._tokens[token].expires is None:
            del self._tokens[token]

    def _execute(self, request: Any) -> AWSResponse:
        answer = self._moto.process_request(request)
        assert answer is not None, f"moto does not serve {request.url}"
        status, headers, body = answer
        return AWSResponse(request.url, status, headers, MockRawResponse(body))

    # ------------------------------------------------------------------ decisions

    def _decide(self, call: Call) -> tuple[str | None, float]:
        kind = "read" if call.op in READS else "txn" if call.op == "TransactWriteItems" else "write"
        low, high = LATENCY[kind]
        latency = self.rng.uniform(low, high)
        for rule in self.rules:
            if rule.times > 0 and rule.when(call):
                rule.times -= 1
                if rule.fault.startswith("slow:"):
                    return None, float(rule.fault.split(":", 1)[1])
                self.stats.faults[rule.fault] += 1
                return rule.fault, latency
        if not self.enabled or not self.faults.any:
            return None, latency
        faults = self.faults
        if faults.slow and self.rng.random() < faults.slow:
            latency *= 20
            self.stats.faults["slow"] += 1
        throttle = faults.throttle
        if faults.bursts and self._in_burst():
            throttle = max(throttle, 0.6)
        draw = self.rng.random()
        for name, chance in (("throttle", throttle), ("server_error", faults.server_error), ("lost", faults.lost)):
            if draw < chance:
                fault = name
                if fault == "throttle" and call.op == "TransactWriteItems" and self.rng.random() < 0.5:
                    fault = "throttle_txn"  # DynamoDB may report it as a cancellation reason instead
                if fault != "lost":  # counted when it happens
                    self.stats.faults[fault] += 1
                return fault, latency
            draw -= chance
        return None, latency

    def _in_burst(self) -> bool:
        window = int(self.scheduler.clock.elapsed // 10)
        return random.Random(f"burst-{self.seed}-{window}").random() < self.faults.bursts

    def _token_answer(self, token: str | None, body: dict[str, Any]) -> AWSResponse | None:
        if not token:
            return None
        known = self._tokens.get(token)
        if known is None:
            return None
        if known.expires is None:
            return _error(
                400,
                "TransactionInProgressException",
                "The transaction with the given request token is already in progress.",
            )
        if known.expires < self.scheduler.clock.now:
            del self._tokens[token]
            return None
        if known.fingerprint != _fingerprint(body):
            return _error(
                400,
                "IdempotentParameterMismatchException",
                "The request uses the same client token as a previous, but non-identical request.",
            )
        self.stats.token_replays += 1
        return AWSResponse("", 200, {"Content-Type": "application/x-amz-json-1.0"}, MockRawResponse(b"{}"))

    def _conflict_response(self, body: dict[str, Any], busy: Iterable[tuple[str, str]]) -> AWSResponse:
        self.stats.conflicts += 1
        busy = set(busy)
        reasons = []
        for entry in body.get("TransactItems", []):
            keys = self._keys_of_entry(entry)
            if keys & busy:
                reasons.append({"Code": "TransactionConflict", "Message": "Transaction is ongoing for the item"})
            else:
                reasons.append({"Code": "None"})
        return _cancelled(reasons)

    def _fault_response(self, op: str, fault: str, call: Call) -> AWSResponse:
        if fault == "server_error":
            return _error(500, "InternalServerError", "Internal server error")
        if fault == "denied":  # IAM refuses the call (a grant dropped by a deploy): a 400 botocore never retries
            return _error(400, "AccessDeniedException", f"User is not authorized to perform: dynamodb:{op}")
        if fault == "throttle_txn":
            reasons = [{"Code": "None"} for _ in call.body.get("TransactItems", [])]
            if reasons:
                reasons[0] = {"Code": "ThrottlingError", "Message": "Throughput exceeds the current capacity."}
            return _cancelled(reasons)
        return _error(400, "ThrottlingException", "Rate of requests exceeds the allowed throughput.")

    # ------------------------------------------------------------------ items

    def _key_attributes(self, table: str) -> list[str]:
        attrs = self._key_attrs.get(table)
        if attrs is None:
            found = self.backend().tables.get(table)
            attrs = list(found.table_key_attrs) if found is not None else []
            self._key_attrs[table] = attrs
        return attrs

    def _item_key(self, table: str, item: dict[str, Any]) -> tuple[str, str]:
        attrs = self._key_attributes(table)
        return table, json.dumps({a: item.get(a) for a in attrs}, sort_keys=True)

    def _keys_of_entry(self, entry: dict[str, Any]) -> set[tuple[str, str]]:
        ((_, request),) = entry.items()
        source = request.get("Key") or request.get("Item") or {}
        return {self._item_key(request["TableName"], source)}

    def _keys(self, op: str, body: dict[str, Any]) -> frozenset[tuple[str, str]]:
        if op == "TransactWriteItems":
            keys: set[tuple[str, str]] = set()
            for entry in body.get("TransactItems", []):
                keys |= self._keys_of_entry(entry)
            return frozenset(keys)
        if op in SINGLE_WRITES or op == "GetItem":
            return frozenset({self._item_key(body["TableName"], body.get("Key") or body.get("Item") or {})})
        return frozenset()

    # ------------------------------------------------------------------ trace

    def _log(self, call: Call, outcome: str) -> None:
        for observer in self.observers:
            observer(call, outcome)
        digest = hashlib.sha1(json.dumps(call.body, sort_keys=True).encode()).hexdigest()[:10]
        self.trace.append(f"{self.scheduler.clock.elapsed:.6f} {call.task} ddb {call.op} {digest} {outcome}")

    @staticmethod
    def _outcome_of(response: AWSResponse) -> str:
        if response.status_code == 200:
            return "ok"
        try:
            error = json.loads(response.content or b"{}")
        except ValueError:
            return str(response.status_code)
        code = str(error.get("__type", "")).split("#")[-1]
        reasons = error.get("CancellationReasons")
        if reasons:
            code += "[" + ",".join(r.get("Code", "") for r in reasons) + "]"
        return code


def _tables_of(op: str, body: dict[str, Any]) -> set[str]:
    if "TableName" in body:
        return {body["TableName"]}
    if op in ("BatchGetItem", "BatchWriteItem"):
        return set(body.get("RequestItems", {}))
    if op == "TransactWriteItems":
        return {next(iter(e.values()))["TableName"] for e in body.get("TransactItems", [])}
    return set()


def _fingerprint(body: dict[str, Any]) -> str:
    rest = {k: v for k, v in body.items() if k != "ClientRequestToken"}
    return hashlib.sha256(json.dumps(rest, sort_keys=True).encode()).hexdigest()


def _raw(status: int, payload: dict[str, Any]) -> AWSResponse:
    body = json.dumps(payload).encode()
    headers = {"Content-Type": "application/x-amz-json-1.0", "x-amzn-RequestId": "simulated"}
    return AWSResponse("", status, headers, MockRawResponse(body))


def _cancelled(reasons: list[dict[str, str]]) -> AWSResponse:
    codes = ", ".join(r["Code"] for r in reasons)
    message = f"Transaction cancelled, please refer cancellation reasons for specific reasons [{codes}]"
    return _raw(
        400, {"__type": PREFIX + "TransactionCanceledException", "Message": message, "CancellationReasons": reasons}
    )


def _error(status: int, code: str, message: str) -> AWSResponse:
    return _raw(status, {"__type": PREFIX + code, "message": message})
