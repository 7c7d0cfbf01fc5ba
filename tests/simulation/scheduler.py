"""The deterministic scheduler: simulated requests are threads, and exactly one runs at a time.

A task (a request, an actor, a Stripe delivery, a timer) runs until its next I/O point (a
DynamoDB call, a Stripe request, a sleep), where it says how long the I/O takes in virtual time
and hands the baton back. The scheduler then picks the next task among those whose I/O has
completed (the seeded RNG breaks ties), moving the virtual clock forward when nobody is ready.
Threads are used only so the real code can keep its ordinary call stack; they never overlap.

A task may carry a `Limit`: the Lambda invocation it is running, with the function's deadline
(the template's Timeout) and possibly an injected kill. At an I/O point past the deadline, or at
the chosen I/O point, the task is stopped with `Killed` (a BaseException, so nothing in the code
under test catches it), and every later I/O point of that invocation raises it again.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .clock import VirtualClock

REAL_SECONDS_BEFORE_STUCK = 60.0  # a task that does not yield back within this (real) time is a harness bug


class Killed(BaseException):
    """The Lambda runtime stopped the function (its timeout, or an injected kill)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SimulationStuck(RuntimeError):
    pass


@dataclass
class Limit:
    """One invocation's end: its deadline and an optional injected kill at the n-th I/O point,
    before the I/O happens ("before") or after it happened but before its answer arrives ("after")."""

    deadline: float
    kill_at_io: int | None = None
    kill_phase: str = "before"
    io_count: int = 0
    killed: str | None = None


@dataclass(eq=False)
class Task:
    id: int
    name: str
    fn: Callable[[], Any]
    wake: float
    sem: threading.Semaphore = field(default_factory=lambda: threading.Semaphore(0))
    thread: threading.Thread | None = None
    done: bool = False
    error: BaseException | None = None
    limit: Limit | None = None
    shutdown: bool = False
    context: dict[str, Any] = field(default_factory=dict)  # what the task is doing (function, request)


class Scheduler:
    def __init__(self, clock: VirtualClock, rng: random.Random) -> None:
        self.clock = clock
        self.rng = rng
        self.tasks: list[Task] = []
        self.steps = 0
        self._ids = 0
        self._main = threading.Semaphore(0)
        self._local = threading.local()

    # ------------------------------------------------------------------ inside tasks

    def current(self) -> Task | None:
        return getattr(self._local, "task", None)

    def io(self, latency: float) -> None:
        """An I/O point of the current task taking `latency` virtual seconds. Outside a task (the
        world being set up) it is a no-op."""
        task = self.current()
        if task is None:
            return
        if task.shutdown:
            raise Killed("shutdown")
        limit = task.limit
        if limit is not None:
            if limit.killed:
                raise Killed(limit.killed)
            limit.io_count += 1
            if limit.kill_at_io == limit.io_count and limit.kill_phase == "before":
                limit.killed = "killed"
                raise Killed("killed")
            if self.clock.now + latency > limit.deadline:
                self._wait(task, max(limit.deadline - self.clock.now, 0.0))
                limit.killed = "timeout"
                raise Killed("timeout")
        self._wait(task, latency)

    def after_io(self) -> None:
        """The I/O of the current task happened; an injected "after" kill loses its answer."""
        task = self.current()
        if task is None or task.limit is None:
            return
        limit = task.limit
        if limit.killed:
            raise Killed(limit.killed)
        if limit.kill_at_io == limit.io_count and limit.kill_phase == "after":
            limit.killed = "killed"
            raise Killed("killed")

    def sleep(self, seconds: float) -> None:
        self.io(max(seconds, 0.0))

    def _wait(self, task: Task, seconds: float) -> None:
        if task.shutdown:
            raise Killed("shutdown")
        task.wake = self.clock.now + seconds
        self._main.release()
        task.sem.acquire()
        if task.shutdown:
            raise Killed("shutdown")

    # ------------------------------------------------------------------ the loop (main thread)

    def spawn(self, name: str, fn: Callable[[], Any], *, delay: float = 0.0, **context: Any) -> Task:
        self._ids += 1
        task = Task(self._ids, name, fn, self.clock.now + max(delay, 0.0), context=dict(context))
        self.tasks.append(task)
        return task

    @property
    def pending(self) -> bool:
        return any(not t.done for t in self.tasks)

    def step(self) -> Task | None:
        """Run one task to its next I/O point; None when nothing is left to run."""
        live = [t for t in self.tasks if not t.done]
        self.tasks = live
        if not live:
            return None
        ready = [t for t in live if t.wake <= self.clock.now]
        if not ready:
            self.clock.advance_to(min(t.wake for t in live))
            ready = [t for t in live if t.wake <= self.clock.now]
        task = ready[self.rng.randrange(len(ready))] if len(ready) > 1 else ready[0]
        self._resume(task)
        self.steps += 1
        return task

    def next_wake(self) -> float | None:
        live = [t.wake for t in self.tasks if not t.done]
        return min(live) if live else None

    def _resume(self, task: Task) -> None:
        if task.thread is None:
            task.thread = threading.Thread(target=self._run, args=(task,), name=f"sim-{task.name}", daemon=True)
            task.thread.start()
        else:
            task.sem.release()
        if not self._main.acquire(timeout=REAL_SECONDS_BEFORE_STUCK):
            raise SimulationStuck(f"task {task.name} did not reach an I/O point within {REAL_SECONDS_BEFORE_STUCK}s")
        if task.done and task.error is not None and not isinstance(task.error, Killed):
            raise task.error

    def _run(self, task: Task) -> None:
        self._local.task = task
        try:
            task.fn()
        except BaseException as exc:  # reported to the main thread (Killed ends a task quietly)
            task.error = exc
        finally:
            task.done = True
            self._main.release()

    def close(self) -> None:
        """Unwind every parked thread (a run that stopped early leaves some)."""
        for task in self.tasks:
            if task.thread is not None and not task.done:
                task.shutdown = True
                task.sem.release()
                self._main.acquire(timeout=REAL_SECONDS_BEFORE_STUCK)
        self.tasks = []
