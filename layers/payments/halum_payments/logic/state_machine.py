"""The payment state machine: which status may follow which, and nothing else."""

from __future__ import annotations

from ..models import PaymentMethod, PaymentStatus

P = PaymentStatus

_NEXT: dict[PaymentStatus, frozenset[PaymentStatus]] = {
    P.PENDING: frozenset({P.PROCESSING, P.COMPLETED, P.FAILED}),
    P.PROCESSING: frozenset({P.COMPLETED, P.FAILED}),
    P.COMPLETED: frozenset({P.REFUNDED}),
    P.FAILED: frozenset(),
    P.REFUNDED: frozenset(),
}

# How far along the lifecycle a status is: an event for an earlier stage than the payment's
# is stale (ignore it); one for a later stage that is not reachable yet may become reachable
# once a delayed event arrives (ask the sender to retry).
_STAGE = {P.PENDING: 0, P.PROCESSING: 1, P.FAILED: 2, P.COMPLETED: 2, P.REFUNDED: 3}


def allowed(method: PaymentMethod, current: PaymentStatus, target: PaymentStatus) -> bool:
    if current == P.FAILED and target == P.COMPLETED:
        # A gateway may report money that moved after it reported a failure; Stripe never does.
        return method == PaymentMethod.ONLINE
    return target in _NEXT[current]


def may_become_allowed(current: PaymentStatus, target: PaymentStatus) -> bool:
    """True when `target` is ahead of `current` and an intermediate event may still arrive."""
    return target == P.REFUNDED and current in (P.PENDING, P.PROCESSING)


def is_stale(current: PaymentStatus, target: PaymentStatus) -> bool:
    return _STAGE[target] <= _STAGE[current]
