"""The transaction plumbing's retry contract (repositories/dynamo.py), with a scripted client."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from halum_payments.errors import TransientFault
from halum_payments.repositories import dynamo
from halum_payments.repositories.dynamo import TransactionCancelled, transact_write

OPERATIONS = [{"Put": {"TableName": "t", "Item": {"id": {"N": "1"}}}}]


class ScriptedClient:
    """Answers each transact_write_items call with the next scripted error (None: success)."""

    def __init__(self, *answers: dict[str, Any] | None) -> None:
        self.answers = list(answers)
        self.calls: list[dict[str, Any]] = []

    def transact_write_items(self, **request: Any) -> dict[str, Any]:
        self.calls.append(request)
        answer = self.answers.pop(0)
        if answer is not None:
            raise ClientError(answer, "TransactWriteItems")
        return {}


def cancelled(*codes: str) -> dict[str, Any]:
    return {
        "Error": {"Code": "TransactionCanceledException", "Message": "cancelled"},
        "CancellationReasons": [{"Code": code} for code in codes],
    }


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dynamo.time, "sleep", lambda _: None)


def test_every_attempt_of_one_transaction_carries_the_same_client_request_token() -> None:
    """A commit whose answer was lost and is resent must be recognised by DynamoDB, not re-run."""
    client = ScriptedClient(cancelled("TransactionConflict"), {"Error": {"Code": "ThrottlingException"}}, None)

    transact_write(client, OPERATIONS)

    tokens = {call["ClientRequestToken"] for call in client.calls}
    assert len(client.calls) == 3 and len(tokens) == 1
    (token,) = tokens
    assert 1 <= len(token) <= 36  # DynamoDB's limits for ClientRequestToken


def test_the_token_is_the_transactions_content() -> None:
    first, again, other = ScriptedClient(None), ScriptedClient(None), ScriptedClient(None)
    transact_write(first, OPERATIONS)
    transact_write(again, [dict(op) for op in OPERATIONS])
    transact_write(other, [{"Put": {"TableName": "t", "Item": {"id": {"N": "2"}}}}])
    assert first.calls[0]["ClientRequestToken"] == again.calls[0]["ClientRequestToken"]
    assert first.calls[0]["ClientRequestToken"] != other.calls[0]["ClientRequestToken"]


def test_a_failed_condition_is_not_retried() -> None:
    client = ScriptedClient(cancelled("None", "ConditionalCheckFailed"))
    with pytest.raises(TransactionCancelled) as raised:
        transact_write(client, OPERATIONS)
    assert raised.value.condition_failures == [1]
    assert len(client.calls) == 1


def test_conflicts_that_never_clear_are_a_transient_fault() -> None:
    client = ScriptedClient(*[cancelled("TransactionConflict")] * 4)
    with pytest.raises(TransientFault):
        transact_write(client, OPERATIONS)
    assert len(client.calls) == 4


class LeaseClient:
    """A DynamoDB that refuses the sweep's lease write with `code`."""

    def __init__(self, code: str) -> None:
        self.code = code

    def put_item(self, **request: Any) -> dict[str, Any]:
        raise ClientError({"Error": {"Code": self.code, "Message": "refused"}}, "PutItem")


@pytest.mark.parametrize("code", ["AccessDeniedException", "ResourceNotFoundException", "ValidationException"])
def test_only_a_failed_condition_means_another_sweep_holds_the_lease(code: str) -> None:
    # A permission or configuration fault is a fault (the sweep fails and alarms), never read as
    # "another sweep is running", which would skip every sweep silently.
    from halum_payments.repositories.sweep_state import SweepStateRepository

    with pytest.raises(ClientError):
        SweepStateRepository("counters", LeaseClient(code)).acquire("run-1", now=100, until=200)
    assert (
        SweepStateRepository("counters", LeaseClient("ConditionalCheckFailedException")).acquire(
            "run-1", now=100, until=200
        )
        is False
    )
