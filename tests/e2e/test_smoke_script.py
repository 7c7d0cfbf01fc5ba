"""scripts/smoke.py (`make smoke`), the check of a deployed stack, run against the local server as a
user runs it: it passes on a correctly configured API and names what is wrong otherwise (the token
refused, a secret missing), changing nothing and never printing the token."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from support import ROOT, make_token

pytestmark = pytest.mark.e2e


def smoke(server: Any, token: str, *, stripe: bool = True) -> subprocess.CompletedProcess[str]:
    arguments = ["--api-url", server.url]
    if stripe:
        arguments += ["--stripe-webhook-url", server.url + "/orders/api/stripe-webhook/"]
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "smoke.py"), *arguments],
        env={"SMOKE_TOKEN": token, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def test_a_correctly_configured_api_passes(local_server):
    token = local_server.token(1)
    before = local_server.request("GET", "/orders/api/payments/", headers={"authorization": f"Bearer {token}"}).json
    result = smoke(local_server, token)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "all checks passed" in result.stdout and "FAIL" not in result.stdout
    assert token not in result.stdout + result.stderr
    after = local_server.request("GET", "/orders/api/payments/", headers={"authorization": f"Bearer {token}"}).json
    assert after["count"] == before["count"]  # nothing was created


def test_a_token_the_stack_does_not_accept_fails_the_smoke_test(local_server):
    result = smoke(local_server, make_token(1, secret="another-key-" + "k" * 32))
    assert result.returncode == 1
    assert "the token is refused" in result.stdout


def test_a_missing_stripe_key_is_named(start_local_server):
    server = start_local_server(STRIPE_SANDBOX="0")  # no Stripe key: the checkout answers 503
    result = smoke(server, server.token(1), stripe=False)
    assert result.returncode == 1
    assert "Stripe secret key is not configured" in result.stdout
