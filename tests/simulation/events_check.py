"""Invariant `events`: the domain events published are exactly the committed changes (issue 20).

At the end of a run, the audit table's stream (moto's, which holds every row any transaction
committed, and nothing of a transaction that was cancelled or never sent) is read as Lambda's event
source mapping reads it (local/streams.py, configured from template.yaml) into the real
PublishEventsFunction; what it puts on the bus is recorded, EventBridge refusing some entries up to
twice each (so records are retried, and events after them in their batch are published again).
The oracle does not import the layer's mapping: which committed change is which event is restated
here from docs/events.md, and the events are also held to the final state (every order a checkout
placed has its order.placed, every paid order its order.paid, every cancelled one its
order.cancelled, every refunded payment its full refund), which no rule table decides.
- none for a change that did not commit: every published event names a committed row;
- none lost: every committed change has its events;
- duplicates only as at-least-once allows: the same event_id always carries the same detail.
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .rules import CHECKOUT_ORIGINS

if TYPE_CHECKING:
    from .world import World

FUNCTION = "PublishEventsFunction"
SOURCE = "halum.payments"
Fail = Callable[[str, str], None]


class Recorder:
    """The events client as the function sees it: EventBridge refusing some entries a few times
    (PutEvents' partial failures: FailedEntryCount and an ErrorCode per refused entry), fewer times
    than the mapping retries; every entry accepted is kept."""

    def __init__(self, rng: random.Random) -> None:
        self.entries: list[dict[str, Any]] = []
        self.refused = 0
        self._rng = rng
        self._refusals: dict[str, int] = {}

    def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        results: list[dict[str, Any]] = []
        for entry in Entries:
            event_id = json.loads(entry["Detail"])["event_id"]
            left = self._refusals.setdefault(event_id, self._rng.choice((0, 0, 0, 1, 2)))
            if left:
                self._refusals[event_id] = left - 1
                self.refused += 1
                results.append({"ErrorCode": "ThrottlingException", "ErrorMessage": "Rate exceeded"})
            else:
                self.entries.append(entry)
                results.append({"EventId": f"e{len(self.entries)}"})
        return {"FailedEntryCount": sum("ErrorCode" in r for r in results), "Entries": results}


def expected_types(row: dict[str, Any]) -> list[str]:
    """docs/events.md, "How events are made": the events one committed audit row means."""
    before, after, reason = row.get("from"), row.get("to"), row.get("reason")
    types = []
    if reason == "created" and row.get("source") == "checkout" and before is None and row.get("order_to"):
        types.append("order.placed")
    if after == "completed" and before != "completed":
        types += ["payment.completed", "order.paid"]
    if after == "failed" and before != "failed":
        types.append("payment.failed")
    if row.get("order_to") == "cancelled":
        types.append("order.cancelled")
    if (after == "refunded" and before != "refunded") or reason == "partial_refund":
        types.append("payment.refunded")
    if reason == "needs_refund":
        types.append("payment.refund_needed")
    if str(reason).startswith("dispute_"):
        types.append("payment.disputed")
    return types


def publish(world: World) -> list[dict[str, Any]]:
    """Every committed audit row through the stream, the mapping and the function: the entries put."""
    import boto3

    from halum_payments.repositories import event_bus
    from local.events import LambdaContext
    from local.streams import Result, StreamMapping

    (spec,) = world.functions.template.stream_mappings()
    module = world.functions._cold_start(FUNCTION).module
    recorder = Recorder(random.Random(f"events-{world.config.seed}"))
    context = LambdaContext(FUNCTION, timeout_seconds=30)

    def invoke(event: dict[str, Any]) -> Result:
        try:
            return Result(True, module.lambda_handler(event, context))
        except Exception:
            return Result(False)

    def dead_letter(record: dict[str, Any]) -> None:
        raise AssertionError(f"a batch went to the dead-letter queue: {record}")

    # botocore derives an account-based endpoint from a stream ARN, which moto's in-process routing
    # does not serve: the regional endpoint, named.
    endpoint = "https://streams.dynamodb.us-east-1.amazonaws.com"
    streams = boto3.client("dynamodbstreams", region_name="us-east-1", endpoint_url=endpoint)
    original = event_bus.events_client
    event_bus.events_client = lambda: recorder  # type: ignore[assignment] - the bus is not what is checked
    try:
        StreamMapping.for_table(spec, streams, world.state.tables[spec.table], invoke, dead_letter).poll()
    finally:
        event_bus.events_client = original  # type: ignore[assignment]
    return recorder.entries


def published_exactly_the_committed_changes(world: World, fail: Fail) -> None:
    entries = publish(world)
    details: dict[str, list[dict[str, Any]]] = defaultdict(list)
    kinds: dict[str, str] = {}
    for entry in entries:
        if entry["Source"] != SOURCE:
            fail("events", f"an event from {entry['Source']}")
        detail = json.loads(entry["Detail"])
        details[detail["event_id"]].append(detail)
        kinds[detail["event_id"]] = entry["DetailType"]

    committed = {}
    for rows in world.state.audit().values():
        for row in rows:
            for kind in expected_types(row):
                committed[f"{int(row['payment'])}/{row['at']}/{kind}"] = (kind, row)
    invented = sorted(set(details) - set(committed))
    if invented:
        fail("events", f"{len(invented)} event(s) for no committed change, e.g. {invented[:3]}")
    lost = sorted(set(committed) - set(details))
    if lost:
        fail("events", f"{len(lost)} committed change(s) without their event, e.g. {lost[:3]}")
    for event_id, copies in details.items():
        if any(copy != copies[0] for copy in copies) or kinds[event_id] != committed[event_id][0]:
            fail("events", f"{event_id} was published with different contents: {copies}")
        if int(copies[0]["order"]) != int(committed[event_id][1]["order"]):
            fail("events", f"{event_id} names order {copies[0]['order']}, its row another")
    _held_to_the_final_state(world, fail, [(kinds[i], copies[0]) for i, copies in details.items()])


def _held_to_the_final_state(world: World, fail: Fail, events: list[tuple[str, dict[str, Any]]]) -> None:
    seeded = set(world.invariants.seeded_payments) if world.invariants is not None else set()
    paid = {(int(d["order"]), d["payment"]) for kind, d in events if kind == "order.paid"}
    cancelled = {int(d["order"]) for kind, d in events if kind == "order.cancelled"}
    placed = {int(d["order"]) for kind, d in events if kind == "order.placed"}
    refunded = {d["payment"] for kind, d in events if kind == "payment.refunded" and d.get("full")}
    payments = world.state.payments()
    for order_id, order in world.state.orders().items():
        completed = order.get("completed_payment")
        if completed is not None and int(completed) not in seeded and (order_id, int(completed)) not in paid:
            fail("events", f"order {order_id} was paid by payment {completed}: no order.paid")
        ours = order.get("origin") in CHECKOUT_ORIGINS and any(
            int(p) not in seeded for p in order.get("payments") or {}
        )
        if ours and order_id not in placed:
            fail("events", f"order {order_id} was placed by a checkout: no order.placed")
        if order.get("status") == "cancelled" and ours and order_id not in cancelled:
            fail("events", f"order {order_id} is cancelled: no order.cancelled")
    for payment_id, payment in payments.items():
        if payment.get("status") == "refunded" and payment_id not in seeded and payment_id not in refunded:
            fail("events", f"payment {payment_id} is refunded: no payment.refunded in full")
