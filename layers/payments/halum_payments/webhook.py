"""What every webhook does around what its events mean (logic/stripe_events.py, gateway_events.py):
its secret must be configured (else 503); the signature must verify with the secret as rotated (else
the provider's 4xx and the WebhookSignatureFailures metric); the event is applied once (Powertools
idempotency: redeliveries get its first answer); a refusal no redelivery can change is remembered
with it, "retry later" and "in progress" are not. The reconciliation sweep applies Stripe's logged
events through the same `StripeEventHandler` and records (one key prefix), and every effect is
idempotent in DynamoDB too, so an event applied again after its record expired changes nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from aws_lambda_powertools.event_handler import Response

from .errors import Conflict, DomainError, GatewayNotConfigured, RequestInProgress, RetryLater, Unprocessable
from .http import raw_body, status_of
from .idempotency import Idempotent
from .logic.gateway_events import GATEWAY_REPLAY_SECONDS, GatewayEvent, GatewayEvents
from .logic.settlement import Outcome, Source
from .logic.stripe_events import STRIPE_REPLAY_SECONDS, StripeEvents
from .models import WebhookAck, WebhookReply
from .observability import count, logger
from .secrets import Secret

if TYPE_CHECKING:
    from .config import Settings

V = TypeVar("V")
STRIPE_EVENT_KEY_PREFIX = "stripe-event"


class Signed(Generic[V]):
    """A webhook's signature check: `verify(secret, body, header)` with the secret (the setting
    `name`, e.g. stripe_webhook_secret) as it is now."""

    def __init__(self, settings: Settings, name: str, header: str, verify: Callable[[Secret, bytes, str | None], V]):
        self._name, self._secret, self._header, self._verify = name, settings.secret(name), header, verify

    def __call__(self, event: Mapping[str, Any]) -> V:
        if self._secret is None:
            logger.error(f"{self._name.upper()} is not configured: refusing unverifiable events")
            raise GatewayNotConfigured(
                f"{self._name.removesuffix('_secret').replace('_', ' ').capitalize()} is not configured"
            )
        try:
            return self._verify(self._secret, raw_body(event), (event.get("headers") or {}).get(self._header))
        except Exception:
            count("WebhookSignatureFailures")
            raise


class StripeEventHandler:
    """A verified Stripe event applied once, whoever brings it (the webhook, the sweep)."""

    def __init__(
        self, events: StripeEvents, table: str, *, client: Any = None, duplicate_metric: str | None = None
    ) -> None:
        self.events = events
        self._local = threading.local()  # what applying did, per thread: tests deliver in threads
        self._replay = Idempotent(
            table,
            self._apply,
            WebhookAck,
            lambda item: {"key": item[0]["id"], "body": {"type": item[0]["type"]}},
            expires_after_seconds=STRIPE_REPLAY_SECONDS,
            client=client,
            duplicate_metric=duplicate_metric,
            key_prefix=STRIPE_EVENT_KEY_PREFIX,
        )

    def register_lambda_context(self, context: Any) -> None:
        self._replay.register_lambda_context(context)

    def apply(self, event: Mapping[str, Any], source: Source = "stripe") -> tuple[WebhookAck, Outcome | None]:
        """The answer, and what applying the event did (None: it was applied before, and this is
        its first answer again). Raises RetryLater when it cannot apply yet (nothing remembered)."""
        self._local.outcome = None
        ack = self._replay((event, source))
        return ack, self._local.outcome

    def apply_unrecorded(self, event: Mapping[str, Any], source: Source) -> Outcome:
        """Apply without the idempotency record, for an event whose record is "in progress" and may
        stay so (the sweep's own write whose answer was lost is in progress until its invocation
        ends). Safe because every effect is conditional in DynamoDB: applying an event twice, or at
        the same time as the webhook, changes nothing twice. Raises RetryLater as `apply` does."""
        outcome = self.events.handle(event, source)
        if outcome.kind == "retry_later":
            # It cannot apply yet (a refund before its completion): refused, so that Stripe delivers
            # it again later; raised inside the idempotency record, it also forgets the event id,
            # so the redelivery is applied.
            raise RetryLater(f"{outcome.message} Retry later.")
        return outcome

    def _apply(self, item: tuple[Mapping[str, Any], Source]) -> WebhookAck:
        outcome = self.apply_unrecorded(*item)
        self._local.outcome = outcome
        return WebhookAck(message=f"{outcome.kind}: {outcome.message}")


class StripeWebhook:
    """POST /orders/api/stripe-webhook/: Stripe's signed event, applied once."""

    def __init__(self, signed: Signed[dict[str, Any]], handler: StripeEventHandler) -> None:
        self._signed = signed
        self._handler = handler

    def register_lambda_context(self, context: Any) -> None:
        self._handler.register_lambda_context(context)

    def handle(self, request: Mapping[str, Any]) -> WebhookAck:
        event = self._signed(request)
        logger.append_keys(stripe_event_id=event["id"], stripe_event_type=event["type"])
        return self._handler.apply(event)[0]


def is_final_refusal(error: DomainError) -> bool:
    """A refusal that no redelivery of the same event can change (a mismatched amount, an order
    paid under another transaction): remembered with the event, so a replay raises no new alarm."""
    return isinstance(error, (Conflict, Unprocessable)) and not isinstance(error, (RetryLater, RequestInProgress))


class GatewayWebhook:
    """POST /orders/api/payment-webhook/: the generic gateway's signed event, applied once; its
    answer (a final refusal included) remembered with it."""

    def __init__(self, signed: Signed[None], events: GatewayEvents, table: str, client: Any = None) -> None:
        self.check = signed  # a precondition: the signature answers before the body is validated
        self._events = events
        self._replay = Idempotent(
            table,
            self._apply,
            WebhookReply,
            lambda event: {"key": event.key, "body": event.model_dump(mode="json")},  # same key, same body
            expires_after_seconds=GATEWAY_REPLAY_SECONDS,
            client=client,
        )

    def register_lambda_context(self, context: Any) -> None:
        self._replay.register_lambda_context(context)

    def handle(self, event: GatewayEvent) -> Response:
        reply = self._replay(event)
        return Response(reply.status_code, "application/json", reply.model_dump_json(exclude={"status_code"}))

    def _apply(self, event: GatewayEvent) -> WebhookReply:
        try:
            ack = self._events.handle(event)
        except DomainError as refusal:
            if not is_final_refusal(refusal):
                raise  # not remembered: a redelivery runs again
            return WebhookReply(status_code=status_of(refusal), status="error", message=refusal.message)
        return WebhookReply(status_code=200, status="success", message=ack.message)
