"""`python -m local` started as a user starts it, with a Stripe stand-in and known secrets, for tests
that need a server of their own for a whole module (they change its data, or must know it exactly).

    with local_api() as api:
        api.url, api.token(1), api.secrets.payment_webhook, api.output()
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from local.stripe_sandbox import StripeSandbox
from support import ROOT, make_token

START_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0
READY = re.compile(r"^Ready on (http://\S+)$")


def reconcile_command(port: int | str) -> subprocess.CompletedProcess[str]:
    """`make reconcile` (`python -m local.reconcile`) for the server on `port`: PORT is how it finds it."""
    return subprocess.run(
        [sys.executable, "-m", "local.reconcile"],
        check=False,
        cwd=ROOT,
        env={**os.environ, "PORT": str(port)},
        capture_output=True,
        text=True,
        timeout=120,
    )


@dataclass(frozen=True)
class Secrets:
    jwt: str = "local-api-jwt-secret-" + "j" * 32
    payment_webhook: str = "local-api-gateway-secret-" + "g" * 16
    stripe_webhook: str = "whsec_local_api_" + "w" * 24
    stripe_key: str = "sk_test_local_api_0123456789"


@dataclass
class LocalApi:
    url: str
    secrets: Secrets
    process: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)

    def token(self, user_id: Any = 1, **claims: Any) -> str:
        return make_token(user_id, secret=self.secrets.jwt, **claims)

    def output(self) -> str:
        return "\n".join(self.lines)


def _environment(secrets: Secrets, stripe_api: str, overrides: dict[str, str]) -> dict[str, str]:
    """A developer's shell (PATH, HOME, ...) plus the settings; nothing of this test session's own."""
    keep = ("PATH", "HOME", "LANG", "TMPDIR")
    env = {name: value for name, value in os.environ.items() if name in keep or name.startswith("COVERAGE_")}
    env.update(
        PORT="0",
        LOCAL_CONCURRENCY="2",
        JWT_SECRET=secrets.jwt,
        PAYMENT_WEBHOOK_SECRET=secrets.payment_webhook,
        STRIPE_WEBHOOK_SECRET=secrets.stripe_webhook,
        STRIPE_SECRET_KEY=secrets.stripe_key,
        STRIPE_API_BASE=stripe_api,
    )
    env.update(overrides)
    return env


@contextmanager
def local_api(secrets: Secrets | None = None, **overrides: str) -> Iterator[LocalApi]:
    """The server on a free port with the demo seed, stopped (SIGTERM) when the block ends."""
    secrets = secrets or Secrets()
    with StripeSandbox(api_key=secrets.stripe_key, webhook_secret=secrets.stripe_webhook, quiet=True) as sandbox:
        process = subprocess.Popen(
            [sys.executable, "-m", "local"],
            cwd=ROOT,
            env=_environment(secrets, sandbox.base_url, overrides),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        lines: list[str] = []
        ready = threading.Event()
        found: list[str] = []

        def pump() -> None:  # read everything, always: a full pipe would block the server
            assert process.stdout is not None
            with process.stdout:
                for line in process.stdout:
                    lines.append(line.rstrip("\n"))
                    if not found and (match := READY.match(lines[-1])):
                        found.append(match.group(1))
                        ready.set()
            ready.set()

        reader = threading.Thread(target=pump, name="local-api-output", daemon=True)
        reader.start()
        try:
            if not ready.wait(START_TIMEOUT) or not found:
                raise AssertionError("`python -m local` did not become ready:\n" + "\n".join(lines))
            yield LocalApi(found[0], secrets, process, lines)
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            reader.join(5)
