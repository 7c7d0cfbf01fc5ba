"""One way to apply a verified Stripe event, whoever brings it: the webhook (Stripe's delivery) or
the reconciliation sweep (Stripe's event log, for the deliveries that were lost).

Both go through the same Powertools idempotency records: they share one key prefix instead of
Powertools' default (the Lambda function's name), so an event applied by one is answered from its
record by the other and applied once. The records are a saving, not the guarantee: every effect is
idempotent in DynamoDB too (transitions conditioned on the status, each fact about money recorded
once under a condition), so an event applied again after its record expired changes nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from .errors import RetryLater
from .idempotency import Idempotent
from .logic.settlement import Outcome, Source
from .logic.stripe_events import STRIPE_REPLAY_SECONDS, StripeEvents
from .models import WebhookAck

STRIPE_EVENT_KEY_PREFIX = "stripe-event"


class StripeEventHandler:
    """`handler(event, source)`: the event applied once (or its first answer replayed)."""

    def __init__(
        self, events: StripeEvents, table: str, *, client: Any = None, duplicate_metric: str | None = None
    ) -> None:
        self._events = events
        # The event travels beside the payload, not in it: Powertools deep-copies every payload to
        # hash it, and only "key" and "body" are hashed. Per thread: tests run deliveries in threads.
        self._current = threading.local()
        self._replay = Idempotent(
            table,
            self._apply,
            WebhookAck,
            expires_after_seconds=STRIPE_REPLAY_SECONDS,
            client=client,
            duplicate_metric=duplicate_metric,
            key_prefix=STRIPE_EVENT_KEY_PREFIX,
        )

    def register_lambda_context(self, context: Any) -> None:
        self._replay.register_lambda_context(context)

    def __call__(self, event: Mapping[str, Any], source: Source = "stripe") -> WebhookAck:
        return self.apply(event, source)[0]

    def apply(self, event: Mapping[str, Any], source: Source = "stripe") -> tuple[WebhookAck, Outcome | None]:
        """The answer, and what applying the event did (None: it was applied before, and this is
        its first answer again). Raises RetryLater when it cannot apply yet (nothing remembered)."""
        self._current.event, self._current.source, self._current.outcome = event, source, None
        try:
            ack = self._replay({"key": event["id"], "body": {"type": event["type"]}})
            return ack, self._current.outcome
        finally:
            self._current.event = self._current.outcome = None

    def _apply(self, payload: dict[str, Any]) -> WebhookAck:
        outcome = self._events.handle(self._current.event, self._current.source)
        self._current.outcome = outcome
        if outcome.kind == "retry_later":
            # It cannot apply yet (a refund before its completion): refused, so that Stripe delivers
            # it again later; raising also forgets the event id, so the redelivery is applied.
            raise RetryLater(f"{outcome.message} Retry later.")
        return WebhookAck(message=f"{outcome.kind}: {outcome.message}")
