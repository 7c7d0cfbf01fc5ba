"""Virtual time and seeded randomness: what makes one seed replay exactly.

Every clock the code under test reads is this one: `time.time`/`time.monotonic`/`time.sleep`
(looked up as module attributes by the layer, botocore, stripe-python and the Stripe sandbox),
and `datetime.now` where it is bound at import time: `halum_payments.clock` (every `utc_now()`),
Powertools' idempotency records (in-progress and record expiry) and PyJWT's `exp`/`iat` checks.
Those three are replaced by module-global patches because they hold `datetime` themselves; without
them an in-progress idempotency record would expire after *real* milliseconds, which depends on
the machine's speed, and a replay would not be exact.

`uuid.uuid4` (audit keys, botocore's ClientRequestToken, stripe-python's retry keys, request ids),
the global `random` (retry jitter in the layer, botocore and stripe-python) and the sandbox's ids
are seeded from the run's seed.
"""

from __future__ import annotations

import datetime as _datetime
import importlib
import random
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any

REAL_DATETIME = _datetime.datetime
EPOCH = 1_893_456_000.0  # 2030-01-01T00:00:00Z: far from the machine's clock, so a leak shows


class VirtualClock:
    def __init__(self, start: float = EPOCH) -> None:
        self.now = start
        self.start = start

    def advance_to(self, moment: float) -> None:
        if moment > self.now:
            self.now = moment

    @property
    def elapsed(self) -> float:
        return self.now - self.start


def _virtual_datetime_class(clock: VirtualClock) -> type:
    class VirtualDatetime(REAL_DATETIME):
        @classmethod
        def now(cls, tz: Any = None) -> Any:
            return REAL_DATETIME.fromtimestamp(clock.now, tz)

        @classmethod
        def utcnow(cls) -> Any:
            return REAL_DATETIME.fromtimestamp(clock.now, _datetime.UTC).replace(tzinfo=None)

        @classmethod
        def today(cls) -> Any:
            return REAL_DATETIME.fromtimestamp(clock.now)

    return VirtualDatetime


class _DatetimeModule:
    """Stands in for the `datetime` module inside modules that did `import datetime as dt`."""

    def __init__(self, virtual: type) -> None:
        self.datetime = virtual

    def __getattr__(self, name: str) -> Any:
        return getattr(_datetime, name)


# (module, global name, what to put there). Modules are imported here so the patch cannot miss
# them by being applied before their import.
_DATETIME_HOLDERS = (
    ("halum_payments.clock", "datetime", "class"),
    ("jwt.api_jwt", "datetime", "class"),
    ("aws_lambda_powertools.utilities.idempotency.base", "dt", "module"),
    ("aws_lambda_powertools.utilities.idempotency.persistence.base", "dt", "module"),
    ("aws_lambda_powertools.utilities.idempotency.persistence.dynamodb", "dt", "module"),
    ("aws_lambda_powertools.utilities.idempotency.persistence.datarecord", "dt", "module"),
)


class SeededIds:
    """uuid4 and Stripe-style ids from the run's seed."""

    ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(f"ids-{seed}")

    def uuid4(self) -> uuid.UUID:
        return uuid.UUID(int=self._rng.getrandbits(128), version=4)

    def stripe_id(self, prefix: str) -> str:
        return prefix + "".join(self._rng.choice(self.ALPHABET) for _ in range(24))


@contextmanager
def virtual_time(clock: VirtualClock, sleep: Callable[[float], None], seed: int) -> Iterator[SeededIds]:
    """Patch every clock and random source for the duration; restore everything afterwards."""
    ids = SeededIds(seed)
    virtual = _virtual_datetime_class(clock)
    saved: list[tuple[Any, str, Any]] = []

    def patch(target: Any, name: str, value: Any) -> None:
        saved.append((target, name, getattr(target, name)))
        setattr(target, name, value)

    random_state = random.getstate()
    random.seed(f"product-{seed}")
    try:
        patch(time, "time", lambda: clock.now)
        patch(time, "time_ns", lambda: int(clock.now * 1e9))
        patch(time, "monotonic", lambda: clock.now - clock.start + 1000.0)
        patch(time, "sleep", sleep)
        patch(uuid, "uuid4", ids.uuid4)
        for module_name, attribute, kind in _DATETIME_HOLDERS:
            module: ModuleType = importlib.import_module(module_name)
            patch(module, attribute, virtual if kind == "class" else _DatetimeModule(virtual))
        # secrets.py keeps its own reference to the wall clock (its age survives a SnapStart restore).
        patch(importlib.import_module("halum_payments.secrets"), "clock", lambda: clock.now)
        sandbox = importlib.import_module("local.stripe_sandbox")
        patch(sandbox, "_new_id", ids.stripe_id)
        yield ids
    finally:
        for target, name, value in reversed(saved):
            setattr(target, name, value)
        random.setstate(random_state)
