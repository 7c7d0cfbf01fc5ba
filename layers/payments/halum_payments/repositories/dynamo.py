"""The DynamoDB client, item (de)serialisation and transaction plumbing. Only repositories import this."""

from __future__ import annotations

import functools
import hashlib
import json
import random
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Clamped, Context, Decimal, Inexact, Overflow, Rounded, Underflow
from typing import Any

from botocore.config import Config
from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from .. import deadline
from ..errors import TransientFault

# boto3.dynamodb.types' number context, exactly: what fits DynamoDB's numbers, nothing rounded.
DYNAMODB_CONTEXT = Context(Emin=-128, Emax=126, prec=38, traps=[Clamped, Overflow, Inexact, Rounded, Underflow])

# DynamoDB answers in milliseconds: a second to connect and two to read are generous, and bound how
# long one attempt can take (ATTEMPT_MS) so that the deadline guard below can fit it.
CONNECT_TIMEOUT_SECONDS = 1
READ_TIMEOUT_SECONDS = 2
CLIENT_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 4},
    connect_timeout=CONNECT_TIMEOUT_SECONDS,
    read_timeout=READ_TIMEOUT_SECONDS,
    tcp_keepalive=True,
    max_pool_connections=10,
)
ATTEMPT_MS = (CONNECT_TIMEOUT_SECONDS + READ_TIMEOUT_SECONDS) * 1000
# What an invocation keeps after its last AWS call: answering (the 503), its logs and metrics.
ANSWER_MS = 1000
# botocore's standard retry waits at most min(2 ** (attempt - 1), 20) s after a throttle (less after
# other errors), plus up to 5 s when DynamoDB sends x-amz-retry-after (botocore/retries/standard.py,
# ExponentialBackoff); the guard assumes the longest.
MAX_BACKOFF_SECONDS = 20
RETRY_AFTER_EXTRA_SECONDS = 5

# AWS answers a retry may fix. botocore retries most of them itself; what still fails after its
# retries is our fault, not the caller's: a 503 (http.py), so that a webhook sender retries.
TRANSIENT_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
        "TransactionInProgressException",
        "TransactionConflictException",  # a write that met an item in another transaction
    }
)


class OutOfTime(TransientFault):
    """Another AWS attempt (or retry) would not fit in the time the invocation has left: answered as
    our own retryable 503 while there is still time to answer."""


def bounded_by_deadline(client: Any) -> Any:
    """`client`, its every attempt and retry fitted into the invocation's remaining time (deadline.py):
    an attempt starts only if it can end, and leave time to answer, before the function's timeout;
    a retry only if its backoff wait fits too. Outside an invocation nothing changes."""
    service = client.meta.service_model.service_id.hyphenize()
    client.meta.events.register(f"request-created.{service}", _before_attempt)
    # First, so that botocore's own handler (which sleeps the backoff) never runs out of time.
    client.meta.events.register_first(f"needs-retry.{service}", _before_retry)
    return client


def _before_attempt(operation_name: str = "", **_: Any) -> None:
    left = deadline.remaining_ms()
    if left is not None and left < ATTEMPT_MS + ANSWER_MS:
        raise OutOfTime(f"{operation_name}: {left} ms left, not enough for an attempt")


def _before_retry(attempts: int, response: Any = None, caught_exception: BaseException | None = None, **_: Any) -> None:
    left = deadline.remaining_ms()
    if left is None or not _may_be_retried(response, caught_exception):
        return  # no deadline, or a success or a final answer (ConditionalCheckFailed...): botocore's
    wait = min(2 ** (attempts - 1), MAX_BACKOFF_SECONDS)
    if response is not None and "x-amz-retry-after" in response[0].headers:
        wait += RETRY_AFTER_EXTRA_SECONDS
    if left < wait * 1000 + ATTEMPT_MS + ANSWER_MS:
        last = type(caught_exception).__name__ if caught_exception else _error_code(response)
        raise OutOfTime(f"{left} ms left after {attempts} attempt(s) ({last}): no time for a retry")


def _may_be_retried(response: Any, caught_exception: BaseException | None) -> bool:
    """What botocore may retry: no answer (connection, timeout), a 5xx, throttling or a transient code."""
    if caught_exception is not None:
        return True
    if response is None:
        return False
    return bool(response[0].status_code >= 500 or _error_code(response) in TRANSIENT_CODES)


def _error_code(response: Any) -> str | None:
    code = (response[1].get("Error") or {}).get("Code") if response is not None else None
    return code if isinstance(code, str) else None


def is_transient(exc: BaseException) -> bool:
    """DynamoDB unreachable, or still throttling, failing or conflicting after the retries."""
    if isinstance(exc, (BotoConnectionError, HTTPClientError)):
        return True
    return isinstance(exc, ClientError) and exc.response.get("Error", {}).get("Code") in TRANSIENT_CODES


@functools.cache
def aws_session() -> Any:
    """The process's botocore session: its clients share one credential chain and one copy of
    botocore's loaded models and endpoint data. botocore's own session makes the same clients
    `boto3.client(...)` does (same credentials, region, endpoint and config resolution) without
    importing boto3 (s3transfer, concurrent.futures, resources: ~40 ms of a cold start)."""
    import botocore.session

    return botocore.session.get_session()


@functools.cache
def dynamodb_client() -> Any:
    """One client per process, created on first use. `AWS_ENDPOINT_URL_DYNAMODB` redirects it."""
    return bounded_by_deadline(aws_session().create_client("dynamodb", config=CLIENT_CONFIG))


class TableRepository:
    """One table's repository: its name, and the client to reach it (the process's, unless given)."""

    def __init__(self, table: str, client: Any = None) -> None:
        self.table = table
        self._client = client

    @property
    def client(self) -> Any:
        return self._client or dynamodb_client()


@functools.cache
def _boto3_types() -> tuple[Any, Any]:
    """boto3's TypeSerializer and TypeDeserializer, for the values the fast paths below leave to
    them (sets, binary, other mappings and sequences, floats, anything unusual)."""
    from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

    return TypeSerializer(), TypeDeserializer()


def to_attr(value: Any) -> dict[str, Any]:
    """boto3's TypeSerializer.serialize, with the common types (None, bool, str, int, Decimal,
    dict, list, tuple) done here: the same results and errors. Measured (bench/ab.py,
    docs/performance.md): boto3's own serializer and deserializer made a warm list of 100 2.1x slower."""
    fast = _FAST_TYPES.get(type(value))
    if fast is not None:
        return fast(value)
    # Subclasses (StrEnum, IntEnum...) in boto3's order; anything else is boto3's own.
    if isinstance(value, (int, Decimal)):
        return {"N": _number(value)}
    if isinstance(value, str):
        return {"S": value}
    result: dict[str, Any] = _boto3_types()[0].serialize(value)
    return result


# By exact type: a value cannot be two of these at once (bool is not int here).
_FAST_TYPES: dict[type, Callable[[Any], dict[str, Any]]] = {
    str: lambda value: {"S": value},
    int: lambda value: {"N": _number(value)},
    Decimal: lambda value: {"N": _number(value)},
    dict: lambda value: {"M": {k: to_attr(v) for k, v in value.items()}},
    type(None): lambda value: {"NULL": True},
    bool: lambda value: {"BOOL": value},
    list: lambda value: {"L": [to_attr(v) for v in value]},
    tuple: lambda value: {"L": [to_attr(v) for v in value]},
}


def _number(value: int | Decimal) -> str:
    number = str(DYNAMODB_CONTEXT.create_decimal(value))
    if number in ("Infinity", "NaN"):
        raise TypeError("Infinity and NaN not supported")
    return number


def from_attr(value: Mapping[str, Any]) -> Any:
    """boto3's TypeDeserializer.deserialize, with S, N, BOOL, NULL, M and L done here."""
    if type(value) is dict:
        for kind in value:  # the first key names the type, as boto3 reads it
            if kind == "S":
                return value["S"]
            if kind == "N":
                return DYNAMODB_CONTEXT.create_decimal(value["N"])
            if kind == "BOOL":
                return value["BOOL"]
            if kind == "NULL":
                return None
            if kind == "M":
                return {k: from_attr(v) for k, v in value["M"].items()}
            if kind == "L":
                return [from_attr(v) for v in value["L"]]
            break
    return _boto3_types()[1].deserialize(value)


def to_item(record: Mapping[str, Any]) -> dict[str, Any]:
    """Serialise a record, dropping None (absent attributes keep sparse indexes sparse)."""
    return {key: to_attr(value) for key, value in record.items() if value is not None}


def from_item(item: Mapping[str, Any]) -> dict[str, Any]:
    record: dict[str, Any] = {}
    for key, value in item.items():
        # Strings and numbers, most of every item, inline (a page of 100 has ~1,400 of them).
        if type(value) is dict and len(value) == 1:
            if "S" in value:
                record[key] = value["S"]
                continue
            if "N" in value:
                record[key] = DYNAMODB_CONTEXT.create_decimal(value["N"])
                continue
        record[key] = from_attr(value)
    return record


def as_document(item: Mapping[str, Any]) -> dict[str, Any]:
    """An item as the JSON document it is, in Python: a number stored whole is an int, any other a
    Decimal (exactly as stored, never a float); strings, booleans, null, maps and lists as they are;
    sets as lists; binary as bytes. What a record's contract (records.py) validates: its strict fields
    then take no string for a number, no number for a string, no bool for a number, no fraction for a
    whole number. On every read of a shop record, so done here in one pass (docs/performance.md)."""
    document: dict[str, Any] = {}
    for key, value in item.items():
        # Strings and numbers, most of every record, inline (as from_item does).
        if "S" in value:
            document[key] = value["S"]
        elif "N" in value:
            document[key] = _document_number(value["N"])
        else:
            document[key] = _document_value(value)
    return document


def _document_value(value: Mapping[str, Any]) -> Any:
    for kind, inner in value.items():  # the one (type, value) pair of an attribute value
        if kind in ("S", "BOOL"):
            return inner
        if kind == "N":
            return _document_number(inner)
        if kind == "M":
            return as_document(inner)
        if kind == "L":
            return [_document_value(v) for v in inner]
        if kind == "NULL":
            return None
        if kind == "NS":
            return [_document_number(v) for v in inner]
        if kind == "SS":
            return list(inner)
        return bytes(inner)  # B, BS: no contract takes them
    return None


def _document_number(text: str) -> int | Decimal:
    return int(text) if _WHOLE.fullmatch(text) else DYNAMODB_CONTEXT.create_decimal(text)


_WHOLE = re.compile(r"-?[0-9]+")


class Expression:
    """Builds expression strings with placeholder names and values (reserved words are everywhere)."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}
        self.values: dict[str, Any] = {}
        self._name_ids: dict[str, str] = {}

    def name(self, path: str) -> str:
        """`a.b` -> `#n0.#n1` (map keys such as payment ids become placeholders too)."""
        if "." not in path:  # the common case, without the split and join
            placeholder = self._name_ids.get(path)
            if placeholder is None:
                placeholder = self._name_ids[path] = f"#n{len(self._name_ids)}"
                self.names[placeholder] = path
            return placeholder
        parts = []
        for part in path.split("."):
            if part not in self._name_ids:
                placeholder = f"#n{len(self._name_ids)}"
                self._name_ids[part] = placeholder
                self.names[placeholder] = part
            parts.append(self._name_ids[part])
        return ".".join(parts)

    def value(self, value: Any) -> str:
        placeholder = f":v{len(self.values)}"
        self.values[placeholder] = to_attr(value)
        return placeholder

    def apply(self, request: dict[str, Any]) -> dict[str, Any]:
        if self.names:
            request["ExpressionAttributeNames"] = self.names
        if self.values:
            request["ExpressionAttributeValues"] = self.values
        return request


def update_request(
    table: str,
    key: Mapping[str, Any],
    *,
    set_: Mapping[str, Any] | None = None,
    add: Mapping[str, Any] | None = None,
    remove: Iterable[str] = (),
    condition: Sequence[tuple[str, str, Any]] = (),
    expression: Expression | None = None,
    extra_condition: str | None = None,
) -> dict[str, Any]:
    """An Update for UpdateItem or TransactWriteItems.

    `condition` entries are (path, operator, value): operator is one of `=`, `<>`, `>=`, `<=`, `<`,
    `>`, `exists`, `not_exists`, `empty`, `size=`, `in`.
    """
    expr = expression or Expression()
    clauses = []
    if set_:
        clauses.append("SET " + ", ".join(f"{expr.name(p)} = {expr.value(v)}" for p, v in set_.items()))
    if add:
        clauses.append("ADD " + ", ".join(f"{expr.name(p)} {expr.value(v)}" for p, v in add.items()))
    removals = list(remove)
    if removals:
        clauses.append("REMOVE " + ", ".join(expr.name(p) for p in removals))
    request: dict[str, Any] = {"TableName": table, "Key": to_item(key), "UpdateExpression": " ".join(clauses)}
    condition_text = condition_expression(condition, expr)
    if extra_condition:
        condition_text = f"({condition_text}) AND ({extra_condition})" if condition_text else extra_condition
    if condition_text:
        request["ConditionExpression"] = condition_text
    return expr.apply(request)


def condition_expression(condition: Sequence[tuple[str, str, Any]], expr: Expression) -> str:
    parts = []
    for path, op, value in condition:
        name = expr.name(path)
        if op == "exists":
            parts.append(f"attribute_exists({name})")
        elif op == "not_exists":
            parts.append(f"attribute_not_exists({name})")
        elif op == "empty":  # absent, or present with no entries: both mean "none yet"
            parts.append(f"(attribute_not_exists({name}) OR size({name}) = {expr.value(0)})")
        elif op == "unset_or<=":  # absent, or at most `value` (a TTL attribute past its time)
            parts.append(f"(attribute_not_exists({name}) OR {name} <= {expr.value(value)})")
        elif op == "size=":
            parts.append(f"size({name}) = {expr.value(value)}")
        elif op == "in":
            parts.append(f"{name} IN ({', '.join(expr.value(v) for v in value)})")
        else:
            parts.append(f"{name} {op} {expr.value(value)}")
    return " AND ".join(parts)


def put_request(
    table: str, record: Mapping[str, Any], *, condition: Sequence[tuple[str, str, Any]] = ()
) -> dict[str, Any]:
    expr = Expression()
    request: dict[str, Any] = {"TableName": table, "Item": to_item(record)}
    text = condition_expression(condition, expr)
    if text:
        request["ConditionExpression"] = text
    return expr.apply(request)


@dataclass(frozen=True)
class CancellationReason:
    code: str
    item: dict[str, Any] | None  # the item as it was (as DynamoDB returns it), when the write asked for ALL_OLD


class TransactionCancelled(Exception):
    def __init__(self, reasons: list[CancellationReason], tags: Sequence[str] = ()) -> None:
        super().__init__(", ".join(r.code for r in reasons))
        self.reasons = reasons
        self.tags = tags

    @property
    def condition_failures(self) -> list[int]:
        return [i for i, r in enumerate(self.reasons) if r.code == "ConditionalCheckFailed"]

    @property
    def failed(self) -> dict[str, dict[str, Any] | None]:
        """Tag -> the item as it was (where ALL_OLD was asked for) of each write whose condition failed."""
        return {self.tags[i]: self.reasons[i].item for i in self.condition_failures}


class Transaction:
    """One TransactWriteItems whose writes are named by tags, so that a cancellation is diagnosed
    by what failed, not by where it sat in the list."""

    def __init__(self) -> None:
        self.operations: list[dict[str, Any]] = []
        self.tags: list[str] = []

    def add(self, tag: str, kind: str, request: dict[str, Any]) -> None:
        """`kind` is Put, Update, Delete or ConditionCheck; a tag names one write."""
        if tag in self.tags:
            raise ValueError(f"two writes tagged {tag!r}")
        self.tags.append(tag)
        self.operations.append({kind: request})

    def commit(self, client: Any) -> None:
        try:
            transact_write(client, self.operations)
        except TransactionCancelled as cancelled:
            raise TransactionCancelled(cancelled.reasons, self.tags) from None


def transact_write(client: Any, operations: list[dict[str, Any]], *, attempts: int = 4) -> None:
    """TransactWriteItems, retrying only what a retry can fix (conflicts, throttling).

    `operations` are {"Put"|"Update"|"ConditionCheck"|"Delete": request}. Condition failures raise
    TransactionCancelled with per-item reasons (and the old item where ALL_OLD was requested).
    """
    if not operations:
        return
    # A commit whose answer is lost is resent (by botocore's retries, or this loop after a conflict
    # it was told of): the same token makes DynamoDB answer the resend with success for 10 minutes
    # instead of running the writes again against their own result. Same content, same token.
    token = hashlib.sha256(json.dumps(operations, sort_keys=True).encode()).hexdigest()[:36]
    for attempt in range(attempts):
        try:
            client.transact_write_items(TransactItems=operations, ClientRequestToken=token)
            return
        except ClientError as exc:
            error = exc.response.get("Error", {})
            if error.get("Code") == "TransactionCanceledException":
                reasons = [
                    CancellationReason(r.get("Code", "None"), r.get("Item"))
                    for r in exc.response.get("CancellationReasons", [])
                ]
                retryable = {"TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded"}
                if any(r.code == "ConditionalCheckFailed" for r in reasons) or not any(
                    r.code in retryable for r in reasons
                ):
                    raise TransactionCancelled(reasons) from None
            elif error.get("Code") not in TRANSIENT_CODES:
                raise
            if attempt + 1 == attempts:
                raise TransientFault(f"DynamoDB transaction kept conflicting: {error.get('Code')}") from exc
            time.sleep(random.uniform(0.02, 0.05) * (2**attempt))  # noqa: S311 - jitter


def batch_get(client: Any, requests: Mapping[str, Mapping[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """BatchGetItem over several tables (strongly consistent), following UnprocessedKeys.

    `requests` maps table -> {"Keys": [...python keys...], "ProjectionExpression"?: ...}; the items
    found come back as DynamoDB returns them (each repository decodes its own).
    """
    pending: dict[str, Any] = {}
    for table, request in requests.items():
        keys = [to_item(k) for k in request["Keys"]]
        if keys:
            pending[table] = {**request, "Keys": keys, "ConsistentRead": True}
    found: dict[str, list[dict[str, Any]]] = {table: [] for table in requests}
    for attempt in range(6):
        if not pending:
            return found
        response = client.batch_get_item(RequestItems=pending)
        for table, items in response.get("Responses", {}).items():
            found[table].extend(items)
        pending = response.get("UnprocessedKeys") or {}
        if pending:
            time.sleep(random.uniform(0.02, 0.05) * (2**attempt))  # noqa: S311 - jitter
    raise TransientFault("DynamoDB kept returning unprocessed keys")


def is_condition_failure(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


def batch_put(client: Any, table: str, records: Sequence[Mapping[str, Any]]) -> None:
    """BatchWriteItem in chunks of 25 (seeding and back-office loads, not request paths)."""
    for start in range(0, len(records), 25):
        pending: dict[str, Any] = {
            table: [{"PutRequest": {"Item": to_item(record)}} for record in records[start : start + 25]]
        }
        for attempt in range(8):
            response = client.batch_write_item(RequestItems=pending)
            pending = response.get("UnprocessedItems") or {}
            if not pending:
                break
            time.sleep(random.uniform(0.02, 0.05) * (2**attempt))  # noqa: S311 - jitter
        else:
            raise TransientFault("DynamoDB kept returning unprocessed items")
