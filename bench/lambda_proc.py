"""The benchmark's Lambda-like process (standard library only; never imports the repository).

Started by bench/run.py as `python3.13 -S bench/lambda_proc.py` with a clean environment, laid out
like tests/build/lambda_runner.py (and like Lambda): sys.path is the function's build folder
(/var/task), its built layers (/opt/python...), the runtime's boto3, then the standard library;
PYTHONDONTWRITEBYTECODE=1. BENCH_MODE says what it does:

  floor  import boto3 and create `boto3.client("dynamodb")`, reply, exit (the floor F)
  cold   import the handler (the template's Handler), serve the first request read from stdin,
         reply with the timings, exit
  serve  import the handler, then answer commands, one JSON object per stdin line:
           {"op": "invoke", "event": E}              -> {"response": R}
           {"op": "count", "event": E}               -> {"response": R, "calls": [...], "sends": n}
                 DynamoDB calls counted through botocore's event hooks (before-call / before-send)
           {"op": "record", "event": E}              -> {"response": R, "tape": [...]}
                 runs E live and records every DynamoDB call and Stripe gateway call it makes
           {"op": "replay", "event": E, "n": N, "warmup": W} -> {"ms": [...], "response": R}
                 runs E N times (after W untimed) with the recorded answers served from memory
           {"op": "profile", "event": E, "n": N, "path": P} -> cProfile of N replays, as text, to P
           {"op": "memory"}                          -> {"VmHWM_kb": ..., "VmRSS_kb": ...}

Replies go to a private copy of stdout; fd 1 (the handler's logs) goes to stderr, as on Lambda
where it goes to CloudWatch.
"""

from __future__ import annotations

import copy
import gc
import importlib
import json
import os
import sys
import time
import uuid

START = time.perf_counter()
TASK = os.environ["LAMBDA_TASK_ROOT"]
LAYERS = [p for p in os.environ.get("RUNNER_LAYERS", "").split(os.pathsep) if p]
RUNTIME = os.environ["RUNNER_RUNTIME_SITE"]
HANDLER = os.environ.get("_HANDLER", "app.lambda_handler")
MODE = os.environ["BENCH_MODE"]
VERSION = f"python{sys.version_info.major}.{sys.version_info.minor}"

STDLIB = [p for p in sys.path if p.startswith(sys.base_prefix) and "site-packages" not in p]
LAYER_PATHS = [os.path.join(layer, "python", "lib", VERSION, "site-packages") for layer in LAYERS]
LAYER_PATHS += [os.path.join(layer, "python") for layer in LAYERS]
sys.path[:] = [TASK, *LAYER_PATHS, RUNTIME, *STDLIB]

channel = os.fdopen(os.dup(1), "w", buffering=1)
os.dup2(2, 1)


def reply(message: dict) -> None:
    channel.write(json.dumps(message, default=str) + "\n")
    channel.flush()


class Context:
    def __init__(self) -> None:
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "bench")
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = int(os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1024"))
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:000000000000:function:{self.function_name}"
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{self.function_name}"
        self.log_stream_name = "bench"
        self._deadline = time.monotonic() + float(os.environ.get("RUNNER_TIMEOUT", "30"))

    def get_remaining_time_in_millis(self) -> int:
        return max(int((self._deadline - time.monotonic()) * 1000), 0)


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
        self.profiler: object = None

    def wrap(self, owner: object, name: str, label: str, bound_to_class: bool) -> None:
        if label in self.wrapped:
            return
        original = getattr(owner, name)
        tape = self

        def live(args: tuple, kwargs: dict) -> object:
            return original(*args, **kwargs)

        def call(*args: object, **kwargs: object) -> object:
            if tape.mode == "record":
                try:
                    result = live(args, kwargs)
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
            return live(args, kwargs)

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

    def install(self) -> None:
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


# --------------------------------------------------------------------------- modes
def floor() -> int:
    import boto3

    boto3.client("dynamodb")
    reply({"init_ms": (time.perf_counter() - START) * 1000, "cpu_ms": cpu_ms(), **memory()})
    return 0


def load_handler() -> object:
    module_name, _, attribute = HANDLER.rpartition(".")
    return getattr(importlib.import_module(module_name), attribute)


def cold() -> int:
    profile_to = os.environ.get("BENCH_PROFILE")  # cProfile of the import and the first request, as text
    profiler = None
    if profile_to:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    started = time.perf_counter()
    handler = load_handler()
    imported = time.perf_counter()
    event = json.loads(sys.stdin.readline())["event"]
    context = Context()
    invoked = time.perf_counter()
    response = handler(event, context)
    done = time.perf_counter()
    if profiler is not None:
        profiler.disable()
        write_profile(profiler, profile_to, 60)
    reply(
        {
            "boot_ms": (started - START) * 1000,
            "init_ms": (imported - started) * 1000,
            "first_ms": (done - invoked) * 1000,
            "status": status_of(response),
            "cpu_ms": cpu_ms(),
            **memory(),
        }
    )
    return 0


def serve() -> int:
    started = time.perf_counter()
    handler = load_handler()
    reply({"init_ms": (time.perf_counter() - started) * 1000, **memory()})
    tape = Tape()
    counter = Counter()
    for line in sys.stdin:
        command = json.loads(line)
        op = command["op"]
        try:
            if op == "invoke":
                reply({"response": handler(command["event"], Context())})
            elif op == "count":
                counter.register()
                counter.calls, counter.sends = [], 0
                response = handler(command["event"], Context())
                reply({"response": response, "calls": counter.calls, "sends": counter.sends})
            elif op == "record":
                tape.install()
                tape.mode, tape.entries, tape.position = "record", [], 0
                try:
                    response = handler(command["event"], Context())
                finally:
                    tape.mode = "live"
                before = set(tape.wrapped)
                tape.install()  # a gateway imported during the request (lazily) must be stubbed too
                late = sorted(tape.wrapped - before)
                reply({"response": response, "tape": [entry[0] for entry in tape.entries], "late": late})
            elif op in ("replay", "profile"):
                reply(replay(handler, tape, command))
            elif op == "memory":
                reply(memory())
            else:
                reply({"error": f"unknown op {op}"})
        except BaseException:
            import traceback

            tape.mode = "live"
            reply({"error": traceback.format_exc()})
    return 0


def write_profile(profiler: object, path: str, top: int) -> None:
    import io
    import pstats

    profiler.dump_stats(path + ".prof")  # type: ignore[attr-defined]  # for pstats callers/callees
    with open(path, "w") as report:
        for order in ("tottime", "cumulative"):
            stream = io.StringIO()
            pstats.Stats(profiler, stream=stream).sort_stats(order).print_stats(top)
            report.write(f"==== sorted by {order}\n{stream.getvalue()}\n")


def replay(handler: object, tape: Tape, command: dict) -> dict:
    event = command["event"]
    n = int(command.get("n", 1))
    warmup = int(command.get("warmup", 0))
    profiler = None
    if command["op"] == "profile":
        import cProfile

        profiler = cProfile.Profile()
        tape.profiler = profiler
    times: list[float] = []
    response = None
    tape.mode = "replay"
    try:
        for index in range(warmup + n):
            request = copy.deepcopy(event)
            context = Context()
            tape.position, tape.excluded = 0, 0.0
            if profiler is not None:
                profiler.enable()
            t0 = time.perf_counter()
            response = handler(request, context)
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
        write_profile(profiler, command["path"], int(command.get("top", 40)))
    return {"ms": times, "status": status_of(response), "gc": gc.get_count(), **memory()}


if __name__ == "__main__":
    sys.exit({"floor": floor, "cold": cold, "serve": serve}[MODE]())
