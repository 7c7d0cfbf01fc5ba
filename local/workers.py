"""Execution environments: per-function pools of `lambda_runtime.py` processes, as Lambda keeps them.

A worker imports its handler once (cold start) and serves one invocation at a time. A pool reuses
idle workers, starts another when all are busy (up to its concurrency), else waits. Like Lambda, a
worker that timed out, crashed or failed to initialise is discarded; so is one whose handler
raised, so no half-changed module state leaks into the next request.
"""

from __future__ import annotations

import contextlib
import enum
import json
import logging
import os
import select
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from local.console import console
from local.lambda_runtime import FRAME_HEADER, RESPONSE_TOO_LARGE, write_frame
from local.template import FunctionSpec

log = logging.getLogger("local")

WORKER_SCRIPT = Path(__file__).with_name("lambda_runtime.py")
# Lambda's limit for a synchronous invocation's request payload (the whole event).
MAX_REQUEST_BYTES = 6 * 1024 * 1024
# Lambda allows 10 s of init; a workstation may start several environments at once on few cores.
INIT_TIMEOUT_SECONDS = 30.0
STOP_GRACE_SECONDS = 2.0


class Outcome(enum.Enum):
    OK = "ok"
    FUNCTION_ERROR = "function error"  # the handler raised, init failed, or the runtime died
    TIMEOUT = "timeout"
    RESPONSE_TOO_LARGE = "response too large"
    REQUEST_TOO_LARGE = "request too large"
    UNAVAILABLE = "unavailable"  # the server is stopping


@dataclass(frozen=True)
class Invocation:
    outcome: Outcome
    result: Any = None
    error: str | None = None
    init_ms: float | None = None  # set when this invocation paid for a cold start


class WorkerError(Exception):
    pass


class WorkerTimeout(WorkerError):
    pass


class InitFailed(WorkerError):
    pass


class Worker:
    """One worker process and its end of the protocol (see lambda_runtime.py)."""

    def __init__(self, spec: FunctionSpec, env: Mapping[str, str], layer_dirs: Sequence[Path]) -> None:
        self.spec = spec
        # The function's logs and tracebacks go to the server's console through a pipe the server
        # always drains (local/console.py): a console nobody reads must not stop an invocation.
        self.process = subprocess.Popen(
            [sys.executable, "-I", "-u", str(WORKER_SCRIPT), *map(str, layer_dirs)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=dict(env),
            cwd=spec.code_uri,
            close_fds=True,
        )
        assert self.process.stdin is not None and self.process.stdout is not None
        assert self.process.stderr is not None
        console().forward(self.process.stderr)
        self._stdin = self.process.stdin
        self._stdout_fd = self.process.stdout.fileno()
        self._poller = select.poll()
        self._poller.register(self._stdout_fd, select.POLLIN)
        self._buffer = bytearray()
        self._ready = False

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def ensure_ready(self, deadline: float) -> float | None:
        """Wait for the cold start to finish; its duration in ms if it had not been seen yet."""
        if self._ready:
            return None
        reply = self._receive(deadline)
        if reply.get("type") != "ready":
            raise InitFailed(f"{reply.get('errorType')}: {reply.get('errorMessage')}")
        self._ready = True
        return float(reply.get("initMs", 0.0))

    def call(self, request: bytes, deadline: float) -> dict[str, Any]:
        write_frame(self._stdin, request)
        return self._receive(deadline)

    def _receive(self, deadline: float) -> dict[str, Any]:
        (size,) = FRAME_HEADER.unpack(self._read_exact(FRAME_HEADER.size, deadline))
        reply = json.loads(self._read_exact(size, deadline))
        if not isinstance(reply, dict):
            raise WorkerError("malformed reply from worker")
        return reply

    def _read_exact(self, size: int, deadline: float) -> bytes:
        while len(self._buffer) < size:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self._poller.poll(remaining * 1000):
                raise WorkerTimeout
            chunk = os.read(self._stdout_fd, max(size - len(self._buffer), 65536))
            if not chunk:
                raise WorkerError(f"runtime exited with status {self.process.wait()}")
            self._buffer += chunk
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    def terminate(self) -> None:
        if self.alive:
            self.process.terminate()

    def reap(self, timeout: float = STOP_GRACE_SECONDS) -> None:
        """Wait for the process to end (killing it after `timeout`) and close our pipe ends."""
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):  # stderr: closed by its forwarder at EOF
            # A broken pipe on the final flush is expected: the process is gone.
            with contextlib.suppress(OSError):
                if stream is not None:
                    stream.close()

    def discard(self, *, graceful: bool) -> None:
        if graceful:
            with contextlib.suppress(OSError):
                self._stdin.close()  # end of input: the worker's loop returns and it exits
        elif self.alive:
            self.process.kill()  # timed out or broken: Lambda does not wait for it either
        self.reap()


class FunctionPool:
    """The execution environments of one function."""

    def __init__(
        self, spec: FunctionSpec, env: Mapping[str, str], layer_dirs: Sequence[Path], max_workers: int = 4
    ) -> None:
        if max_workers < 1:
            raise ValueError("max_workers must be at least 1")
        self.spec = spec
        self.env = dict(env)
        self.layer_dirs = list(layer_dirs)
        self.max_workers = max_workers
        self._cond = threading.Condition()
        self._idle: list[Worker] = []
        self._all: set[Worker] = set()
        self._starting = 0  # slots reserved by threads that are spawning a worker
        self._closed = False

    @property
    def size(self) -> int:
        with self._cond:
            return len(self._all)

    def warm(self) -> None:
        """Start one environment if none exists; its init runs while requests are served."""
        with self._cond:
            if self._closed or self._all or self._starting:
                return
            self._starting += 1
        try:
            worker = self._spawn()
        except (WorkerError, OSError) as exc:
            log.error("%s: cannot start a worker: %s", self.spec.logical_id, exc)
            return
        finally:
            with self._cond:
                self._starting -= 1
        self._release(worker, healthy=True)

    def invoke(self, event: Mapping[str, Any]) -> Invocation:
        name = self.spec.logical_id
        event_json = json.dumps(event).encode()
        if len(event_json) > MAX_REQUEST_BYTES:
            return Invocation(Outcome.REQUEST_TOO_LARGE, error=f"event of {len(event_json)} bytes")
        request_id = str(uuid.uuid4())
        header = json.dumps({"requestId": request_id, "timeoutMs": self.spec.timeout * 1000})
        request = header[:-1].encode() + b',"event":' + event_json + b"}"  # no second copy of the event
        try:
            worker = self._acquire()
        except WorkerError as exc:
            return Invocation(Outcome.UNAVAILABLE, error=str(exc))
        except OSError as exc:
            log.error("%s: cannot start a worker: %s", name, exc)
            return Invocation(Outcome.FUNCTION_ERROR, error=str(exc))
        healthy = False
        init_ms: float | None = None
        phase = "init"
        try:
            init_ms = worker.ensure_ready(time.monotonic() + INIT_TIMEOUT_SECONDS)
            phase = "invocation"
            reply = worker.call(request, time.monotonic() + self.spec.timeout)
        except InitFailed as exc:
            log.error("%s: init failed: %s", name, exc)
            return Invocation(Outcome.FUNCTION_ERROR, error=f"init failed: {exc}")
        except WorkerTimeout:
            limit = INIT_TIMEOUT_SECONDS if phase == "init" else self.spec.timeout
            message = f"RequestId: {request_id} Task timed out after {limit:.2f} seconds ({phase})"
            log.error("%s: %s", name, message)
            return Invocation(Outcome.TIMEOUT, error=message, init_ms=init_ms)
        except (WorkerError, OSError, ValueError) as exc:
            log.error("%s: runtime failure during %s: %s", name, phase, exc)
            return Invocation(Outcome.FUNCTION_ERROR, error=str(exc), init_ms=init_ms)
        else:
            if reply.get("type") == "result":
                healthy = True
                return Invocation(Outcome.OK, reply.get("result"), init_ms=init_ms)
            error = f"{reply.get('errorType')}: {reply.get('errorMessage')}"
            if reply.get("errorType") == RESPONSE_TOO_LARGE:
                # The runtime refused the payload; the handler itself completed normally.
                healthy = True
                return Invocation(Outcome.RESPONSE_TOO_LARGE, error=error, init_ms=init_ms)
            return Invocation(Outcome.FUNCTION_ERROR, error=error, init_ms=init_ms)
        finally:
            self._release(worker, healthy)

    def close(self) -> None:
        """Stop every worker, busy or idle; later invocations answer UNAVAILABLE."""
        with self._cond:
            self._closed = True
            workers = list(self._all)
            self._idle.clear()
            self._cond.notify_all()
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.reap()

    # ------------------------------------------------------------------ internals
    def _acquire(self) -> Worker:
        with self._cond:
            while True:
                if self._closed:
                    raise WorkerError("server is stopping")
                while self._idle:
                    worker = self._idle.pop()  # most recently used first: the warmest
                    if worker.alive:
                        return worker
                    self._all.discard(worker)  # exited while idle (e.g. a failed warm-up init)
                    worker.reap(0)
                if len(self._all) + self._starting < self.max_workers:
                    self._starting += 1
                    break
                self._cond.wait()
        try:
            worker = self._spawn()
        finally:
            with self._cond:
                self._starting -= 1
                self._cond.notify()
        return worker

    def _spawn(self) -> Worker:
        worker = Worker(self.spec, self.env, self.layer_dirs)
        with self._cond:
            self._all.add(worker)
            closed = self._closed
        if closed:  # close() ran while we were spawning
            worker.discard(graceful=False)
            raise WorkerError("server is stopping")
        return worker

    def _release(self, worker: Worker, healthy: bool) -> None:
        with self._cond:
            keep = healthy and not self._closed and worker.alive
            if keep:
                self._idle.append(worker)
            else:
                self._all.discard(worker)
            self._cond.notify()
        if not keep:
            worker.discard(graceful=healthy)
