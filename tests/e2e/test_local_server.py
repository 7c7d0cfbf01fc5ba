"""End to end: the local gateway as a user meets it, and what it enforces around any function.

`local_server` is `python -m local` with the demo seed; `gateway_server` / `echo_pool` run small
test functions through the same HTTP front and execution environments, in this process.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

# The spec's two examples (shared/payments-api.md), which the demo seed must reproduce exactly.
from support.payment_data import SPEC_LIST_ANSWER as LIST_EXAMPLE
from support.payment_data import SPEC_PAYMENT_1 as PAYMENT_1
from support.payment_data import SPEC_PAYMENT_2 as PAYMENT_2

from local.routing import HttpResponse
from local.server import http_response, reconcile_handler
from local.template import ROOT
from local.workers import MAX_REQUEST_BYTES, Invocation, Outcome

pytestmark = pytest.mark.e2e

PAYMENTS = "/orders/api/payments/"
NOT_FOUND = {"detail": "Not found."}
GATEWAY_NOT_FOUND = {"message": "Not Found"}


def raw_exchange(port: int, head: str) -> bytes:
    """Send a request head (no body) on a raw socket and read until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head.encode())
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


# ---------------------------------------------------------------------------- the API, as a user meets it
@pytest.mark.parametrize("path", [PAYMENTS, PAYMENTS.rstrip("/")])
def test_list_is_the_spec_example(local_server, path):
    reply = local_server.get(path, user=1)
    assert reply.status == 200, reply
    assert reply.headers["Content-Type"].startswith("application/json")
    assert reply.json == LIST_EXAMPLE


@pytest.mark.parametrize("path", [f"{PAYMENTS}1/", f"{PAYMENTS}1"])
def test_detail_is_the_spec_example(local_server, path):
    reply = local_server.get(path, user=1)
    assert reply.status == 200, reply
    assert reply.json == PAYMENT_1


@pytest.mark.parametrize("payment_id", ["3", "999", "abc", "-1", "1.5", "9" * 30])
def test_other_users_missing_and_malformed_ids_are_not_found(local_server, payment_id):
    reply = local_server.get(f"{PAYMENTS}{payment_id}/", user=1)
    assert (reply.status, reply.json) == (404, NOT_FOUND)


def test_without_a_token_is_401_with_a_bearer_challenge(local_server):
    for path in (PAYMENTS, f"{PAYMENTS}1/"):
        reply = local_server.get(path, user=None)
        assert reply.status == 401, reply
        assert reply.headers["WWW-Authenticate"].startswith("Bearer")
        assert "detail" in reply.json


def test_filters_reach_the_function(local_server):
    reply = local_server.get(f"{PAYMENTS}?status=completed", user=1)
    assert reply.json == {
        "count": 1,
        "next": None,
        "previous": None,
        "next_cursor": None,
        "previous_cursor": None,
        "results": [PAYMENT_2],
    }


def test_paging_follows_absolute_links_both_ways(local_server):
    first = local_server.get(f"{PAYMENTS}?page_size=1").json
    assert (first["count"], first["results"], first["previous"]) == (2, [PAYMENT_1], None)
    assert first["next"].startswith(f"http://{local_server.netloc}{PAYMENTS}?")

    second = local_server.get(first["next"]).json
    assert (second["count"], second["results"], second["next"]) == (2, [PAYMENT_2], None)
    assert second["previous"].startswith(f"http://{local_server.netloc}{PAYMENTS}?")

    back = local_server.get(second["previous"]).json
    assert back["results"] == [PAYMENT_1]
    assert back["previous"] is None


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/"),
        ("GET", "/orders/api/"),
        ("GET", "/orders/api/payments/1/extra/"),
        ("GET", "/orders/api/payments//"),
        ("DELETE", "/orders/api/elsewhere/"),
        ("TRACE", "/orders/api/"),  # methods no route can declare too: never the stdlib's 501
        ("PROPFIND", "/"),
    ],
)
def test_unknown_routes_are_api_gateways_404(local_server, method, path):
    reply = local_server.request(method, path, headers=local_server.auth(1))
    assert (reply.status, reply.json) == (404, GATEWAY_NOT_FOUND)


@pytest.mark.parametrize(
    ("method", "path", "allow", "style"),
    [
        ("POST", PAYMENTS, "GET", "detail"),
        ("DELETE", f"{PAYMENTS}1/", "GET", "detail"),
        ("HEAD", PAYMENTS, "GET", None),  # no body to a HEAD
        ("PUT", "/orders/api/create-cod", "POST", "detail"),
        ("GET", "/orders/api/create-stripe-order/", "POST", "detail"),
        ("TRACE", "/orders/api/payment-webhook/", "POST", "status"),
        ("PROPFIND", PAYMENTS, "GET", "detail"),
        # The Function URL: any method reaches the function, which refuses it before the signature.
        ("GET", "/orders/api/stripe-webhook/", "POST", "status"),
        ("DELETE", "/orders/api/stripe-webhook", "POST", "status"),
    ],
)
def test_a_method_a_path_does_not_serve_is_405_with_allow(local_server, method, path, allow, style):
    """The template's ANY routes bring every other method to the function (as API Gateway does), which answers."""
    reply = local_server.request(method, path, headers=local_server.auth(1))
    assert (reply.status, reply.headers["Allow"]) == (405, allow), reply
    message = f'Method "{method}" not allowed.'
    if style is not None:
        assert reply.json == ({"detail": message} if style == "detail" else {"status": "error", "message": message})


def test_a_body_over_6_mb_is_413_before_it_is_sent(local_server):
    port = int(local_server.netloc.rsplit(":", 1)[1])
    head = f"POST {PAYMENTS} HTTP/1.1\r\nHost: {local_server.netloc}\r\nContent-Length: {MAX_REQUEST_BYTES + 1}\r\n"
    for extra in ("", "Expect: 100-continue\r\n"):  # curl asks first for large uploads
        response = raw_exchange(port, head + extra + "\r\n")
        status_line, _, rest = response.partition(b"\r\n")
        assert status_line == b"HTTP/1.1 413 Request Entity Too Large", response[:200]
        assert json.loads(rest.split(b"\r\n\r\n", 1)[1]) == {"message": "Request Entity Too Large"}


def test_a_body_of_exactly_6_mb_is_accepted(local_server):
    reply = local_server.request("POST", "/not-a-route/", body=b"x" * MAX_REQUEST_BYTES)
    assert (reply.status, reply.json) == (404, GATEWAY_NOT_FOUND)


def test_the_banners_demo_header_works_as_printed(local_server):
    line = local_server.output.wait_for(r"^Authorization: Bearer \S+$", timeout=0)
    assert line is not None, local_server.output.text
    name, _, value = line.string.partition(": ")
    reply = local_server.request("GET", PAYMENTS, headers={name: value})
    assert (reply.status, reply.json) == (200, LIST_EXAMPLE)


def test_each_request_is_logged_with_method_path_status_and_duration(local_server):
    start = len(local_server.output.lines)
    local_server.get(f"{PAYMENTS}2/?probe=log")
    logged = local_server.output.wait_for(rf"GET {re.escape(PAYMENTS)}2/ 200 \d+\.\d ms", timeout=10, start=start)
    assert logged is not None, local_server.output.text


def test_20_concurrent_requests_all_succeed(local_server):
    paths = [PAYMENTS if i % 2 else f"{PAYMENTS}{1 + i % 4 // 2}/" for i in range(20)]
    expected = {PAYMENTS: LIST_EXAMPLE, f"{PAYMENTS}1/": PAYMENT_1, f"{PAYMENTS}2/": PAYMENT_2}
    with ThreadPoolExecutor(max_workers=20) as executor:
        replies = list(executor.map(local_server.get, paths))
    assert [(r.status, r.json) for r in replies] == [(200, expected[p]) for p in paths]


def test_tokens_command_prints_a_header_the_server_accepts(local_server):
    result = subprocess.run(
        [sys.executable, "-m", "local.tokens", "2"],
        cwd=ROOT,
        env={**os.environ, "JWT_SECRET": local_server.env["JWT_SECRET"]},
        capture_output=True,
        text=True,
        check=True,
    )
    name, _, value = result.stdout.strip().partition(": ")
    assert name == "Authorization"
    reply = local_server.request("GET", f"{PAYMENTS}3/", headers={name: value})
    assert (reply.status, reply.json["user"]) == (200, 2)


# ---------------------------------------------------------------------------- starting and stopping
def test_a_malformed_seed_stops_the_start_with_status_2_naming_the_record(launch_local, write_seed):
    seed = json.loads((ROOT / "local" / "seed.json").read_text())
    seed["payments"][1]["amount"] = "not money"
    process, output = launch_local(SEED_FILE=str(write_seed(seed)))
    assert process.wait(30) == 2, output.text
    output.finish()
    assert "payments[1] (id 2)" in output.text
    assert "Ready on" not in output.text


def test_custom_seed_then_ctrl_c_stops_everything(start_local_server, write_seed):
    seed = json.loads((ROOT / "local" / "seed.json").read_text())
    seed["payments"] = [{**PAYMENT_1, "id": 40}]
    server = start_local_server(SEED_FILE=str(write_seed(seed)), LOCAL_CONCURRENCY="1")
    reply = server.get(PAYMENTS, user=1)
    assert reply.json["results"] == [{**PAYMENT_1, "id": 40}]
    assert server.worker_pids(), "functions run in worker processes"

    assert server.stop(signal.SIGINT) == 0, server.output.text
    assert server.stray_workers == []
    assert "Traceback" not in server.output.text


# ---------------------------------------------------------------------------- Stripe modes and local pages
NOT_CONFIGURED = {"detail": "Stripe payment gateway is not configured"}


def test_without_a_key_and_with_the_sandbox_off_stripe_checkout_is_503(start_local_server):
    server = start_local_server(STRIPE_SANDBOX="0")
    assert server.banner(r"^  Stripe:   off ")
    assert server.banner(r"^    STRIPE_SECRET_KEY: not set")
    reply = server.request(
        "POST",
        "/orders/api/create-stripe-order/",
        headers={**server.auth(1), "Content-Type": "application/json"},
        body=b'{"shipping_address": 1}',
    )
    assert (reply.status, reply.json) == (503, NOT_CONFIGURED)
    assert "stripe-sandbox" not in server.output.text


def test_with_a_real_key_there_is_no_sandbox_and_the_banner_says_how_to_forward_webhooks(start_local_server):
    server = start_local_server(STRIPE_SECRET_KEY="sk_test_e2e_" + "k" * 24)
    forward = server.banner(r"^\s+stripe listen --forward-to (\S+)$").group(1)
    assert forward == f"{server.url}/orders/api/stripe-webhook/"
    assert server.banner(r"STRIPE_WEBHOOK_SECRET set to the whsec_")
    assert server.banner(r"^    STRIPE_SECRET_KEY: from the environment$")
    assert server.output.wait_for(r"^  Stripe:   sandbox", timeout=0) is None
    assert "sk_test_e2e_" not in server.output.text  # the key itself is never printed


def test_a_taken_sandbox_port_stops_the_start_naming_the_setting(launch_local):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        process, output = launch_local(STRIPE_SANDBOX_PORT=str(taken.getsockname()[1]))
        assert process.wait(30) == 1, output.text
    output.finish()
    assert "STRIPE_SANDBOX_PORT=0 picks a free port" in output.text
    assert "Ready on" not in output.text


def test_the_checkout_return_pages_are_local_html(local_server):
    success = local_server.request("GET", "/_local/checkout/success?session_id=%3Cb%3Ecs_unknown")
    assert success.status == 200
    assert success.headers["Content-Type"] == "text/html; charset=utf-8"
    assert b"Payment received" in success.body
    assert b"&lt;b&gt;cs_unknown" in success.body and b"<b>cs_unknown" not in success.body
    cancelled = local_server.request("GET", "/_local/checkout/cancelled")
    assert cancelled.status == 200 and b"Checkout cancelled" in cancelled.body
    assert local_server.request("POST", "/_local/checkout/cancelled").status == 404


def test_the_api_documentation_is_served_for_this_server(local_server):
    page = local_server.request("GET", "/docs")
    assert page.status == 200 and page.headers["Content-Type"].startswith("text/html")
    document = local_server.request("GET", "/openapi.json")
    assert document.status == 200
    spec = json.loads(document.body)
    assert spec["servers"][0]["url"] == local_server.url  # "Try it out" calls this server
    assert "/orders/api/payments/" in spec["paths"]


def test_the_reconcile_route_answers_the_functions_summary_or_a_500(gateway_server):
    gateway_server.local_routes.add("POST", "/_test/reconcile-echo", reconcile_handler("EchoFunction"))
    gateway_server.local_routes.add("POST", "/_test/reconcile-broken", reconcile_handler("BrokenFunction"))
    gateway_server.local_routes.add("POST", "/_test/reconcile-missing", reconcile_handler("NoSuchFunction"))

    echoed = gateway_server.request("POST", "/_test/reconcile-echo", body=b'{"after_minutes": 5}')
    assert echoed.status == 200
    event = json.loads(echoed.json["body"])  # the echo function returns its event: a scheduled one, body ignored
    assert (event["source"], event["detail-type"]) == ("aws.events", "Scheduled Event")
    assert "after_minutes" not in json.dumps(event)
    broken = gateway_server.request("POST", "/_test/reconcile-broken")
    assert (broken.status, broken.json["outcome"]) == (500, "function error")
    assert b"missing configuration" not in broken.body  # the init error stays in the log
    assert gateway_server.request("POST", "/_test/reconcile-missing").status == 404


# ---------------------------------------------------------------------------- execution environments
def test_the_handler_is_imported_once_and_the_worker_reused(echo_pool):
    first = echo_pool.invoke({"action": "runtime"})
    second = echo_pool.invoke({"action": "runtime"})
    assert first.outcome is second.outcome is Outcome.OK
    assert first.init_ms is not None and second.init_ms is None
    assert json.loads(first.result["body"])["pid"] == json.loads(second.result["body"])["pid"]
    assert echo_pool.size == 1


def test_the_function_sees_lambdas_layout_and_only_its_environment(echo_pool, test_functions):
    runtime = json.loads(echo_pool.invoke({"action": "runtime"}).result["body"])
    assert runtime["path"][:2] == [str(test_functions.echo.code_uri), str(test_functions.layer)]
    assert str(ROOT) not in runtime["path"] and str(ROOT / "local") not in runtime["path"]
    assert runtime["helper"] == "from the layer"
    assert runtime["cwd"] == str(test_functions.echo.code_uri)
    assert runtime["env"]["GREETING"] == "hi"
    assert runtime["env"]["AWS_LAMBDA_FUNCTION_NAME"] == runtime["function_name"] == "EchoFunction"
    assert "PYTEST_CURRENT_TEST" not in runtime["env"]
    assert 0 < runtime["remaining_ms"] <= 1000


def test_a_handler_exception_discards_the_worker(echo_pool):
    pid = json.loads(echo_pool.invoke({"action": "runtime"}).result["body"])["pid"]
    failed = echo_pool.invoke({"action": "raise"})
    assert failed.outcome is Outcome.FUNCTION_ERROR
    assert "RuntimeError" in (failed.error or "")
    after = echo_pool.invoke({"action": "runtime"})
    assert after.init_ms is not None
    assert json.loads(after.result["body"])["pid"] != pid


def test_a_timeout_kills_the_worker(echo_pool):
    started = time.monotonic()
    invocation = echo_pool.invoke({"action": "sleep"})  # sleeps 30 s; the function's Timeout is 1 s
    assert invocation.outcome is Outcome.TIMEOUT
    assert time.monotonic() - started < 5
    assert echo_pool.size == 0


def test_a_crashed_runtime_is_a_function_error(echo_pool):
    assert echo_pool.invoke({"action": "exit"}).outcome is Outcome.FUNCTION_ERROR
    assert echo_pool.invoke({"action": "plain"}).outcome is Outcome.OK  # a fresh worker takes over


def test_payload_limits(echo_pool):
    assert echo_pool.invoke({"action": "big"}).outcome is Outcome.RESPONSE_TOO_LARGE
    too_big = echo_pool.invoke({"action": "echo", "padding": "x" * MAX_REQUEST_BYTES})
    assert too_big.outcome is Outcome.REQUEST_TOO_LARGE


def test_concurrency_is_capped_per_function_and_callers_wait(echo_pool):
    with ThreadPoolExecutor(max_workers=6) as executor:
        results = list(executor.map(lambda _: echo_pool.invoke({"action": "nap"}), range(6)))
    assert [r.outcome for r in results] == [Outcome.OK] * 6
    assert len({r.result["pid"] for r in results}) == echo_pool.max_workers == 2


@pytest.mark.parametrize(
    ("outcome", "status", "message"),
    [
        (Outcome.FUNCTION_ERROR, 500, "Internal Server Error"),
        (Outcome.TIMEOUT, 503, "Service Unavailable"),
        (Outcome.RESPONSE_TOO_LARGE, 502, "Internal Server Error"),
        (Outcome.REQUEST_TOO_LARGE, 413, "Request Entity Too Large"),
        (Outcome.UNAVAILABLE, 503, "Service Unavailable"),
    ],
)
def test_failed_invocations_answer_like_api_gateway(outcome, status, message):
    response = http_response(Invocation(outcome, error="details stay in the log"))
    assert isinstance(response, HttpResponse)
    assert (response.status, json.loads(response.body)) == (status, {"message": message})


# ---------------------------------------------------------------------------- the HTTP front, any function
def test_the_event_is_api_gateways_payload_2_0(gateway_server):
    reply = gateway_server.request(
        "GET", "/echo/a%20b/?x=1&x=2&y=", headers={"X-Custom": "One", "Cookie": "c1=v1; c2=v2"}
    )
    event = reply.json
    assert event["version"] == "2.0"
    assert event["routeKey"] == event["requestContext"]["routeKey"] == "GET /echo/{id}"  # as declared
    assert event["rawPath"] == "/echo/a%20b/"  # as sent
    assert event["rawQueryString"] == "x=1&x=2&y="
    assert event["queryStringParameters"] == {"x": "1,2", "y": ""}
    assert event["pathParameters"] == {"id": "a b"}
    assert event["headers"]["x-custom"] == "One"
    assert event["headers"]["host"] == gateway_server.netloc
    assert event["headers"]["x-forwarded-proto"] == "http"
    assert event["cookies"] == ["c1=v1", "c2=v2"]
    assert event["requestContext"]["domainName"] == "127.0.0.1"
    assert event["requestContext"]["http"]["method"] == "GET"
    assert event["isBase64Encoded"] is False


def test_static_routes_win_and_a_trailing_slash_reaches_the_slashless_route(gateway_server):
    """As API Gateway: /x/ goes to the route /x, with the rawPath as sent and the declared route key."""
    for raw_path in ("/echo/static/", "/echo/static"):
        event = gateway_server.request("GET", raw_path).json
        assert (event["routeKey"], event["rawPath"]) == ("GET /echo/static", raw_path)
    assert gateway_server.request("GET", "/echo/other/").json["routeKey"] == "GET /echo/{id}"
    assert gateway_server.request("GET", "/echo//").status == 404


def test_a_method_with_no_route_is_api_gateways_404_and_an_any_route_takes_the_others(gateway_server):
    """API Gateway ("Create routes for HTTP APIs"): no route for the request's method and path, `{"message":
    "Not Found"}` from the gateway itself; an ANY route matches every method not declared for its path."""
    for method in ("GET", "DELETE", "TRACE"):
        reply = gateway_server.request(method, "/echo")  # only POST /echo is declared
        assert (reply.status, reply.json) == (404, GATEWAY_NOT_FOUND), method
    assert gateway_server.request("POST", "/methods/", body=b"{}").json["routeKey"] == "POST /methods"
    for method in ("GET", "DELETE", "TRACE", "PROPFIND"):
        event = gateway_server.request(method, "/methods").json
        assert (event["routeKey"], event["requestContext"]["http"]["method"]) == ("ANY /methods", method)


def test_bodies_reach_the_function_text_or_base64(gateway_server):
    text = gateway_server.request("POST", "/echo/", body=b'{"a": 1}', headers={"Content-Type": "application/json"})
    assert (text.json["body"], text.json["isBase64Encoded"]) == ('{"a": 1}', False)
    binary = gateway_server.request("POST", "/echo/", body=b"\xff\x00", headers={"Content-Type": "image/png"})
    assert (binary.json["body"], binary.json["isBase64Encoded"]) == ("/wA=", True)


def test_function_urls_are_mounted_at_their_local_path_for_any_method(gateway_server):
    for method, path in (("POST", "/hooks/echo/"), ("PUT", "/hooks/echo")):
        event = gateway_server.request(method, path, body=b"{}").json
        assert (event["routeKey"], event["rawPath"], event["requestContext"]["http"]["method"]) == (
            "$default",
            path,
            method,
        )


@pytest.mark.parametrize(
    ("action", "status", "body"),
    [
        ("raise", 500, {"message": "Internal Server Error"}),
        ("sleep", 503, {"message": "Service Unavailable"}),
        ("big", 502, {"message": "Internal Server Error"}),
        ("malformed", 500, {"message": "Internal Server Error"}),
        ("plain", 200, {"hello": "world"}),
    ],
)
def test_results_map_to_responses_like_api_gateway(gateway_server, action, status, body):
    reply = gateway_server.request("GET", f"/echo/x/?action={action}")
    assert (reply.status, reply.json) == (status, body)
    assert b"hunter2" not in reply.body


def test_a_string_result_is_a_200_body(gateway_server):
    reply = gateway_server.request("GET", "/echo/x/?action=string")
    assert (reply.status, reply.body, reply.headers["Content-Type"]) == (200, b"hello", "application/json")


def test_binary_bodies_cookies_and_headers_come_back(gateway_server):
    binary = gateway_server.request("GET", "/echo/x/?action=binary")
    assert (binary.status, binary.body, binary.headers["Content-Type"]) == (200, bytes(range(256)), "image/png")
    cookies = gateway_server.request("GET", "/echo/x/?action=cookies")
    assert cookies.status == 201
    assert cookies.headers.get_all("Set-Cookie") == ["a=1; Path=/", "b=2"]
    assert cookies.headers["x-custom"] == "yes"


def test_an_init_failure_is_a_500(gateway_server):
    reply = gateway_server.request("GET", "/broken/")
    assert (reply.status, reply.json) == (500, {"message": "Internal Server Error"})
    assert b"missing configuration" not in reply.body


def test_local_routes_come_first_and_can_invoke_functions(gateway_server):
    def invoke_echo(request, gateway):
        invocation = gateway.invoke("EchoFunction", {"action": "plain"})
        return HttpResponse(200, [("Content-Type", "application/json")], json.dumps(invocation.result).encode())

    assert gateway_server.request("GET", "/echo/shadowed/").json["routeKey"] == "GET /echo/{id}"
    gateway_server.local_routes.add("GET", "/echo/shadowed/", invoke_echo)
    reply = gateway_server.request("GET", "/echo/shadowed/")
    assert (reply.status, reply.json) == (200, {"hello": "world"})
