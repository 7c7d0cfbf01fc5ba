"""`python -m local.reconcile` (`make reconcile`): run one reconciliation sweep on the running local server.

It POSTs to `/_local/reconcile` on http://HOST:PORT (127.0.0.1:3000 unless set, as for `make run`)
and prints the sweep's summary: how many open Stripe payments it checked and what became of them.
The sweep's settings (RECONCILE_AFTER_MINUTES, RECONCILE_BATCH_SIZE) are the server's: set them
when starting it.
"""

from __future__ import annotations

import http.client
import json
import os
import sys
from collections.abc import Mapping

from local.server import RECONCILE_PATH

# The function's own Timeout is 300 s; the local server answers when the sweep ends.
TIMEOUT_SECONDS = 330


def server_address(env: Mapping[str, str]) -> tuple[str, int]:
    host = env.get("HOST", "").strip() or "127.0.0.1"
    if host in ("0.0.0.0", "::"):  # the server listens everywhere: reach it through loopback
        host = "127.0.0.1"
    port = env.get("PORT", "").strip() or "3000"
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"PORT must be the running server's port, not {port!r}")
    return host, int(port)


def main(env: Mapping[str, str] | None = None) -> int:
    env = os.environ if env is None else env
    try:
        host, port = server_address(env)
    except ValueError as exc:
        print(f"reconcile: {exc}", file=sys.stderr)
        return 2
    url = f"http://{host}:{port}{RECONCILE_PATH}"
    connection = http.client.HTTPConnection(host, port, timeout=TIMEOUT_SECONDS)
    try:
        connection.request("POST", RECONCILE_PATH, body=b"", headers={"Content-Length": "0"})
        response = connection.getresponse()
        status, body = response.status, response.read()
    except OSError as exc:
        print(f"reconcile: no local server at {url} ({exc}); start it with `make run` (or set PORT)", file=sys.stderr)
        return 1
    finally:
        connection.close()
    try:
        summary = json.loads(body)
    except ValueError:
        summary = None
    if status != 200 or not isinstance(summary, dict):
        print(f"reconcile: {url} answered {status}: {body.decode(errors='replace')[:500]}", file=sys.stderr)
        return 1
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
