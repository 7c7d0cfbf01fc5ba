"""The local server as a front end tested against it sees it: CORS served from the template's
CorsConfiguration as API Gateway serves it, and a console nobody reads never stalls the API."""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import pytest
from support import ROOT

from local.defaults import LOCAL_PAYMENT_WEBHOOK_SECRET

ORIGIN = "https://halumhut.example"  # the template's CorsAllowOrigin default
PAYMENTS = "/orders/api/payments/"


# ---------------------------------------------------------------------------- CORS
def test_a_preflight_is_answered_by_the_gateway_with_the_templates_configuration(local_server):
    """API Gateway answers a preflight itself, though no route is OPTIONS ("Configure CORS for HTTP APIs")."""
    reply = local_server.request(
        "OPTIONS",
        PAYMENTS,
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization",
        },
    )
    assert reply.status == 204, reply
    assert reply.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert set(reply.headers["Access-Control-Allow-Methods"].split(",")) == {"GET", "POST", "OPTIONS"}
    assert set(reply.headers["Access-Control-Allow-Headers"].split(",")) == {
        "authorization",
        "content-type",
        "idempotency-key",
    }
    assert reply.headers["Access-Control-Max-Age"] == "600"


def test_a_preflight_from_another_origin_gets_no_cors_headers(local_server):
    reply = local_server.request(
        "OPTIONS", PAYMENTS, headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"}
    )
    assert reply.status == 204
    assert "Access-Control-Allow-Origin" not in reply.headers


@pytest.mark.parametrize("path", [PAYMENTS, "/orders/api/no-such-route"])
def test_responses_to_an_allowed_origin_carry_access_control_allow_origin(local_server, path):
    reply = local_server.request("GET", path, headers={"Origin": ORIGIN, **local_server.auth(1)})
    assert reply.headers["Access-Control-Allow-Origin"] == ORIGIN
    other = local_server.request("GET", path, headers={"Origin": "https://evil.example", **local_server.auth(1)})
    assert "Access-Control-Allow-Origin" not in other.headers
    assert "Access-Control-Allow-Origin" not in local_server.request("GET", path, headers=local_server.auth(1)).headers


def test_an_options_request_that_is_not_a_preflight_is_routed_like_any_other(local_server):
    """To the path's ANY route, where the function answers as for any method it does not serve: 401 without
    a token (DRF authenticates first), 405 with `Allow` with one; the gateway adds CORS as to any answer."""
    anonymous = local_server.request("OPTIONS", PAYMENTS, headers={"Origin": ORIGIN})
    assert (anonymous.status, anonymous.headers["Access-Control-Allow-Origin"]) == (401, ORIGIN)
    signed_in = local_server.request("OPTIONS", PAYMENTS, headers={"Origin": ORIGIN, **local_server.auth(1)})
    assert (signed_in.status, signed_in.headers["Allow"]) == (405, "GET")


def test_the_function_url_has_no_cors_configuration(local_server):
    webhook = "/orders/api/stripe-webhook/"
    reply = local_server.request(
        "OPTIONS", webhook, headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST"}
    )
    assert "Access-Control-Allow-Origin" not in reply.headers


# ---------------------------------------------------------------------------- the stall
def _status(url: str, method: str, path: str, headers: dict[str, str], body: bytes | None = None) -> int:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
    try:
        connection.request(method, path, body, headers)
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def _mixed_request(url: str, token: str, index: int) -> int:
    if index % 2:
        return _status(url, "GET", PAYMENTS, {"Authorization": f"Bearer {token}"})
    body = json.dumps(
        {
            "event_type": "payment.completed",
            "payment_id": f"txn_stall_{index}",
            "order_reference": "1",
            "amount": "1598.00",  # the first completes order 1; the others are refused (409)
            "status": "completed",
            "timestamp": "2023-01-15T15:30:00Z",
        }
    ).encode()
    signature = hmac.new(LOCAL_PAYMENT_WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
    headers = {"X-Webhook-Signature": signature, "Content-Type": "application/json"}
    return _status(url, "POST", "/orders/api/payment-webhook/", headers, body)


def test_a_console_nobody_reads_never_stalls_the_api():
    """Started as a test harness starts it, with its output in a pipe that stops being read after the
    banner. Every log line used to be written synchronously: once the pipe's buffer was full, request
    threads and workers blocked on their logs, the whole stack froze and webhooks answered 503 when
    their 15 s timeout ran out. Now every answer arrives, and none is a gateway timeout."""
    env = {name: value for name, value in os.environ.items() if name in ("PATH", "HOME", "LANG", "TMPDIR")}
    env.update({name: value for name, value in os.environ.items() if name.startswith("COVERAGE_")})
    env.update(PORT="0", STRIPE_SANDBOX="0", POWERTOOLS_LOG_LEVEL="DEBUG", LOCAL_CONCURRENCY="4")
    process = subprocess.Popen(
        [sys.executable, "-m", "local"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        assert process.stdout is not None
        url = token = None
        deadline = time.monotonic() + 60
        while url is None and time.monotonic() < deadline:
            line = process.stdout.readline().decode()
            if not line:
                break
            if match := re.match(r"Authorization: Bearer (\S+)", line):
                token = match.group(1)
            if match := re.match(r"Ready on (http://\S+)", line):
                url = match.group(1)
        assert url and token, "the server did not start"
        # From here on nobody reads the server's output (64 KB of pipe buffer, then writes block).
        statuses: list[int] = []
        with ThreadPoolExecutor(10) as pool:
            for burst in range(40):  # well past 64 KB of log lines at DEBUG
                statuses += pool.map(lambda i: _mixed_request(url, token, i), range(burst * 10, burst * 10 + 10))
        assert len(statuses) == 400  # every answer arrived (a stalled one times out and fails the test)
        assert set(statuses) <= {200, 409}, sorted(set(statuses))  # no 5xx: no invocation ran out of time
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
