"""Records every AWS call each function makes, as the IAM requests AWS would authorize.

Usage (the integration suite does this in tests/integration/conftest.py; a simulation does the
same around its own invocations):

    from support.iam import RECORDER, attributed_to
    RECORDER.install()                        # once, before any AWS client is created
    with attributed_to("CreateStripeOrderFunction"):
        module.lambda_handler(event, context) # every AWS call in here is that function's
    RECORDER.calls                            # [AwsCall(function, operation, action, resource, detail)]

A call is attributed to the function whose handler (or cold start) is running in the calling
thread or task (a contextvar); calls made outside any function (test set-up, seeding) are not
recorded. One API call becomes one request per resource IAM checks: TransactWriteItems needs
PutItem/UpdateItem/DeleteItem/ConditionCheckItem on each item's table, BatchGetItem and
BatchWriteItem need themselves on each table, a Query on an index needs the index's ARN
(DynamoDB Developer Guide: "Using IAM with DynamoDB transactions", "Identity-based policies").
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from support.sam import ACCOUNT, REGION

current_function: contextvars.ContextVar[str | None] = contextvars.ContextVar("current_function", default=None)

_TRANSACT_ACTIONS = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
}
SECRET_SUFFIX = "-AbCdEf"  # Secrets Manager appends '-' and six random characters to a secret's name in its ARN


@dataclass(frozen=True)
class AwsCall:
    function: str  # the template's logical id
    operation: str  # the API operation, e.g. "TransactWriteItems"
    action: str  # the IAM action checked, e.g. "dynamodb:UpdateItem"
    resource: str  # the ARN it is checked against
    detail: str = ""  # e.g. "item 3 of TransactWriteItems"

    def __str__(self) -> str:
        detail = f" ({self.detail})" if self.detail else ""
        return f"{self.function}: {self.operation}{detail} -> {self.action} on {self.resource}"


@contextlib.contextmanager
def attributed_to(function: str) -> Iterator[None]:
    """Every AWS call made inside (in this thread or task) is `function`'s."""
    token = current_function.set(function)
    try:
        yield
    finally:
        current_function.reset(token)


def table_arn(name: str, index: str | None = None) -> str:
    logical_id = name.rsplit("-", 1)[-1]  # `t1a2b3c4d-PaymentsTable` -> PaymentsTable
    arn = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{logical_id}"
    return f"{arn}/index/{index}" if index else arn


def stream_arn(arn: str) -> str:
    """A table's stream ARN with the table named by its logical id (`.../table/<name>/stream/<label>`)."""
    table, _, label = arn.split(":table/", 1)[1].partition("/stream/")
    return f"{table_arn(table)}/stream/{label}"


def named_arn(service: str, kind: str, name: str) -> str:
    """An event bus's or queue's ARN by its logical id (`t1a2b3c4d-EventsDeadLetterQueue`, or the name
    `EventBus` as `!Ref` resolves it locally)."""
    logical_id = name.rsplit("/", 1)[-1].rsplit("-", 1)[-1]
    return f"arn:aws:{service}:{REGION}:{ACCOUNT}:{kind}{logical_id}"


def secret_arn(secret_id: str) -> str:
    if secret_id.startswith("arn:"):
        return secret_id
    return f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:{secret_id}{SECRET_SUFFIX}"


def iam_requests(service: str, operation: str, params: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(action, resource ARN, detail) AWS authorizes for one API call."""
    if service == "dynamodb" and operation in ("DescribeStream", "GetShardIterator", "GetRecords", "ListStreams"):
        return [(f"dynamodb:{operation}", _stream_resource(params), "")]
    if service == "dynamodb":
        if operation in ("TransactWriteItems", "TransactGetItems"):
            requests = []
            for index, item in enumerate(params.get("TransactItems") or []):
                ((kind, request),) = item.items()
                action = "GetItem" if kind == "Get" else _TRANSACT_ACTIONS[kind]
                requests.append((f"dynamodb:{action}", table_arn(request["TableName"]), f"item {index} {kind}"))
            return requests
        if operation in ("BatchGetItem", "BatchWriteItem"):
            return [(f"dynamodb:{operation}", table_arn(table), "") for table in params.get("RequestItems") or {}]
        if "TableName" in params:
            return [(f"dynamodb:{operation}", table_arn(params["TableName"], params.get("IndexName")), "")]
        return [(f"dynamodb:{operation}", "*", "")]
    if service == "events" and operation == "PutEvents":
        # One request per bus named (IAM authorizes PutEvents on each entry's event bus).
        buses = sorted({entry.get("EventBusName") or "default" for entry in params.get("Entries") or []})
        return [("events:PutEvents", named_arn("events", "event-bus/", bus), "") for bus in buses]
    if service == "sqs" and "QueueUrl" in params:
        return [(f"sqs:{operation}", named_arn("sqs", "", params["QueueUrl"]), "")]
    if service == "secretsmanager" and "SecretId" in params:
        return [(f"secretsmanager:{operation}", secret_arn(params["SecretId"]), "")]
    if service == "ssm" and "Name" in params:
        name = params["Name"].lstrip("/")
        return [(f"ssm:{operation}", f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/{name}", "")]
    return [(f"{service}:{operation}", "*", "")]


def _stream_resource(params: dict[str, Any]) -> str:
    """The stream a DynamoDB Streams call is authorized on. GetRecords names only a shard iterator,
    which AWS ties to its stream; moto's iterators begin with the stream's ARN and a `|`."""
    if "StreamArn" in params:
        return stream_arn(params["StreamArn"])
    if "ShardIterator" in params and "|" in params["ShardIterator"]:
        return stream_arn(params["ShardIterator"].split("|", 1)[0])
    if "TableName" in params:  # ListStreams of one table
        return f"{table_arn(params['TableName'])}/stream/*"
    return "*"


class CallRecorder:
    def __init__(self) -> None:
        self.calls: list[AwsCall] = []
        self._lock = threading.Lock()
        self._installed = False
        # Set by the integration suite's conftest: whether every integration test was collected (the
        # least-privilege verdict needs the whole suite's calls).
        self.whole_suite: bool | None = None

    def install(self) -> None:
        """Hook every botocore client created from now on, in every session.

        botocore registers `botocore.handlers.BUILTIN_HANDLERS` on each new session, hence on each of
        its clients: that reaches the layer's own botocore session and the boto3 clients Powertools
        creates (idempotency), which a per-client registration would miss. moto hooks its mock in the
        same way. `before-parameter-build` sees the API parameters once per call (not per retry).
        """
        if self._installed:
            return
        from botocore import handlers

        handlers.BUILTIN_HANDLERS.append(("before-parameter-build", self._record))
        self._installed = True

    def _record(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        function = current_function.get()
        if function is None:
            return
        service = model.service_model.signing_name
        calls = [
            AwsCall(function, model.name, action, resource, detail)
            for action, resource, detail in iam_requests(service, model.name, params)
        ]
        with self._lock:
            self.calls.extend(calls)

    def functions(self) -> set[str]:
        return {call.function for call in self.calls}


RECORDER = CallRecorder()
