"""Every answer is the function's own, even when DynamoDB keeps refusing.

Under sustained throttling botocore's retries (4 attempts, backoff up to 20 s, read timeouts) can
outlast the function: Lambda then stops it ("Task timed out") and the caller gets API Gateway's
`{"message": "Service Unavailable"}`, or Stripe a 502 from the Function URL, instead of our 503 with
Retry-After. Each DynamoDB attempt and retry must fit in the time the invocation has left (its
context says), leaving time to answer.

The functions run here against a DynamoDB that throttles every request (tests/support/
throttling_dynamodb.py), with a context on the real clock and the template's own Timeout.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from support import Reply, auth
from support.throttling_dynamodb import Refusals, throttling_dynamodb
from support.webhooks import send_gateway

from local.events import LambdaContext, http_event
from local.template import Template

TEMPLATE = Template()


def timed(module: Any, function: str, send: Any) -> tuple[Reply, float, float]:
    """(reply, seconds taken, the function's Timeout): `send(context)` invokes the handler."""
    timeout = TEMPLATE.function(function).timeout
    context = LambdaContext(function, timeout_seconds=timeout)
    started = time.monotonic()
    reply = send(context)
    return reply, time.monotonic() - started, timeout


def list_payments(module: Any, context: Any) -> Reply:
    event = http_event("GET", "/orders/api/payments/", headers={"host": "api.example.com", **auth(1)})
    return Reply(module.lambda_handler(event, context))


@pytest.mark.parametrize(
    "refusals",
    [Refusals(delay=1.5), Refusals(delay=30.0, hang=True)],
    ids=["slow-throttling", "no-answer"],
)
def test_a_read_answers_its_own_503_before_its_timeout(load_function, tables, refusals):
    module = load_function("list_payments")
    with throttling_dynamodb(refusals):
        reply, seconds, timeout = timed(module, "ListPaymentsFunction", lambda ctx: list_payments(module, ctx))

    assert seconds < timeout, f"answered after {seconds:.1f} s: Lambda would have stopped it at {timeout} s"
    assert reply.status == 503, reply
    assert reply.json == {"detail": "Temporarily unavailable, please retry."}
    assert int(reply.headers["retry-after"]) > 0
    assert len(refusals.requests) >= 2  # it did retry while there was time


def test_a_webhook_answers_its_own_503_so_the_sender_retries(load_function, tables):
    module = load_function("payment_webhook")
    event = {
        "event_type": "payment.completed",
        "payment_id": "txn_123456789",
        "order_reference": "1",
        "amount": "1500.00",
        "status": "completed",
        "timestamp": "2023-01-15T15:30:00Z",
    }

    def send(context: Any) -> Reply:
        original = module.lambda_handler
        module.lambda_handler = lambda e, _: original(e, context)
        try:
            return send_gateway(module, event)
        finally:
            module.lambda_handler = original

    with throttling_dynamodb(Refusals(delay=1.5)):
        reply, seconds, timeout = timed(module, "PaymentWebhookFunction", send)

    assert seconds < timeout, f"answered after {seconds:.1f} s: Lambda would have stopped it at {timeout} s"
    assert reply.status == 503, reply
    assert reply.json == {"status": "error", "message": "Temporarily unavailable, please retry."}


class Remaining:
    def __init__(self, ms: int) -> None:
        self.ms = ms

    def get_remaining_time_in_millis(self) -> int:
        return self.ms


def conditional_put(client: Any, table: str) -> None:
    client.put_item(
        TableName=table,
        Item={"name": {"S": "x"}},
        ConditionExpression="attribute_exists(#n)",
        ExpressionAttributeNames={"#n": "name"},
    )


def test_an_answer_that_is_final_stays_itself_near_the_deadline(dynamodb, tables):
    """Only what botocore would retry is cut short: a failed condition is the caller's to read."""
    from halum_payments import deadline

    with deadline.bound(Remaining(5000)), pytest.raises(Exception) as failure:
        conditional_put(dynamodb, tables["CountersTable"])
    assert type(failure.value).__name__ == "ConditionalCheckFailedException"


def test_no_attempt_starts_that_could_not_end_before_the_answer_is_due(dynamodb, tables):
    from support.dynamo_calls import recorded_calls

    from halum_payments import deadline
    from halum_payments.repositories.dynamo import ATTEMPT_MS, OutOfTime

    with recorded_calls(dynamodb, "before-send.dynamodb") as sent:
        with deadline.bound(Remaining(ATTEMPT_MS)), pytest.raises(OutOfTime):
            conditional_put(dynamodb, tables["CountersTable"])
        assert sent == []  # refused before it was sent: DynamoDB never saw it
        with pytest.raises(Exception, match="ConditionalCheckFailed"):
            conditional_put(dynamodb, tables["CountersTable"])  # outside an invocation: no limit
        assert len(sent) == 1


@pytest.mark.parametrize(("left_ms", "sent"), [(3999, False), (4001, True)])
def test_an_attempt_starts_only_with_both_its_timeouts_and_the_answer_still_ahead(dynamodb, tables, left_ms, sent):
    """Restated, not imported: an attempt may take the client's connect timeout (1 s) and then its
    read timeout (2 s), and the answer needs 1 s after the last call; so 4 s must be left."""
    from support.dynamo_calls import recorded_calls

    from halum_payments import deadline
    from halum_payments.repositories.dynamo import CLIENT_CONFIG, OutOfTime

    assert (CLIENT_CONFIG.connect_timeout, CLIENT_CONFIG.read_timeout) == (1, 2)  # the timeouts restated above
    with (
        recorded_calls(dynamodb, "before-send.dynamodb") as requests,
        deadline.bound(Remaining(left_ms)),
        pytest.raises(Exception) as failure,  # refused in time, or the put's own failed condition
    ):
        conditional_put(dynamodb, tables["CountersTable"])
    assert (len(requests) == 1) is sent
    assert isinstance(failure.value, OutOfTime) is not sent
