"""The benchmark's ops, a plug-in of the Lambda runtime emulator (local/lambda_runtime.py).

bench/common.py names this file in RUNTIME_PLUGIN; the runtime loads it before the handler, then
answers these ops besides plain invocations (standard library only; never imports the repository):

  {"op": "cold", "event": E}        the first request of a cold start -> {"first_ms", "status", "cpu_ms",
                                    "VmHWM_kb", "VmRSS_kb"}; with BENCH_PROFILE=P in the environment,
                                    a cProfile of the import and this request, as text, to P
  {"op": "count", "event": E}       -> {"response": R, "calls": [...], "sends": n}: DynamoDB calls counted
                                    through botocore's event hooks (before-call / before-send)
  {"op": "record", "event": E}      -> {"response": R, "tape": [...]}: runs E live and records every
                                    DynamoDB call and Stripe gateway call it makes, with its answer
  {"op": "replay", "event": E, "n": N, "warmup": W} -> {"ms": [...], "status": S, ...}: runs E N times
                                    (after W untimed) with the recorded answers served from memory
  {"op": "profile", "event": E, "n": N, "path": P}  the same, with a cProfile of it, as text, to P
  {"op": "memory"}                  -> {"VmHWM_kb": ..., "VmRSS_kb": ...}
"""

from __future__ import annotations

import copy
import gc
import os
import sys
import time

TYPE_CHECKING = False  # not typing's: every benchmarked process loads this file
if TYPE_CHECKING:
    from typing import Any

PROFILE_TO = os.environ.pop("BENCH_PROFILE", None)
PROFILER: Any = None
if PROFILE_TO:  # loaded right before the handler: the profile covers the import
    import cProfile

    PROFILER = cProfile.Profile()
    PROFILER.enable()


def memory() -> dict[str, int]:
    found = {}
    with open("/proc/self/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in ("VmHWM", "VmRSS"):
                found[f"{key}_kb"] = int(value.split()[0])
    return found


def cpu_ms() -> float:
    """CPU time (user + system) this process has used since it started: unlike wall time, barely
    moved by other work on the machine (nor by the local DynamoDB's own time)."""
    return time.process_time() * 1000


def status_of(response: object) -> object:
    return response.get("statusCode") if isinstance(response, dict) else None


def write_profile(profiler: Any, path: str, top: int) -> None:
    import io
    import pstats

    profiler.dump_stats(path + ".prof")  # for pstats callers/callees
    with open(path, "w") as report:
        for order in ("tottime", "cumulative"):
            stream = io.StringIO()
            pstats.Stats(profiler, stream=stream).sort_stats(order).print_stats(top)
            report.write(f"==== sorted by {order}\n{stream.getvalue()}\n")


def id_blocks() -> list[Any]:
    """The environment's blocks of ids (hi/lo, halum_payments' IdBlocks). A checkout takes the next
    id of a block held in memory; to replay the recorded checkout again and again, each replay must
    find the blocks as the recorded one did (else every tenth reserves a new block, a call the tape
    does not have, and the ids differ from those the recorded answers were given for)."""
    counters = sys.modules.get("halum_payments.repositories.counters")
    kind = getattr(counters, "IdBlocks", None)
    return [o for o in gc.get_objects() if isinstance(o, kind)] if kind else []


# --------------------------------------------------------------------------- record / replay
class Tape:
    """Records the DynamoDB client's and the Stripe gateway's answers, then serves them again.

    In replay, the time spent copying recorded answers (so that the code under test may mutate
    them freely) is accumulated in `excluded` and subtracted from each request's time."""

    def __init__(self) -> None:
        self.mode = "live"
        self.entries: list[tuple[str, object, BaseException | None]] = []
        self.position = 0
        self.excluded = 0.0
        self.wrapped: set[str] = set()
        self.profiler: Any = None
        self.ids: list[tuple[Any, dict[str, range]]] = []  # each block's state when recording

    def wrap(self, owner: object, name: str, label: str, bound_to_class: bool) -> None:
        if label in self.wrapped:
            return
        original = getattr(owner, name)
        tape = self

        def call(*args: object, **kwargs: object) -> object:
            if tape.mode == "record":
                try:
                    result = original(*args, **kwargs)
                except Exception as exc:
                    tape.entries.append((label, None, exc))
                    raise
                tape.entries.append((label, copy.deepcopy(result), None))
                return result
            if tape.mode == "replay":
                if tape.profiler is not None:
                    tape.profiler.disable()  # copying the recorded answers is not the code under test
                try:
                    return serve_recorded()
                finally:
                    if tape.profiler is not None:
                        tape.profiler.enable()
            return original(*args, **kwargs)

        def serve_recorded() -> object:
            started = time.perf_counter()
            if tape.position >= len(tape.entries):
                raise AssertionError(f"replay diverged: an extra call to {label}")
            recorded, result, error = tape.entries[tape.position]
            tape.position += 1
            if recorded != label:
                raise AssertionError(f"replay diverged: {label} called where {recorded} was recorded")
            if error is not None:
                response = getattr(error, "response", None)
                if response is not None and hasattr(error, "operation_name"):
                    clone = type(error)(copy.deepcopy(response), error.operation_name)
                else:
                    clone = copy.copy(error)
                tape.excluded += time.perf_counter() - started
                raise clone
            value = copy.deepcopy(result)
            tape.excluded += time.perf_counter() - started
            return value

        if bound_to_class:

            def method(self_: object, *args: object, **kwargs: object) -> object:
                return call(self_, *args, **kwargs)

            setattr(owner, name, method)
        else:
            setattr(owner, name, call)
        self.wrapped.add(label)

    def install(self) -> int:
        """Wraps what is loaded and not yet wrapped; how many methods that was."""
        before = len(self.wrapped)
        dynamo = sys.modules.get("halum_payments.repositories.dynamo")
        if dynamo is not None:
            client = dynamo.dynamodb_client()
            for name in client.meta.method_to_api_mapping:
                self.wrap(client, name, f"dynamodb.{name}", bound_to_class=False)
        stripe_gateway = sys.modules.get("halum_payments.gateways.stripe_checkout")
        if stripe_gateway is not None:
            cls = stripe_gateway.StripeCheckoutGateway
            for name in ("create_session", "retrieve_session", "expire_session"):
                self.wrap(cls, name, f"stripe.{name}", bound_to_class=True)
        return len(self.wrapped) - before

    def rewind(self) -> None:
        self.position, self.excluded = 0, 0.0
        for blocks, free in self.ids:
            blocks._free = dict(free)


# --------------------------------------------------------------------------- DynamoDB call counting
class Counter:
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.sends = 0
        self.registered = False

    def register(self) -> None:
        if self.registered:
            return
        dynamo = sys.modules.get("halum_payments.repositories.dynamo")
        if dynamo is None:
            return
        events = dynamo.dynamodb_client().meta.events
        events.register("before-call.dynamodb", self._call)
        events.register("before-send.dynamodb", self._send)
        self.registered = True

    def _call(self, model: object = None, **_: object) -> None:
        self.calls.append(getattr(model, "name", "?"))

    def _send(self, **_: object) -> None:
        self.sends += 1


# --------------------------------------------------------------------------- the ops
class Bench:
    def __init__(self, handler: Any, context: Any) -> None:
        self.handler = handler
        self.context = context  # the runtime's LambdaContext class
        self.tape = Tape()
        self.counter = Counter()

    def cold(self, request: dict[str, Any]) -> dict[str, Any]:
        context = self.context()
        started = time.perf_counter()
        response = self.handler(request["event"], context)
        first_ms = (time.perf_counter() - started) * 1000
        if PROFILER is not None:
            PROFILER.disable()
            write_profile(PROFILER, PROFILE_TO or "", 60)
        return {"first_ms": first_ms, "status": status_of(response), "cpu_ms": cpu_ms(), **memory()}

    def count(self, request: dict[str, Any]) -> dict[str, Any]:
        self.counter.register()
        self.counter.calls, self.counter.sends = [], 0
        response = self.handler(request["event"], self.context())
        return {"response": response, "calls": self.counter.calls, "sends": self.counter.sends}

    def record(self, request: dict[str, Any]) -> dict[str, Any]:
        tape = self.tape
        tape.install()
        tape.ids = [(blocks, dict(blocks._free)) for blocks in id_blocks()]
        tape.mode, tape.entries, tape.position = "record", [], 0
        try:
            response = self.handler(request["event"], self.context())
        finally:
            tape.mode = "live"
        if tape.install():  # e.g. Stripe's gateway, imported on first use: its calls went unrecorded
            raise AssertionError("the recorded request loaded what it calls: send it once before recording")
        return {"response": response, "tape": [entry[0] for entry in tape.entries]}

    def replay(self, request: dict[str, Any]) -> dict[str, Any]:
        tape = self.tape
        n = int(request.get("n", 1))
        warmup = int(request.get("warmup", 0))
        profiler = None
        if request["op"] == "profile":
            import cProfile

            profiler = tape.profiler = cProfile.Profile()
        times: list[float] = []
        response = None
        tape.mode = "replay"
        try:
            for index in range(warmup + n):
                event = copy.deepcopy(request["event"])
                context = self.context()
                tape.rewind()
                if profiler is not None:
                    profiler.enable()
                t0 = time.perf_counter()
                response = self.handler(event, context)
                t1 = time.perf_counter()
                if profiler is not None:
                    profiler.disable()
                if tape.position != len(tape.entries):
                    raise AssertionError(f"replay diverged: {tape.position} of {len(tape.entries)} recorded calls made")
                if index >= warmup:
                    times.append((t1 - t0 - tape.excluded) * 1000)
        finally:
            tape.mode = "live"
            tape.profiler = None
        if profiler is not None:
            write_profile(profiler, request["path"], int(request.get("top", 40)))
        return {"ms": times, "status": status_of(response), "gc": gc.get_count(), **memory()}


def ops(handler: Any, context: Any) -> dict[str, Any]:
    bench = Bench(handler, context)
    return {
        "cold": bench.cold,
        "count": bench.count,
        "record": bench.record,
        "replay": bench.replay,
        "profile": bench.replay,
        "memory": lambda _: memory(),
    }
