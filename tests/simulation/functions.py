"""The Lambda functions of template.yaml, run in-process: each a pool of execution environments
(a fresh import of functions/<name>/app.py with the environment the template gives it), one
request at a time per environment, a context whose remaining time follows the virtual clock,
and the template's Timeout enforced at I/O points.

`current_function` holds the template logical id (e.g. "CreateStripeOrderFunction") of the
handler running in the current thread, set here and only here, around every handler call: a
recorder hooked on the DynamoDB client (issue 13's IAM conformance test) reads it to attribute
each AWS call to the function that made it.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import os
import random
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from support import iam

from halum_payments import config
from local.environment import function_environment
from local.template import FunctionSpec, Template

from .clock import VirtualClock
from .scheduler import Killed, Limit, Scheduler

# The IAM recorder's (tests/support/iam.py): AWS calls made while a handler runs are that
# function's, and the IAM conformance verdicts judge them with the integration suite's.
current_function: ContextVar[str | None] = iam.current_function

STRIPE_API = "https://api.stripe.com"  # never reached: the simulated opener answers


@dataclass
class Invocation:
    """One handler call and everything it did."""

    id: int
    function: str
    started: float
    ended: float | None = None
    status: int | None = None  # None: no answer (killed, or throttled by reserved concurrency)
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    text: str = ""
    killed: str | None = None
    crash: str | None = None
    throttled: bool = False
    calls: list[tuple[str, str, str]] = field(default_factory=list)  # (service, operation, outcome)
    metrics: list[tuple[str, float]] = field(default_factory=list)  # published: flushed by the handler
    unflushed: list[tuple[str, float]] = field(default_factory=list)  # counted, not published (yet)
    writes: list[Any] = field(default_factory=list)  # dynamodb.Call: writes DynamoDB applied
    queries: list[Any] = field(default_factory=list)  # dynamodb.Call: Queries answered (with their Count)
    request: dict[str, Any] = field(default_factory=dict)  # what the simulation sent (for the invariants)

    @property
    def faulted(self) -> bool:
        """Was a fault injected into any DynamoDB or Stripe call of this invocation? (Contention,
        such as TransactionConflict or idempotency_key_in_use, is not an injected fault.)"""
        return any(outcome.startswith(("fault-", "lost-")) for _, _, outcome in self.calls)

    def metric(self, name: str) -> float:
        return sum(value for metric, value in self.metrics if metric == name)

    def describe(self) -> str:
        state = (self.killed and f"killed ({self.killed})") or self.crash or f"{self.status} {self.text[:160]}"
        return f"#{self.id} {self.function} -> {state}"


class SimContext:
    """What handlers and Powertools read from Lambda's context, on virtual time."""

    def __init__(self, spec: FunctionSpec, clock: VirtualClock, deadline: float, request_id: str) -> None:
        self.function_name = spec.logical_id
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:000000000000:function:{spec.logical_id}"
        self.memory_limit_in_mb = spec.memory
        self.aws_request_id = request_id
        self.log_group_name = f"/aws/lambda/{spec.logical_id}"
        self.log_stream_name = "simulation"
        self._clock = clock
        self._deadline = deadline

    def get_remaining_time_in_millis(self) -> int:
        return max(int((self._deadline - self._clock.now) * 1000), 0)


@dataclass(eq=False)
class Environment:
    module: ModuleType
    busy: bool = False
    dead: bool = False


class Functions:
    def __init__(
        self,
        template: Template,
        scheduler: Scheduler,
        rng: random.Random,
        secrets: Mapping[str, str],
        settings: Mapping[str, str] | None = None,
        kill_rate: float = 0.0,
    ) -> None:
        self.template = template
        self.scheduler = scheduler
        self.rng = rng
        self.kill_rate = kill_rate
        self.specs = {spec.logical_id: spec for spec in template.functions()}
        # As deployed with the template's defaults (none: a second sweep meets the first one's lease).
        self.reserved = {
            name: limit for name in self.specs if (limit := template.reserved_concurrency(name)) is not None
        }
        self.environments: dict[str, list[Environment]] = {name: [] for name in self.specs}
        self.env = {
            name: function_environment(
                spec, secrets, dynamodb_endpoint="", setting_defaults=settings, stripe_sandbox=STRIPE_API
            )
            for name, spec in self.specs.items()
        }
        for env in self.env.values():
            env.pop("AWS_ENDPOINT_URL_DYNAMODB", None)  # the simulated transport answers every request
            env.pop("PATH", None)
            env["POWERTOOLS_METRICS_DISABLED"] = "true"
        self.invocations: list[Invocation] = []
        self.next_kill: dict[str, tuple[int, str]] = {}  # scenarios: stop the function's next invocation
        self.cold_starts = 0
        self.kills = 0
        self._ids = itertools.count(1)

    # ------------------------------------------------------------------ environments

    def _cold_start(self, name: str) -> Environment:
        spec = self.specs[name]
        saved = {key: os.environ.get(key) for key in self.env[name]}
        os.environ.update(self.env[name])
        config._settings = None  # a new process: settings are read again from its environment
        try:
            module_name = f"sim_{spec.code_uri.name}_{next(self._ids)}"
            loader = importlib.util.spec_from_file_location(module_name, spec.code_uri / "app.py")
            assert loader is not None and loader.loader is not None
            module = importlib.util.module_from_spec(loader)
            sys.modules[module_name] = module
            loader.loader.exec_module(module)
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
            config._settings = None
        self.cold_starts += 1
        environment = Environment(module)
        self.environments[name].append(environment)
        return environment

    def _acquire(self, name: str) -> Environment | None:
        pool = self.environments[name]
        busy = sum(1 for env in pool if env.busy and not env.dead)
        if busy >= self.reserved.get(name, 1 << 30):
            return None  # Lambda throttles the invocation
        for env in pool:
            if not env.busy and not env.dead:
                env.busy = True
                return env
        env = self._cold_start(name)
        env.busy = True
        return env

    def discard(self) -> None:
        for pool in self.environments.values():
            for env in pool:
                sys.modules.pop(env.module.__name__, None)
            pool.clear()

    # ------------------------------------------------------------------ invoking

    def invoke(
        self,
        name: str,
        event: dict[str, Any],
        *,
        kill: tuple[int, str] | None = None,
        request: dict[str, Any] | None = None,
    ) -> Invocation:
        """Run one event through the function, in the calling task. `kill` = (I/O point, phase)
        forces an injected kill; otherwise one is drawn with the world's kill rate."""
        task = self.scheduler.current()
        assert task is not None, "functions run inside scheduler tasks"
        spec = self.specs[name]
        invocation = Invocation(next(self._ids), name, self.scheduler.clock.now, request=dict(request or {}))
        self.invocations.append(invocation)
        env = self._acquire(name)
        if env is None:
            invocation.throttled = True
            invocation.ended = self.scheduler.clock.now
            return invocation
        kill = kill or self.next_kill.pop(name, None)
        if kill is None and self.kill_rate and self.rng.random() < self.kill_rate:
            kill = (self.rng.randint(1, 14), self.rng.choice(("before", "after")))
        limit = Limit(self.scheduler.clock.now + spec.timeout, *(kill or (None, "before")))
        context = SimContext(spec, self.scheduler.clock, limit.deadline, f"req-{invocation.id}")
        previous = dict(task.context)
        task.context.update(function=name, invocation=invocation)
        task.limit = limit
        token = current_function.set(name)
        try:
            result = env.module.lambda_handler(event, context)
            if not limit.killed:
                self._answer(invocation, result)
        except Killed:
            pass
        except Exception as exc:
            if not limit.killed:
                invocation.crash = f"{type(exc).__name__}: {exc}"
        finally:
            current_function.reset(token)
            task.limit = None
            task.context.clear()
            task.context.update(previous)
            invocation.ended = self.scheduler.clock.now
            if limit.killed:
                invocation.killed = limit.killed
                env.dead = True  # Lambda replaces an environment whose invocation was stopped
                self.kills += 1
            env.busy = False
        return invocation

    @staticmethod
    def _answer(invocation: Invocation, result: Any) -> None:
        if not isinstance(result, dict) or "statusCode" not in result:
            invocation.status, invocation.body = 200, result  # the reconciler returns its summary
            return
        invocation.status = int(result["statusCode"])
        invocation.headers = {k.lower(): str(v) for k, v in (result.get("headers") or {}).items()}
        invocation.text = result.get("body") or ""
        try:
            invocation.body = json.loads(invocation.text) if invocation.text else None
        except ValueError:
            invocation.body = None


@contextmanager
def captured_metrics(scheduler: Scheduler) -> Iterator[None]:
    """Every metric the code publishes, attributed to the invocation that counted it. Published as
    in Lambda: only when the handler flushes them (Powertools' `log_metrics`, at the end of every
    invocation), or at once for a single metric (`single_metric`: the money alarms); a metric counted
    and never flushed never reaches CloudWatch, so it raises no alarm.
    (Powertools keeps one metric set per process; simulated environments share the process, so
    the set is emptied after each addition and nothing is printed.)"""
    from halum_payments.observability import metrics

    provider = metrics.provider
    original = provider.add_metric

    def invocation() -> Invocation | None:
        task = scheduler.current()
        return task.context.get("invocation") if task else None

    def add_metric(name: str, unit: Any, value: float, *args: Any, **kwargs: Any) -> None:
        original(name, unit, value, *args, **kwargs)  # Powertools still validates it
        provider.clear_metrics()
        counting = invocation()
        if counting is not None:
            counting.unflushed.append((name.strip(), float(value)))

    def flush_metrics(*args: Any, **kwargs: Any) -> None:
        flushing = invocation()
        if flushing is not None:
            flushing.metrics.extend(flushing.unflushed)
            flushing.unflushed.clear()

    # Powertools' single_metric writes its one metric at once (alarm(), count_by()): published then.
    from aws_lambda_powertools.metrics import base

    serialize = base.SingleMetric.serialize_metric_set

    def written_now(self: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        metric_set: dict[str, Any] = serialize(self, *args, **kwargs)
        writing = invocation()
        if writing is not None:
            for definition in metric_set["_aws"]["CloudWatchMetrics"][0]["Metrics"]:
                values = metric_set[definition["Name"]]  # a list of values in EMF
                writing.metrics.extend((definition["Name"], float(v)) for v in values)
        return metric_set

    provider.add_metric = add_metric  # type: ignore[method-assign]
    provider.flush_metrics = flush_metrics  # type: ignore[method-assign]
    base.SingleMetric.serialize_metric_set = written_now  # type: ignore[method-assign]
    base.print = lambda *args, **kwargs: None  # type: ignore[attr-defined]  # its EMF line, not the run's output
    try:
        yield
    finally:
        del provider.add_metric
        del provider.flush_metrics
        base.SingleMetric.serialize_metric_set = serialize  # type: ignore[method-assign]
        del base.print


@contextmanager
def quiet_logs() -> Iterator[None]:
    """The functions' JSON logs are not read by the simulation (metrics and state are) and cost a
    third of a request's time: off for the run."""
    import logging

    from halum_payments.observability import logger

    level = logger.log_level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)
