"""Threads standing in for concurrent Lambda execution environments, each with its own loaded
function module, released together against one DynamoDB (and one Stripe sandbox).

Lambda runs one invocation at a time per environment. What environments would not share but
threads in one process do is made per thread (the request Powertools keeps on its router class)
or serialised (Powertools' metric set); the code under test (idempotency, conditional writes)
is neither."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any


def run_together(calls: list[Callable[[], Any]], timeout: float = 30.0) -> list[Any]:
    """Run the calls in threads released at once; returns their results (re-raises their errors)."""
    with _serialised_metrics(), _request_per_thread():
        return _released_at_once(calls, timeout)


def _released_at_once(calls: list[Callable[[], Any]], timeout: float) -> list[Any]:
    start = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)
    errors: list[BaseException] = []

    def run(index: int, fn: Callable[[], Any]) -> None:
        try:
            start.wait(timeout)
            results[index] = fn()
        except BaseException as exc:  # reported to the test below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i, fn), daemon=True) for i, fn in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    assert not any(thread.is_alive() for thread in threads), "a concurrent call never finished"
    if errors:
        raise errors[0]
    return results


@contextmanager
def _request_per_thread() -> Iterator[None]:
    """Powertools' resolvers keep the request being served on their base class
    (`BaseRouter.current_event`, `.lambda_context`): one per process, which is right on Lambda
    (one request at a time per process) but would hand one thread's request to another here.
    For the duration, those two class attributes are per thread."""
    from abc import ABCMeta

    from aws_lambda_powertools.event_handler.api_gateway import BaseRouter

    names = ("current_event", "lambda_context")
    state = threading.local()
    saved = {name: BaseRouter.__dict__.get(name) for name in names}

    class PerThread:
        def __init__(self, name: str) -> None:
            self.name = name

        def __get__(self, instance: Any, owner: Any = None) -> Any:
            try:
                return getattr(state, self.name)
            except AttributeError:
                raise AttributeError(self.name) from None

        def __set__(self, instance: Any, value: Any) -> None:
            setattr(state, self.name, value)

    # `BaseRouter.current_event = ...` is set on the class: a data descriptor on its metaclass
    # takes that assignment; the same descriptor on the class serves `resolver.current_event`.
    meta = type("PerThreadRequestMeta", (ABCMeta,), {name: PerThread(name) for name in names})
    original_meta = type(BaseRouter)
    for name in names:  # into the class's own namespace first, then the metaclass
        setattr(BaseRouter, name, PerThread(name))
    BaseRouter.__class__ = meta
    try:
        yield
    finally:
        BaseRouter.__class__ = original_meta
        for name in names:
            delattr(BaseRouter, name)
            if saved[name] is not None:
                setattr(BaseRouter, name, saved[name])


@contextmanager
def _serialised_metrics() -> Iterator[None]:
    from halum_payments.observability import metrics

    provider = metrics.provider
    lock = threading.RLock()
    names = ("add_metric", "flush_metrics")

    def locked(method: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args: Any, **kwargs: Any) -> Any:
            with lock:
                return method(*args, **kwargs)

        return run

    for name in names:
        setattr(provider, name, locked(getattr(provider, name)))
    try:
        yield
    finally:
        for name in names:
            delattr(provider, name)  # back to the class's methods
