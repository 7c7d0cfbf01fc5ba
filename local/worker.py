"""One Lambda execution environment: imports a handler once, then runs invocations one at a time.

Run by path (`python -I -u local/worker.py LAYER_DIR...`) so that, as on Lambda, the function's
`sys.path` is its code directory (`LAMBDA_TASK_ROOT`) and the layer directories, then the
interpreter's own site-packages (standing in for the layer's dependencies and the runtime's
boto3), and never the repository root. Like Lambda's bootstrap it reads the handler from
`_HANDLER`. Standard library only: it must import nothing the function would not have.

Protocol on the original stdin/stdout: frames of a 4-byte big-endian length and UTF-8 JSON.
  worker -> server, once:     {"type": "ready", "initMs": float} | {"type": "init_error", ...}
  server -> worker, per call: {"event": ..., "requestId": str, "timeoutMs": int}
  worker -> server, per call: {"type": "result", "result": ...} | {"type": "error", ...}
Errors carry Lambda's `errorType` / `errorMessage`; tracebacks go to stderr (the console),
never over the protocol. The local server imports this module for the framing.
"""

from __future__ import annotations

import decimal
import importlib
import json
import os
import signal
import struct
import sys
import time
import traceback
import uuid
from typing import IO, Any

# Lambda's limit for a synchronous invocation's response payload.
MAX_RESPONSE_BYTES = 6 * 1024 * 1024
RESPONSE_TOO_LARGE = "Function.ResponseSizeTooLarge"
FRAME_HEADER = struct.Struct(">I")


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

    def __init__(self, request_id: str, timeout_ms: int) -> None:
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "local")
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        region = os.environ.get("AWS_REGION", "us-east-1")
        self.invoked_function_arn = f"arn:aws:lambda:{region}:000000000000:function:{self.function_name}"
        self.memory_limit_in_mb = int(os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"))
        self.aws_request_id = request_id
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME", f"/aws/lambda/{self.function_name}")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME", "local")
        self.identity = None
        self.client_context = None
        self._deadline = time.monotonic() + timeout_ms / 1000

    def get_remaining_time_in_millis(self) -> int:
        return max(int((self._deadline - time.monotonic()) * 1000), 0)


def _json_default(value: Any) -> Any:
    # Lambda's runtime marshaller turns Decimal into a number; anything else is a marshal error.
    if isinstance(value, decimal.Decimal):
        return float(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _error(kind: str, exc: BaseException) -> bytes:
    return json.dumps({"type": kind, "errorType": type(exc).__name__, "errorMessage": str(exc)}).encode()


def _log_exception(prefix: str, exc: BaseException) -> None:
    lines = traceback.format_exception(type(exc), exc, exc.__traceback__)
    sys.stderr.write(f"[ERROR] {prefix}{type(exc).__name__}: {exc}\n{''.join(lines)}")
    sys.stderr.flush()


def _load_handler() -> Any:
    module_name, _, function_name = os.environ["_HANDLER"].rpartition(".")
    module = importlib.import_module(module_name.replace("/", "."))
    handler = getattr(module, function_name)
    if not callable(handler):
        raise TypeError(f"{os.environ['_HANDLER']} is not callable")
    return handler


def _invoke(handler: Any, request: dict[str, Any]) -> bytes:
    context = LambdaContext(str(request.get("requestId") or uuid.uuid4()), int(request["timeoutMs"]))
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


def main(layer_dirs: list[str]) -> int:
    # Ctrl-C reaches the whole process group; the server decides when workers stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Keep private copies of the protocol pipes, then point fds 0/1 away from them so neither the
    # handler's prints and logs (even from C code or subprocesses) nor a stray stdin read can
    # corrupt the protocol: output goes to stderr, i.e. the server's console.
    protocol_in = os.fdopen(os.dup(0), "rb")
    protocol_out = os.fdopen(os.dup(1), "wb")
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    task_root = os.environ["LAMBDA_TASK_ROOT"]
    sys.path[:0] = [task_root, *layer_dirs]
    started = time.perf_counter()
    try:
        handler = _load_handler()
    except BaseException as exc:  # noqa: BLE001 - SystemExit at import is an init failure too
        _log_exception("Init failed: ", exc)
        write_frame(protocol_out, _error("init_error", exc))
        return 1
    ready = {"type": "ready", "initMs": round((time.perf_counter() - started) * 1000, 1)}
    write_frame(protocol_out, json.dumps(ready).encode())

    while (frame := read_frame(protocol_in)) is not None:  # the server closing stdin ends the worker
        write_frame(protocol_out, _invoke(handler, json.loads(frame)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
