"""The time the invocation being served has left, as its Lambda context says.

The transport binds it for the duration of one invocation (http.py for every API and webhook
function, the reconciler's handler for the sweep); the AWS clients read it to fit each attempt and
retry in what is left (repositories/dynamo.py). Unbound (tests, scripts, seeding): no limit.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator
from typing import Any

_remaining: contextvars.ContextVar[Callable[[], int] | None] = contextvars.ContextVar("remaining_ms", default=None)


@contextlib.contextmanager
def bound(context: Any) -> Iterator[None]:
    """Within: `remaining_ms()` is the invocation's (`context.get_remaining_time_in_millis`)."""
    getter = getattr(context, "get_remaining_time_in_millis", None)
    token = _remaining.set(getter if callable(getter) else None)
    try:
        yield
    finally:
        _remaining.reset(token)


def remaining_ms() -> int | None:
    """Milliseconds the invocation has left; None outside an invocation."""
    getter = _remaining.get()
    return None if getter is None else int(getter())
