"""One Lambda execution environment for Python: imports a handler once, then runs invocations.

The one emulation of Lambda's Python runtime, started by path by the local server
(local/workers.py, `python -I -u`), the build tests (tests/build, `python3.13 -S` in a clean
environment) and the benchmark (bench/, the same):

    python local/lambda_runtime.py [LAYER...]

Standard library only, and nothing imported that the function would not have on Lambda: what the
function imports must come from where Lambda would find it. Like Lambda's bootstrap it reads the
handler from `_HANDLER` and its code directory from `LAMBDA_TASK_ROOT`, and lays out `sys.path`
as Lambda does: the task root; the layers as Lambda extracts them into /opt (each LAYER's
python/lib/pythonX.Y/site-packages, then its python/; a LAYER without python/ is a layer's source,
which `make run` serves, and goes on as it is); the runtime's site-packages (the folder
`RUNTIME_SITE_PACKAGES` names, boto3 standing in for the runtime's; else the interpreter's own, a
virtualenv's for `make run`); the standard library. Nothing else: not the repository, not this
script's folder.

Protocol on the original stdin/stdout: frames of a 4-byte big-endian length and UTF-8 JSON.
  runtime -> client, once:    {"type": "ready", "initMs": float} | {"type": "init_error", ...}
  client -> runtime, each:    {"event": ..., "requestId": str, "timeoutMs": int} (both optional)
                              or {"op": NAME, ...}, answered by that op
  runtime -> client, each:    {"type": "result", "result": ...} | {"type": "error", ...} | an op's answer
Errors carry Lambda's `errorType` / `errorMessage`; tracebacks go to stderr (the console, the test's
log), never over the protocol. The client closing stdin ends the runtime.

Ops: "foreign_modules" answers {"foreign": {module: file}}, the modules loaded from outside the
places above (the build tests require none). `RUNTIME_PLUGIN` may name a Python file loaded before
the handler (so it can watch the init, as bench/runtime_plugin.py's profiler does) whose
`ops(handler, LambdaContext)` returns more ops: name -> function of the request to its answer.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import struct
import sys
import time
import uuid

TYPE_CHECKING = False  # not typing's: importing typing would lengthen every measured cold start
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import IO, Any

# Lambda's limit for a synchronous invocation's response payload.
MAX_RESPONSE_BYTES = 6 * 1024 * 1024
RESPONSE_TOO_LARGE = "Function.ResponseSizeTooLarge"
FRAME_HEADER = struct.Struct(">I")
# The emulator's own settings: taken out of the environment before the function sees it.
SITE_PACKAGES_VARIABLE = "RUNTIME_SITE_PACKAGES"
PLUGIN_VARIABLE = "RUNTIME_PLUGIN"


def write_frame(stream: IO[bytes], payload: bytes) -> None:
    stream.write(FRAME_HEADER.pack(len(payload)) + payload)
    stream.flush()


def read_frame(stream: IO[bytes]) -> bytes | None:
    """The next frame, or None at a clean end of stream."""
    header = stream.read(FRAME_HEADER.size)
    if not header:
        return None
    if len(header) != FRAME_HEADER.size:
        raise EOFError("truncated frame header")
    (size,) = FRAME_HEADER.unpack(header)
    payload = stream.read(size)
    if len(payload) != size:
        raise EOFError("truncated frame")
    return payload


class LambdaContext:
    """The context object Lambda's Python runtime passes (the attributes handlers read)."""

    def __init__(self, request_id: str | None = None, timeout_ms: int | None = None) -> None:
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "local")
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        region = os.environ.get("AWS_REGION", "us-east-1")
        self.invoked_function_arn = f"arn:aws:lambda:{region}:000000000000:function:{self.function_name}"
        self.memory_limit_in_mb = int(os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"))
        self.aws_request_id = request_id or str(uuid.uuid4())
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME", f"/aws/lambda/{self.function_name}")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME", "local")
        self.identity = None
        self.client_context = None
        if timeout_ms is None:  # Lambda's default timeout unless the function's is given
            timeout_ms = int(os.environ.get("AWS_LAMBDA_FUNCTION_TIMEOUT", "3")) * 1000
        self._deadline = time.monotonic() + timeout_ms / 1000

    def get_remaining_time_in_millis(self) -> int:
        return max(int((self._deadline - time.monotonic()) * 1000), 0)


def lambda_path(layers: list[str], runtime_site: str | None) -> list[str]:
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    sites, pythons = [], []
    for layer in layers:
        python = os.path.join(layer, "python")
        if os.path.isdir(python):  # a built layer: /opt/python/lib/pythonX.Y/site-packages, /opt/python
            sites.append(os.path.join(python, "lib", version, "site-packages"))
            pythons.append(python)
        else:
            pythons.append(layer)
    # The interpreter's own places (stdlib; its site-packages unless -S) stay, in their order;
    # whatever else Python put first (this script's folder) goes.
    interpreter = [p for p in sys.path if p.startswith((sys.prefix + os.sep, sys.base_prefix + os.sep))]
    return [os.environ["LAMBDA_TASK_ROOT"], *sites, *pythons, *([runtime_site] if runtime_site else []), *interpreter]


def foreign_modules(places: tuple[str, ...], own_files: set[str]) -> dict[str, str]:
    """Loaded modules whose file is outside `places` (the emulator's own files aside)."""
    found = {}
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if path and os.path.realpath(path) not in own_files and not os.path.realpath(path).startswith(places):
            found[name] = path
    return found


def _json_default(value: Any) -> Any:
    # Lambda's runtime marshaller turns Decimal into a number; anything else is a marshal error.
    import decimal

    if isinstance(value, decimal.Decimal):
        return float(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _error(kind: str, exc: BaseException) -> bytes:
    return json.dumps({"type": kind, "errorType": type(exc).__name__, "errorMessage": str(exc)}).encode()


def _log_exception(prefix: str, exc: BaseException) -> None:
    import traceback

    lines = traceback.format_exception(type(exc), exc, exc.__traceback__)
    sys.stderr.write(f"[ERROR] {prefix}{type(exc).__name__}: {exc}\n{''.join(lines)}")
    sys.stderr.flush()


def _load_plugin(path: str | None) -> Any:
    if not path:
        return None
    import importlib.util

    spec = importlib.util.spec_from_file_location("runtime_plugin", path)
    assert spec is not None and spec.loader is not None, path
    plugin = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(plugin)
    return plugin


def _load_handler() -> Any:
    module_name, _, function_name = os.environ["_HANDLER"].rpartition(".")
    module = importlib.import_module(module_name.replace("/", "."))
    handler = getattr(module, function_name)
    if not callable(handler):
        raise TypeError(f"{os.environ['_HANDLER']} is not callable")
    return handler


def _invoke(handler: Any, request: dict[str, Any]) -> bytes:
    timeout_ms = request.get("timeoutMs")
    context = LambdaContext(request.get("requestId"), None if timeout_ms is None else int(timeout_ms))
    try:
        result = handler(request["event"], context)
        body = json.dumps(result, default=_json_default).encode()
    except Exception as exc:  # noqa: BLE001 - any handler failure is the function's error, reported as Lambda does
        _log_exception(f"RequestId: {context.aws_request_id} ", exc)
        return _error("error", exc)
    if len(body) > MAX_RESPONSE_BYTES:
        message = (
            f"Response payload size ({len(body)} bytes) exceeded maximum allowed payload size"
            f" ({MAX_RESPONSE_BYTES} bytes)."
        )
        sys.stderr.write(f"[ERROR] {RESPONSE_TOO_LARGE}: {message}\n")
        return json.dumps({"type": "error", "errorType": RESPONSE_TOO_LARGE, "errorMessage": message}).encode()
    # Spliced rather than re-encoded: the result can be megabytes.
    return b'{"type":"result","result":' + body + b"}"


def _answer_op(ops: dict[str, Callable[[dict[str, Any]], Any]], request: dict[str, Any]) -> bytes:
    try:
        return json.dumps(ops[request["op"]](request), default=_json_default).encode()
    except Exception as exc:  # noqa: BLE001 - reported to the client, which asked
        _log_exception(f"op {request['op']}: ", exc)
        return _error("error", exc)


def main(layers: list[str]) -> int:
    # Ctrl-C reaches the whole process group; the client decides when the runtime stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Keep private copies of the protocol pipes, then point fds 0/1 away from them so neither the
    # handler's prints and logs (even from C code or subprocesses) nor a stray stdin read can
    # corrupt the protocol: output goes to stderr, as Lambda sends it to CloudWatch.
    protocol_in = os.fdopen(os.dup(0), "rb")
    protocol_out = os.fdopen(os.dup(1), "wb")
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    sys.path[:] = lambda_path(layers, os.environ.pop(SITE_PACKAGES_VARIABLE, None))
    places = tuple(os.path.realpath(p) + os.sep for p in sys.path)  # before the function may change it
    plugin_path = os.environ.pop(PLUGIN_VARIABLE, None)
    plugin = _load_plugin(plugin_path)
    started = time.perf_counter()
    try:
        handler = _load_handler()
    except BaseException as exc:  # noqa: BLE001 - SystemExit at import is an init failure too
        _log_exception("Init failed: ", exc)
        write_frame(protocol_out, _error("init_error", exc))
        return 1
    ready = {"type": "ready", "initMs": round((time.perf_counter() - started) * 1000, 1)}
    write_frame(protocol_out, json.dumps(ready).encode())

    own_files = {os.path.realpath(p) for p in (__file__, plugin_path) if p}
    ops = {"foreign_modules": lambda _: {"foreign": foreign_modules(places, own_files)}}
    if plugin is not None:
        ops.update(plugin.ops(handler, LambdaContext))
    while (frame := read_frame(protocol_in)) is not None:
        request = json.loads(frame)
        write_frame(protocol_out, _invoke(handler, request) if "op" not in request else _answer_op(ops, request))
    return 0


class RuntimeProcess:
    """A client's end (the build tests' and the benchmark's; the local server polls its own):
    `command` is the interpreter and its options, `env` the function's whole environment."""

    def __init__(self, command: list[str], layers: list[str], env: dict[str, str], log: IO[str]) -> None:
        import subprocess

        self.log = log
        self._buffer = bytearray()
        self.started = time.perf_counter()
        self.process = subprocess.Popen(
            [*command, __file__, *layers],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            env=env,
            cwd=env["LAMBDA_TASK_ROOT"],
        )

    def send(self, message: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        write_frame(self.process.stdin, json.dumps(message).encode())

    def receive(self, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        (size,) = FRAME_HEADER.unpack(self._read(FRAME_HEADER.size, deadline))
        answer: dict[str, Any] = json.loads(self._read(size, deadline))
        return answer

    def _read(self, size: int, deadline: float) -> bytes:
        # Our own buffer, not a buffered reader's: select() cannot see frames already read ahead.
        import select

        assert self.process.stdout is not None
        fd = self.process.stdout.fileno()
        while len(self._buffer) < size:
            ready, _, _ = select.select([fd], [], [], max(deadline - time.monotonic(), 0))
            chunk = os.read(fd, 65536) if ready else b""
            if not chunk:
                self.process.kill()
                raise RuntimeError(f"no answer from the runtime (exit code {self.process.poll()}):\n{self.output()}")
            self._buffer += chunk
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    def request(self, message: dict[str, Any], timeout: float) -> dict[str, Any]:
        self.send(message)
        return self.receive(timeout)

    def close(self, timeout: float = 30) -> int:
        """End of input (the runtime returns), then its exit status."""
        import subprocess

        if self.process.stdin is not None and not self.process.stdin.closed:
            self.process.stdin.close()
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()
        finally:
            if self.process.stdout is not None:
                self.process.stdout.close()

    def output(self, tail: int | None = 4000) -> str:
        """What the function wrote (stdout and stderr), the last `tail` characters."""
        self.log.flush()
        self.log.seek(0)
        text = self.log.read()
        return text[-tail:] if tail else text


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
