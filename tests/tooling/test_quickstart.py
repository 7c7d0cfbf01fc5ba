"""The README's quickstart, run as a newcomer runs it: its first block (`make run`) started on a free
port, its second block pasted into bash (`-e -o pipefail`: a command that fails stops it) in the
repository's folder, then both again after restarting the server, which is how the README says the
demo data is reset.

The shell is a developer's: only PATH, HOME, LANG, TMPDIR (and pyenv's variables) from this session,
PORT as the README says to export it, no make variables. `curl` is the real one behind a thin wrapper that reports each
exchange's status and URL on stderr (`-w '%{stderr}...'`), so the answers can be checked without
changing the commands: the API answers 200 (201 for cash on delivery), every request goes to the
port the server was started on, and the answers say what the comments promise.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from support import ROOT

pytestmark = pytest.mark.e2e

SECTION = "## Quickstart"
BLOCK = re.compile(r"^```sh\n(.*?)^```$", re.MULTILINE | re.DOTALL)
CALL = re.compile(r"^quickstart-curl (\d{3}) (\S+)$", re.MULTILINE)
START_TIMEOUT = 180.0  # `make run` checks its venv first (installed already by `make test`)
RUN_TIMEOUT = 240.0
API_ANSWERS = {  # path under /orders/api -> the status the README's example must get
    "/payments/": 200,
    "/payments/1/": 200,
    "/create-stripe-order/": 200,
    "/create-cod/": 201,
    "/payment-webhook/": 200,
}


def quickstart() -> tuple[str, str]:
    """The section's two shell blocks: the server's, then the one pasted into a second terminal."""
    text = (ROOT / "README.md").read_text()
    start = text.index(SECTION + "\n")
    end = text.index("\n## ", start + len(SECTION))
    blocks = BLOCK.findall(text[start:end])
    assert len(blocks) == 2, f"README, {SECTION!r}: expected the server's block and the commands' block"
    return blocks[0], blocks[1]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def shell_environment(port: int, **extra: str) -> dict[str, str]:
    shell = ("PATH", "HOME", "LANG", "TMPDIR", "PYENV_ROOT", "PYENV_VERSION")  # python3 may be pyenv's
    env = {name: os.environ[name] for name in shell if name in os.environ}
    return {**env, "PORT": str(port), **extra}


class Server:
    """The README's first block, running in a process group of its own (stopped as Ctrl-C stops it)."""

    def __init__(self, block: str, port: int, log: Path) -> None:
        self.log = log
        self.port = port
        # Another `make run` (a developer's, another worktree's) may hold the sandbox's default port.
        env = shell_environment(port, STRIPE_SANDBOX_PORT="0")
        with log.open("w") as out:
            self.process = subprocess.Popen(
                ["bash", "-e", "-c", block],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.sandbox = self._wait_until_ready()

    def _wait_until_ready(self) -> str:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            text = self.log.read_text()
            ready = re.search(r"^Ready on (http://\S+)$", text, re.MULTILINE)
            if ready:
                assert ready.group(1) == f"http://127.0.0.1:{self.port}", f"PORT={self.port} not followed:\n{text}"
                sandbox = re.search(r"Stripe:\s+sandbox .* at (http://\S+),", text)
                assert sandbox, text
                return urlsplit(sandbox.group(1)).netloc
            if self.process.poll() is not None:
                break
            time.sleep(0.2)
        self.stop()
        pytest.fail(f"`make run` did not become ready on port {self.port}:\n{self.log.read_text()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


@pytest.fixture
def curl_wrapper(tmp_path: Path) -> Path:
    """A folder whose `curl` is the real curl, reporting each exchange's status and URL on stderr."""
    real = shutil.which("curl")
    assert real, "the quickstart needs curl"
    folder = tmp_path / "bin"
    folder.mkdir()
    wrapper = folder / "curl"
    report = "%{stderr}quickstart-curl %{http_code} %{url_effective}\\n"
    wrapper.write_text(f"#!/bin/sh\nexec {real} -w '{report}' \"$@\"\n")
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IEXEC)
    return folder


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[list[Server]]:
    started: list[Server] = []
    yield started
    for server in started:
        server.stop()


def paste(commands: str, port: int, curl_wrapper: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "quickstart.sh"
    script.write_text(commands)
    env = shell_environment(port)
    env["PATH"] = f"{curl_wrapper}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.run(
        ["bash", "-e", "-o", "pipefail", str(script)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )


def check_answers(result: subprocess.CompletedProcess[str], server: Server) -> None:
    assert result.returncode == 0, f"a command failed (exit {result.returncode}):\n{result.stdout}\n{result.stderr}"
    calls = [(int(code), urlsplit(url)) for code, url in CALL.findall(result.stderr)]
    api = f"127.0.0.1:{server.port}"
    assert {url.netloc for _, url in calls} <= {api, server.sandbox}, f"a request missed PORT={server.port}: {calls}"
    seen = {}
    for code, url in calls:
        if url.netloc == api:
            path = url.path.removeprefix("/orders/api")
            assert code == API_ANSWERS.get(path, code) and code < 300, f"{url.geturl()} answered {code}"
            seen[path] = code
        else:  # the sandbox's Pay button: it delivers the signed event, then redirects
            assert url.path.endswith("/pay") and code == 303, f"{url.geturl()} answered {code}"
    assert seen.keys() == API_ANSWERS.keys(), f"the quickstart should exercise {sorted(API_ANSWERS)}: {calls}"
    out = result.stdout
    assert '"count":2' in out, out  # the spec's two example payments, as the demo seed serves them
    assert re.search(r'"method":"stripe","status":"completed"', out), out  # paid through the sandbox
    assert '"payment_method":"COD"' in out, out
    assert '{"status":"success","message":"Payment confirmed"}' in out, out
    assert '"finished": true' in out, out  # make reconcile's summary


def test_the_quickstart_works_pasted_in_order_and_again_after_a_restart(servers, curl_wrapper, tmp_path):
    server_block, commands = quickstart()
    port = free_port()
    for attempt in (1, 2):  # the second run starts from the data a restart brings back
        server = Server(server_block, port, tmp_path / f"make-run-{attempt}.log")
        servers.append(server)
        check_answers(paste(commands, port, curl_wrapper, tmp_path), server)
        server.stop()  # as Ctrl-C stops it: make passes the interrupt on, and ends by it
        log = server.log.read_text()
        assert server.process.returncode in (0, -signal.SIGINT, 128 + signal.SIGINT), log
        assert "stopping" in log and "Traceback" not in log, log
