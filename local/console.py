"""The local server's console: every log line of the server and of the functions' workers goes
through one bounded queue to one writer thread, so nothing that serves a request ever waits on it.

Why: logs used to be written straight to stderr, by the HTTP front's request threads (holding the
logging lock) and by every worker process (inherited stderr). When whoever reads the console stops
reading for a while (a pipe whose reader is busy, a paused terminal), the 64 KB pipe buffer fills
and every one of those writes blocks: the whole stack froze, and invocations ran into their timeouts
(503 after the function's 10-15 s) until the reader drained the pipe. Now a full console drops lines
(and says how many once it moves again) instead of stopping the API.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import sys
import threading
from typing import IO

MAX_PENDING_LINES = 20_000


class Console:
    def __init__(self, stream: IO[str] | None = None, max_pending: int = MAX_PENDING_LINES) -> None:
        self._stream = stream
        self._queue: queue.Queue[str | threading.Event] = queue.Queue(max_pending)
        self._dropped = 0
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._write_forever, name="console", daemon=True)
        self._thread.start()

    @property
    def stream(self) -> IO[str]:
        return self._stream or sys.stderr  # looked up late: tests swap sys.stderr

    def write(self, line: str) -> None:
        """Queue one line (newline added if missing); never blocks: drops it when the console is stuck."""
        try:
            self._queue.put_nowait(line if line.endswith("\n") else line + "\n")
        except queue.Full:
            with self._lock:
                self._dropped += 1

    def forward(self, pipe: IO[bytes]) -> threading.Thread:
        """Copy a worker's stderr into the console line by line until the worker closes it."""

        def pump() -> None:
            with contextlib.suppress(OSError, ValueError), pipe:
                for raw in pipe:
                    self.write(raw.decode("utf-8", "replace"))

        thread = threading.Thread(target=pump, name="worker-stderr", daemon=True)
        thread.start()
        return thread

    def flush(self, timeout: float = 2.0) -> None:
        """Wait (a little) for what is queued to be written: at shutdown."""
        written = threading.Event()
        try:
            self._queue.put(written, timeout=timeout)
        except queue.Full:
            return
        written.wait(timeout)

    def _write_forever(self) -> None:
        while True:
            line = self._queue.get()
            if isinstance(line, threading.Event):
                line.set()  # everything queued before it is written
                continue
            with self._lock:
                dropped, self._dropped = self._dropped, 0
            try:
                if dropped:
                    self.stream.write(f"[local] {dropped} log lines dropped: the console was not being read\n")
                self.stream.write(line)
                self.stream.flush()
            except (OSError, ValueError):
                pass  # a closed console: the server keeps serving


class ConsoleHandler(logging.Handler):
    """A logging handler that formats in the caller's thread and queues the line."""

    def __init__(self, console: Console) -> None:
        super().__init__()
        self.console = console

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.console.write(self.format(record))
        except Exception:  # noqa: BLE001 - logging must never fail a request
            self.handleError(record)


_console: Console | None = None


def console() -> Console:
    """The process's console (created on first use)."""
    global _console  # noqa: PLW0603 - one console per process
    if _console is None:
        _console = Console()
    return _console
