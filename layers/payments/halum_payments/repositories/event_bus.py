"""The EventBridge bus the domain events go to: the only code that touches the events client.

PutEvents can accept some entries of a request and refuse others (`FailedEntryCount`, an
`ErrorCode` on each refused entry, in request order: "Sending events with PutEvents", Amazon
EventBridge User Guide): a refused entry is a failure of the record it came from, raised here so
the stream's record is retried, never counted as sent.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from typing import Any

from ..logic.domain_events import SOURCE, DomainEvent
from .dynamo import CLIENT_CONFIG, aws_session, bounded_by_deadline


class EventsRefused(Exception):
    """EventBridge refused some of the events (the record is retried, then dead-lettered)."""


@functools.cache
def events_client() -> Any:
    """One client per process, created on first use. `AWS_ENDPOINT_URL_EVENTBRIDGE` redirects it (make run)."""
    return bounded_by_deadline(aws_session().create_client("events", config=CLIENT_CONFIG))


def entry(bus: str, event: DomainEvent) -> dict[str, Any]:
    """One PutEvents entry: what rules filter on (source, detail-type) and the detail as JSON."""
    return {
        "EventBusName": bus,
        "Source": SOURCE,
        "DetailType": event.detail_type,
        "Detail": json.dumps(event.detail, separators=(",", ":"), sort_keys=True),
        "Time": event.time,
    }


class EventBus:
    def __init__(self, bus: str, client: Any = None) -> None:
        self.bus = bus
        self._client = client

    @property
    def client(self) -> Any:
        return self._client or events_client()

    def publish(self, events: Sequence[DomainEvent]) -> None:
        """Put `events` (one committed row's: at most a few, under PutEvents' 10 entries) or raise."""
        if not events:
            return
        response = self.client.put_events(Entries=[entry(self.bus, event) for event in events])
        if response.get("FailedEntryCount"):
            refused = [
                f"{event.event_id}: {result.get('ErrorCode')}"
                for event, result in zip(events, response.get("Entries") or [], strict=False)
                if result.get("ErrorCode")
            ]
            raise EventsRefused(f"EventBridge refused {response['FailedEntryCount']} event(s): {refused}")
