"""The reconciliation sweep: what Stripe said that this service may not have heard.

1. **Stripe's event log.** List Events (the types this service handles), from where the last run
   stopped (minus an overlap: an event may appear in the list a little after its `created`), in
   windows, each window listed whole (Stripe lists newest first) and applied oldest first, every
   event through the same idempotent handler as the webhook: one the webhook applied changes
   nothing (its idempotency record answers), one it never got is applied. Lost completions,
   failures, expiries, refunds and disputes are settled with no Stripe call per payment. The place
   is saved as it goes and never moves past an event not applied yet: one that cannot apply yet (a
   refund before its completion) holds it for up to Stripe's own 3 days of retries.
2. **The open index**, for what no event can tell: a payment whose checkout died before Stripe made
   a session (given up once that checkout cannot run any more); a given-up payment whose session
   may still be open (expired, an action that stops anyone paying it, not a lookup); and a payment
   still pending long after its session expired with the log read past that (Stripe's log does not
   hold its events: older than the sweep's first run or Stripe's 30 days), looked up.
"""

from __future__ import annotations

import math
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, Protocol

from ..clock import format_timestamp, parse_timestamp, utc_now
from ..errors import RequestInProgress, RetryLater, UnreadableRecord
from ..models import Payment, PaymentStatus
from ..observability import count, logger, metrics
from .rules import OPEN_STATUSES
from .settlement import Change, Facts, Outcome, Settlement, Source
from .stripe_events import STRIPE_EVENT_TYPES, StripeEvents

if TYPE_CHECKING:
    from ..gateways.stripe_checkout import StripeCheckoutGateway

SESSIONLESS_MARGIN_SECONDS = 60
# A sweep's lease ends when its invocation must have ended (its remaining time at the start), plus
# this much for the clocks of two Lambda hosts.
LEASE_MARGIN_SECONDS = 5
EVENT_OVERLAP_SECONDS = 5 * 60  # re-read: an event may be listed a little after its `created`
EVENT_WINDOW_SECONDS = 6 * 3600  # one window is listed whole, then applied oldest first
FIRST_LOOKBACK_SECONDS = 24 * 3600  # where the very first run starts reading
STRIPE_RETENTION_SECONDS = 30 * 24 * 3600  # Stripe keeps events 30 days
HOLD_SECONDS = 3 * 24 * 3600  # an event that cannot apply yet holds the place this long (Stripe's retries)
SESSION_END_GRACE_SECONDS = 15 * 60  # Stripe expires a session (and sends its event) shortly after expires_at

EventStep = Literal["done", "deferred", "stopped"]


class OpenPayments(Protocol):
    def open_stripe_before(
        self, cutoff: datetime, *, limit: int, after: dict[str, Any] | None
    ) -> tuple[list[Payment], dict[str, Any] | None]: ...

    def position(self, payment: Payment) -> dict[str, Any]:
        """Where a listing resumes right after `payment`."""
        ...


class SweepState(Protocol):
    """Where the last sweep stopped (the open index, the event log), and the lease that lets one
    sweep run at a time."""

    def load(self) -> dict[str, Any] | None: ...

    def save(self, cursor: dict[str, Any] | None) -> None: ...

    def events_read_before(self) -> int | None: ...

    def save_events_read_before(self, created: int) -> None: ...

    def acquire(self, holder: str, *, now: int, until: int) -> bool: ...

    def release(self, holder: str) -> None: ...


class EventHandler(Protocol):
    def apply(self, event: Mapping[str, Any], source: Source = "stripe") -> tuple[Any, Outcome | None]: ...

    def apply_unrecorded(self, event: Mapping[str, Any], source: Source) -> Outcome: ...

    def register_lambda_context(self, context: Any) -> None: ...


@dataclass(frozen=True, slots=True)
class SweepResult:
    run: str
    events: dict[str, int]
    checked: int
    outcomes: dict[str, int]
    stripe_errors: int
    finished: bool  # False: stopped for time; the next run resumes where this one stopped
    oldest_open_minutes: int | None
    duration_ms: int
    skipped: bool = False  # another sweep held the lease: this one did nothing

    def summary(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class _Tally:
    """One sweep's run id, time, Stripe, and what it did so far."""

    run: str
    now: datetime
    stripe: StripeCheckoutGateway | None
    checked: int = 0
    errors: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    events: Counter[str] = field(default_factory=Counter)  # listed, already_applied, deferred


def _minutes(now: datetime, since: str) -> int:
    return int((now - parse_timestamp(since)).total_seconds() // 60)


def _label(outcome: Outcome) -> str:
    return str(outcome.status) if outcome.kind == "applied" else outcome.kind


class Reconciler:
    def __init__(
        self,
        payments: OpenPayments,
        state: SweepState,
        handler: EventHandler,
        events: StripeEvents,
        settlement: Settlement,
        stripe: Callable[[], StripeCheckoutGateway | None],
        *,
        after_minutes: int,
        batch_size: int,
        checkout_seconds: int,
        lookup_budget_ms: int,
        now: Callable[[], str] = lambda: format_timestamp(utc_now()),
    ) -> None:
        self._payments = payments
        self._state = state
        self._handler = handler
        self._events = events
        self._settlement = settlement
        self._stripe = stripe
        self._after = timedelta(minutes=after_minutes)
        self._batch_size = batch_size
        # A payment without a session may still get one while the checkout that created it runs:
        # it is given up only once that checkout cannot be running any more.
        self._sessionless_grace = timedelta(seconds=checkout_seconds + SESSIONLESS_MARGIN_SECONDS)
        # The most one step can take (a Stripe call with its retries, then a settlement): the sweep
        # starts a step only if that much time is left before its own reserve.
        self._lookup_budget_ms = lookup_budget_ms
        self._now = now

    def register_lambda_context(self, context: Any) -> None:
        self._handler.register_lambda_context(context)

    def sweep(self, remaining_ms: Callable[[], int], *, reserve_ms: int = 5000) -> SweepResult:
        """One sweep, unless another one holds the lease (then nothing is done: `skipped`)."""
        started = time.monotonic()
        run, now = uuid.uuid4().hex[:12], parse_timestamp(self._now())
        epoch = int(now.timestamp())
        until = epoch + math.ceil(remaining_ms() / 1000) + LEASE_MARGIN_SECONDS
        if not self._state.acquire(run, now=epoch, until=until):
            result = SweepResult(run, {}, 0, {}, 0, False, None, int((time.monotonic() - started) * 1000), skipped=True)
            count("ReconcileSweepsSkipped")
            logger.info("reconciliation sweep skipped: another sweep holds the lease", extra=result.summary())
            return result
        # Released on any outcome but a kill (nothing runs then): its lease expires by itself.
        try:
            result = self._sweep(_Tally(run=run, now=now, stripe=self._stripe()), remaining_ms, reserve_ms, started)
        except Exception:
            self._release(run)
            raise
        self._release(run)
        return result

    def _release(self, run: str) -> None:
        try:
            self._state.release(run)
        except Exception:
            logger.warning("could not release the sweep lease; it expires at its deadline", exc_info=True)

    def _sweep(self, tally: _Tally, remaining_ms: Callable[[], int], reserve_ms: int, started: float) -> SweepResult:
        oldest_page, _ = self._payments.open_stripe_before(tally.now, limit=1, after=None)
        oldest = _minutes(tally.now, oldest_page[0].created_at) if oldest_page else None

        def time_for_one() -> bool:
            return remaining_ms() > reserve_ms + self._lookup_budget_ms

        if tally.stripe is None:  # Stripe is not configured: there is no log to read
            caught_up, covered = True, None
        else:
            covered = self._read_events(tally, tally.stripe, time_for_one)
            caught_up = covered is not None
        finished = self._walk(tally, time_for_one, covered) and caught_up
        if finished:
            self._state.save(None)
        result = SweepResult(
            tally.run,
            dict(tally.events),
            tally.checked,
            dict(tally.outcomes),
            tally.errors,
            finished,
            oldest,
            int((time.monotonic() - started) * 1000),
        )
        self._report(result)
        return result

    # ------------------------------------------------------------------ 1. Stripe's event log

    def _read_events(
        self, tally: _Tally, stripe: StripeCheckoutGateway, time_for_one: Callable[[], bool]
    ) -> int | None:
        """Apply what the event log holds since the saved place; the time (epoch seconds) before
        which every event was read, or None if the log could not be read to now."""
        now = int(tally.now.timestamp())
        until = now + 1  # this very second included (the overlap re-reads what is listed late)
        saved = self._state.events_read_before()
        start = saved - EVENT_OVERLAP_SECONDS if saved is not None else now - FIRST_LOOKBACK_SECONDS
        start = max(start, now - STRIPE_RETENTION_SECONDS)
        place = _Place(self._state, saved)
        try:
            return self._read_windows(tally, stripe, start, until, place, time_for_one)
        finally:
            place.save()  # once per run (and per window that applied something): progress, not a write per event

    def _read_windows(
        self,
        tally: _Tally,
        stripe: StripeCheckoutGateway,
        start: int,
        until: int,
        place: _Place,
        time_for_one: Callable[[], bool],
    ) -> int | None:
        now = until - 1
        while start < until:
            end = min(start + EVENT_WINDOW_SECONDS, until)
            events = self._window(tally, stripe, start, end, time_for_one)
            if events is None:
                return None
            for event in events:
                step = self._apply_event(tally, event) if time_for_one() else "stopped"
                if step == "stopped":
                    return None
                held = step == "deferred" and int(event["created"]) > now - HOLD_SECONDS
                if step == "deferred" and not held:
                    logger.error(
                        "a Stripe event that could not apply for 3 days is passed", extra={"event": event["id"]}
                    )
                place.passed(event, deferred=held)
            place.passed(None, before=end)
            if events:
                place.save()
            start = end
        return until

    def _window(
        self, tally: _Tally, stripe: StripeCheckoutGateway, start: int, end: int, time_for_one: Callable[[], bool]
    ) -> list[dict[str, Any]] | None:
        """Every handled event created in [start, end), oldest first; None if it could not be listed."""
        listed: list[dict[str, Any]] = []
        after: str | None = None
        while time_for_one():
            try:
                page = stripe.list_events(
                    types=STRIPE_EVENT_TYPES, created_gte=start, created_lt=end, starting_after=after
                )
            except Exception:  # noqa: BLE001 - Stripe unreachable or refusing: counted, retried next run
                tally.errors += 1
                logger.warning("Stripe's event log could not be read", extra={"from": start, "to": end})
                return None
            listed.extend(page.events)
            if not page.has_more or not page.events:
                tally.events["listed"] += len(listed)
                return listed[::-1]  # Stripe lists newest first
            after = page.events[-1]["id"]
        return None

    def _apply_event(self, tally: _Tally, event: Mapping[str, Any]) -> EventStep:
        try:
            try:
                _, outcome = self._handler.apply(event, "reconciliation")
            except RequestInProgress:
                # The webhook applying it now, or this sweep's own record whose answer was lost (in
                # progress until this invocation ends: waiting would leave it to the next sweep).
                outcome = self._handler.apply_unrecorded(event, "reconciliation")
        except (RetryLater, UnreadableRecord):
            # Cannot apply yet (a refund before its completion; a record the shop must fix first).
            tally.events["deferred"] += 1
            return "deferred"
        except Exception:
            tally.errors += 1
            logger.exception("applying a Stripe event from the log failed", extra={"event_id": event.get("id")})
            return "stopped"
        if outcome is None:
            tally.events["already_applied"] += 1
        else:
            tally.outcomes[_label(outcome)] += 1
        return "done"

    # ------------------------------------------------------------------ 2. the open index

    def _walk(self, tally: _Tally, time_for_one: Callable[[], bool], covered: int | None) -> bool:
        """Settle open payments past the window, page by page from where the last run stopped,
        saving the place after each; True when the end was reached."""
        after = self._state.load()
        cutoff = tally.now - self._after
        while time_for_one():
            page, next_key = self._payments.open_stripe_before(cutoff, limit=self._batch_size, after=after)
            for payment in page:
                if not time_for_one():
                    return False
                tally.checked += 1
                try:
                    tally.outcomes[self._settle(payment, tally, covered)] += 1
                except StripeUnavailable:
                    tally.errors += 1
                except UnreadableRecord:
                    pass  # its order breaks its contract (the record's own alarm): it stays open for the next run
                except Exception:
                    tally.errors += 1
                    logger.exception("reconciliation of a payment failed", extra={"payment": payment.id})
                after = self._payments.position(payment)
                self._state.save(after)  # progress as it goes: a sweep stopped anywhere resumes here
            if next_key is None:  # also right when a full last page is followed by an empty one
                return True
            after = next_key
        return False

    def _report(self, result: SweepResult) -> None:
        for outcome, number in result.outcomes.items():
            count(f"Reconciled{outcome.capitalize()}", number)
        if result.stripe_errors:
            count("ReconcileStripeErrors", result.stripe_errors)
        metrics.add_metric(name="ReconcileSweepDuration", unit="Milliseconds", value=result.duration_ms)
        oldest = result.oldest_open_minutes
        if oldest is not None:
            metrics.add_metric(name="OldestOpenStripePaymentMinutes", unit="Count", value=oldest)
            # In windows, so the alarm's threshold ("past twice the window") needs no arithmetic.
            window = max(self._after.total_seconds() / 60, 1)
            metrics.add_metric(name="OldestOpenStripePaymentWindows", unit="Count", value=round(oldest / window, 2))
        logger.info("reconciliation sweep", extra=result.summary())

    def _settle(self, payment: Payment, tally: _Tally, covered: int | None) -> str:
        if payment.status not in OPEN_STATUSES:  # given up; its session not yet known closed
            return self._given_up(payment, covered)
        event_id = f"reconciliation:{tally.run}:{payment.id}"
        if not payment.checkout_session_id:
            return self._settle_sessionless(payment, event_id, tally.now)
        if payment.status == PaymentStatus.PROCESSING:
            return "processing"  # a delayed method is deciding: its event settles it (from the log if lost)
        if not _session_over(payment, covered):
            return "open"  # its session may still be paid; its events will tell
        # Pending long after its session expired, the log read past that: Stripe's log does not hold
        # its events (older than the log's 30 days, or than this sweep's first run). Ask Stripe.
        return self._settle_from_stripe(payment, payment.checkout_session_id, tally.stripe, event_id)

    def _given_up(self, payment: Payment, covered: int | None) -> str:
        """A payment given up while its session might still be paid: expire the session while it
        may be open; once it cannot be (its expiry passed, the log read past that), whatever it did
        (expired, paid, a delayed method's result) is in the log, applied like every other event."""
        if _session_over(payment, covered):
            self._settlement.stop_watching(payment)
            return "closed"
        if not payment.checkout_session_id:
            return "watching"  # its checkout may have made a session nobody knows of: it expires unpaid
        fate = self._settlement.close_given_up_session(payment)
        if fate == "unknown":
            raise StripeUnavailable("could not expire the session of a payment given up")
        return {"closed": "closed", "refund": "needs_refund"}.get(fate, "processing")

    def _settle_sessionless(self, payment: Payment, event_id: str, now: datetime) -> str:
        if now - parse_timestamp(payment.created_at) <= self._sessionless_grace:
            return "open"  # its checkout may still be talking to Stripe
        # No session was ever stored: the checkout died between its transaction and Stripe.
        # Give the order up like an expiry would, unless a session is attached meanwhile.
        change = Change(
            payment.order,
            payment.id,
            PaymentStatus.FAILED,
            "reconciliation",
            event_id,
            facts=Facts(without_session=True),
            reason="no_session",
        )
        outcome = self._settlement.apply(change)
        return "open" if outcome.kind == "has_session" else self._outcome(outcome, PaymentStatus.FAILED)

    def _settle_from_stripe(
        self, payment: Payment, session_id: str, stripe: StripeCheckoutGateway | None, event_id: str
    ) -> str:
        if stripe is None:
            raise StripeUnavailable("Stripe is not configured")
        try:
            session = stripe.retrieve_session(session_id)
        except Exception as exc:
            logger.warning("Stripe lookup failed during reconciliation", extra={"payment": payment.id})
            raise StripeUnavailable(str(exc)) from exc
        data = {
            "id": session.id,
            "payment_status": session.payment_status,
            "amount_total": session.amount_total,
            "currency": session.currency,
            "payment_intent": session.payment_intent,
            "metadata": session.metadata or {"order_id": str(payment.order), "payment_id": str(payment.id)},
        }
        if session.payment_failed:
            # A delayed method that failed: the session stays complete and unpaid for ever; its
            # PaymentIntent says how it ended.
            outcome = self._events.apply_session(
                "checkout.session.async_payment_failed", data, event_id, "reconciliation"
            )
            return self._outcome(outcome, PaymentStatus.FAILED)
        if session.status == "complete":
            outcome = self._events.apply_session("checkout.session.completed", data, event_id, "reconciliation")
            return self._outcome(outcome, PaymentStatus.COMPLETED if session.paid else PaymentStatus.PROCESSING)
        if session.status == "expired":
            outcome = self._events.apply_session("checkout.session.expired", data, event_id, "reconciliation")
            return self._outcome(outcome, PaymentStatus.FAILED)
        return "open"  # still open at Stripe: nothing to settle yet

    @staticmethod
    def _outcome(outcome: Outcome, target: PaymentStatus) -> str:
        return str(target) if outcome.kind == "applied" else outcome.kind


def _session_over(payment: Payment, covered: int | None) -> bool:
    """Its Checkout Session can no longer be paid, and Stripe's event log has been read past its end."""
    expires = payment.checkout_expires_at
    return covered is not None and (expires is None or expires + SESSION_END_GRACE_SECONDS < covered)


class _Place:
    """How far the event log is read: every event created before it is applied. It moves as events
    are applied, never past one deferred (an event that cannot apply yet), and is saved now and then."""

    def __init__(self, state: SweepState, saved: int | None) -> None:
        self._state = state
        self._saved = saved
        self._place = saved
        self._held = False

    def passed(self, event: Mapping[str, Any] | None, *, deferred: bool = False, before: int = 0) -> None:
        """Past `event` (every event before its time is applied), or past every event before `before`."""
        moved = int(event["created"]) if event is not None else before
        if not self._held and (self._place is None or moved > self._place):
            self._place = moved
        self._held = self._held or deferred

    def save(self) -> None:
        if self._place is not None and self._place != self._saved:
            self._state.save_events_read_before(self._place)
            self._saved = self._place


class StripeUnavailable(Exception):
    pass
