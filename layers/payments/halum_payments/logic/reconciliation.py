"""The reconciliation sweep: Stripe payments still open long after their Checkout Session should
have resolved are settled from Stripe's own record, through the same code as the webhook."""

from __future__ import annotations

import math
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from ..clock import format_timestamp, parse_timestamp, utc_now
from ..models import OPEN_STATUSES, Payment, PaymentStatus
from ..observability import count, logger, metrics
from .settlement import Change, Facts, Outcome, Settlement
from .webhooks import StripeEvents

SESSIONLESS_MARGIN_SECONDS = 60
# A sweep's lease ends when its invocation must have ended (its remaining time at the start), plus
# this much for the clocks of two Lambda hosts.
LEASE_MARGIN_SECONDS = 5


class OpenPayments(Protocol):
    def open_stripe_before(
        self, cutoff: datetime, *, limit: int, after: dict[str, Any] | None
    ) -> tuple[list[Payment], dict[str, Any] | None]: ...

    def position(self, payment: Payment) -> dict[str, Any]:
        """Where a listing resumes right after `payment`."""
        ...


class SweepState(Protocol):
    """Where the last sweep stopped, and the lease that lets one sweep run at a time."""

    def load(self) -> dict[str, Any] | None: ...

    def save(self, cursor: dict[str, Any] | None) -> None: ...

    def acquire(self, holder: str, *, now: int, until: int) -> bool: ...

    def release(self, holder: str) -> None: ...


class SessionSource(Protocol):
    def retrieve_session(self, session_id: str) -> Any: ...


@dataclass(frozen=True, slots=True)
class SweepResult:
    run: str
    checked: int
    outcomes: dict[str, int]
    stripe_errors: int
    finished: bool  # False: stopped for time; the next run resumes where this one stopped
    oldest_open_minutes: int | None
    duration_ms: int
    skipped: bool = False  # another sweep held the lease: this one did nothing

    def summary(self) -> dict[str, Any]:
        return {
            "run": self.run,
            "checked": self.checked,
            "outcomes": self.outcomes,
            "stripe_errors": self.stripe_errors,
            "finished": self.finished,
            "skipped": self.skipped,
            "oldest_open_minutes": self.oldest_open_minutes,
            "duration_ms": self.duration_ms,
        }


@dataclass(slots=True)
class _Tally:
    """One sweep's run id, time, Stripe, and what it did so far."""

    run: str
    now: datetime
    stripe: SessionSource | None
    checked: int = 0
    errors: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)


def _minutes(now: datetime, since: str) -> int:
    return int((now - parse_timestamp(since)).total_seconds() // 60)


class Reconciler:
    def __init__(
        self,
        payments: OpenPayments,
        state: SweepState,
        events: StripeEvents,
        settlement: Settlement,
        stripe: Callable[[], SessionSource | None],
        *,
        after_minutes: int,
        batch_size: int,
        checkout_seconds: int,
        lookup_budget_ms: int,
        now: Callable[[], str] = lambda: format_timestamp(utc_now()),
    ) -> None:
        self._payments = payments
        self._state = state
        self._events = events
        self._settlement = settlement
        self._stripe = stripe
        self._after = timedelta(minutes=after_minutes)
        self._batch_size = batch_size
        # A payment without a session may still get one while the checkout that created it runs:
        # it is given up only once that checkout cannot be running any more.
        self._sessionless_grace = timedelta(seconds=checkout_seconds + SESSIONLESS_MARGIN_SECONDS)
        # The most one payment can take (a Stripe lookup with its retries, then a settlement): the
        # sweep starts a payment only if that much time is left before its own reserve.
        self._lookup_budget_ms = lookup_budget_ms
        self._now = now

    def sweep(self, remaining_ms: Callable[[], int], *, reserve_ms: int = 5000) -> SweepResult:
        """One sweep, unless another one holds the lease (then nothing is done: `skipped`)."""
        started = time.monotonic()
        run, now = uuid.uuid4().hex[:12], parse_timestamp(self._now())
        epoch = int(now.timestamp())
        until = epoch + math.ceil(remaining_ms() / 1000) + LEASE_MARGIN_SECONDS
        if not self._state.acquire(run, now=epoch, until=until):
            result = SweepResult(run, 0, {}, 0, False, None, int((time.monotonic() - started) * 1000), skipped=True)
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

        finished = self._walk(tally, time_for_one)
        if finished:
            self._state.save(None)
        result = SweepResult(
            tally.run,
            tally.checked,
            dict(tally.outcomes),
            tally.errors,
            finished,
            oldest,
            int((time.monotonic() - started) * 1000),
        )
        self._report(result)
        return result

    def _walk(self, tally: _Tally, time_for_one: Callable[[], bool]) -> bool:
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
                    tally.outcomes[self._settle(payment, tally.stripe, tally.run, tally.now)] += 1
                except StripeUnavailable:
                    tally.errors += 1
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

    def _settle(self, payment: Payment, stripe: SessionSource | None, run: str, now: datetime) -> str:
        if payment.status not in OPEN_STATUSES:  # given up (superseded); its session not yet known closed
            if not self._settlement.close_given_up_session(payment):
                raise StripeUnavailable("could not expire the session of a payment given up")
            return "closed"
        event_id = f"reconciliation:{run}:{payment.id}"
        if not payment.checkout_session_id:
            return self._settle_sessionless(payment, event_id, now)
        return self._settle_from_stripe(payment, payment.checkout_session_id, stripe, event_id)

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
        self, payment: Payment, session_id: str, stripe: SessionSource | None, event_id: str
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
            # A delayed method that failed (its async_payment_failed event was lost): the session
            # stays complete and unpaid for ever; its PaymentIntent says how it ended.
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


class StripeUnavailable(Exception):
    pass
