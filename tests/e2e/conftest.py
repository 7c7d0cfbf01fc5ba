"""The local server started as a user starts it (`python -m local`), spoken to over HTTP.

`local_server` serves the demo seed untouched (the spec's examples); `stripe_server` serves the
demo seed plus e2e users and carts (`E2E_SEED`) and its Stripe sandbox, for the tests that check
out, pay and deliver webhooks. The sandbox is reached over HTTP as a browser or Stripe would.
"""

from __future__ import annotations

import contextlib
import copy
import http.client
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
from support import ROOT, make_token
from support.tables import Store

from local.environment import LOCAL_STRIPE_SANDBOX_KEY, function_environment
from local.server import ApiServer, Gateway, LocalRoutes, serve_in_background
from local.template import FunctionSpec, Route
from local.workers import FunctionPool

START_TIMEOUT = 60.0  # a cold machine imports moto, boto3 and pydantic first
STOP_TIMEOUT = 10.0
E2E_JWT_SECRET = "e2e-jwt-secret-" + "q" * 32
# Mid-rotation: the function accepts both; the sandbox signs with the first, as Stripe signs with the new one.
ROTATED_SECRET = "whsec_e2e_current_" + "c" * 16 + ",whsec_e2e_previous_" + "p" * 16
PAYMENTS = "/orders/api/payments/"
CREATE_STRIPE_ORDER = "/orders/api/create-stripe-order/"
TABLES = (
    "PaymentsTable",
    "PaymentAuditTable",
    "OrdersTable",
    "ProductVariantsTable",
    "ShippingAddressesTable",
    "CartsTable",
    "CountersTable",
    "GatewayTransactionsTable",
    "IdempotencyTable",
)


# user -> {variant: quantity}; the address of user N is N (the demo user 1 keeps cart and address 1).
E2E_CARTS: dict[int, dict[int, int]] = {
    12: {12: 2},  # browser: cancel gives the scarce crab back...
    13: {12: 2},  # ...which only then this cart can buy (COD)
    14: {11: 1, 13: 2},  # browser: delayed payment, confirmed by the bank
    15: {11: 3},  # Stripe webhook storm
    21: {11: 1},  # reconciliation: paid, completion webhook lost
    22: {13: 4},  # reconciliation: cancelled (expired), expiry webhook lost
    23: {11: 2},  # reconciliation server: a payment whose webhook arrives (rotated secret)
    31: {13: 2},  # the client generated from openapi.json starts a checkout
    # test_local_money.py (its own server): the money after checkout, and the findings of issue 18
    41: {11: 2},  # partial refunds, then the rest
    42: {11: 1},  # a refund lost while webhooks are paused, settled by `make reconcile`
    43: {13: 2},  # a dispute, lost
    44: {13: 1},  # a dispute, won
    45: {11: 1},  # finding 3: gateway payment begun, session expired, gateway payment failed
    46: {13: 3},  # finding 4: a superseded delayed payment
    47: {11: 1},  # finding 5: a cart in a shape we cannot read
    48: {13: 1},  # finding 7: a keyed checkout whose session expired
    49: {11: 4},  # finding 6: gateway refunds in parts
}


def _e2e_seed() -> dict[str, Any]:
    """The demo seed plus the users of E2E_CARTS (each with an address whose id is the user's) and their carts.

    Variants 11..13 are the e2e tests' own, so stock checks never meet another test's checkout.
    """
    seed = copy.deepcopy(json.loads((ROOT / "local" / "seed.json").read_text()))
    seed["product_variants"] += [
        {"id": id_, "sku": sku, "name": name, "price": price, "stock": stock, "is_active": True}
        for id_, sku, name, price, stock in (
            (11, "E2E-SALMON", "Salmon Fillet 500g", "12.50", 100),
            (12, "E2E-CRAB", "Mud Crab 1kg", "30.00", 2),
            (13, "E2E-TUNA", "Tuna Steak 250g", "8.25", 100),
        )
    ]
    for user, items in E2E_CARTS.items():
        seed["shipping_addresses"].append(
            {
                "id": user,
                "user": user,
                "full_name": f"E2E User {user}",
                "phone": f"+88017110000{user:02d}",
                "address_line": f"House {user}, Road 1",
                "city": "Dhaka",
                "postal_code": "1207",
                "country": "BD",
            }
        )
        seed["carts"].append({"user": user, "items": [{"variant": v, "quantity": q} for v, q in items.items()]})
    return seed


E2E_SEED = _e2e_seed()


class ServerOutput:
    """Collects the server's merged stdout/stderr line by line, so tests can wait for a line."""

    def __init__(self, stream: Any) -> None:
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self._thread.start()

    def _pump(self, stream: Any) -> None:
        with stream:
            for line in stream:
                with self._cond:
                    self.lines.append(line.rstrip("\n"))
                    self._cond.notify_all()
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def wait_for(self, pattern: str, timeout: float = 10.0, start: int = 0) -> re.Match[str] | None:
        """The first line from index `start` matching `pattern`; None on timeout or end of output."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            index = start
            while True:
                while index < len(self.lines):
                    if match := regex.search(self.lines[index]):
                        return match
                    index += 1
                remaining = deadline - time.monotonic()
                if self._closed or remaining <= 0:
                    return None
                self._cond.wait(remaining)

    def finish(self, timeout: float = 5.0) -> None:
        self._thread.join(timeout)

    @property
    def text(self) -> str:
        with self._cond:
            return "\n".join(self.lines)


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    def __repr__(self) -> str:
        return f"Reply({self.status}, {self.body[:300]!r})"


class HttpClient:
    """Plain HTTP/1.1 requests (no redirects, no retries) to one server."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self.netloc = urlsplit(self.url).netloc
        self.port = urlsplit(self.url).port

    def request(
        self, method: str, target: str, *, headers: dict[str, str] | None = None, body: bytes | None = None
    ) -> Reply:
        """`target` is a path, or an absolute URL, which must point at this server."""
        parts = urlsplit(target if "://" in target else self.url + target)
        assert parts.netloc == self.netloc, f"{target} does not point at {self.netloc}"
        connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
        try:
            connection.request(method, parts.path + (f"?{parts.query}" if parts.query else ""), body, headers or {})
            response = connection.getresponse()
            return Reply(response.status, response.headers, response.read())
        finally:
            connection.close()


class StripeSandboxClient(HttpClient):
    """The server's Stripe sandbox over HTTP: its API (with the local test key) and its pages' buttons."""

    def session(self, session_id: str) -> dict[str, Any]:
        key = {"Authorization": f"Bearer {LOCAL_STRIPE_SANDBOX_KEY}"}
        reply = self.request("GET", f"/v1/checkout/sessions/{session_id}", headers=key)
        assert reply.status == 200, reply
        return reply.json

    def press(self, session_id: str, action: str, form: dict[str, str] | None = None) -> str:
        """POST a checkout page's button (pay, pay-delayed, cancel, confirm, decline) or a dashboard's
        (refund with an amount, dispute, dispute-won, dispute-lost) as its form does; where the sandbox
        redirects the browser. Its events are delivered before it answers."""
        reply = self.request(
            "POST",
            f"/checkout/{session_id}/{action}",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            body=urlencode(form or {}).encode(),
        )
        assert reply.status == 303, reply
        return reply.headers["Location"]

    def set_webhooks(self, state: str) -> None:
        form = urlencode({"state": state}).encode()
        reply = self.request(
            "POST", "/_sandbox/webhooks", headers={"Content-Type": "application/x-www-form-urlencoded"}, body=form
        )
        assert reply.status == 303, reply

    @contextlib.contextmanager
    def webhooks_lost(self) -> Iterator[None]:
        """Inside, the sandbox drops every event instead of delivering it (as its dashboard's Pause does)."""
        self.set_webhooks("paused")
        try:
            yield
        finally:
            self.set_webhooks("live")


def curl(command: str, **variables: str) -> tuple[str, str, dict[str, str], bytes | None]:
    """(method, url, headers, body) of a `curl -s [-X M] URL [-H h]... [-d data]` line, `$NAME`s expanded."""
    for name, value in variables.items():
        command = command.replace(f"${name}", value)
    words = shlex.split(command)
    assert words[0] == "curl", command
    method, url, headers, body = "GET", "", {}, None
    args = iter(words[1:])
    for word in args:
        if word == "-X":
            method = next(args)
        elif word == "-H":
            name, _, value = next(args).partition(":")
            headers[name.strip()] = value.strip()
        elif word == "-d":
            body = next(args).encode()
            method = "POST" if method == "GET" else method
        elif word != "-s":
            assert not word.startswith("-") and not url, f"unexpected {word!r} in {command}"
            url = word
    return method, url, headers, body


def _proc_stat(pid: int | str) -> list[str] | None:
    """A process's state and parent from Linux's /proc (None once it is gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _alive(pid: int) -> bool:
    fields = _proc_stat(pid)
    return fields is not None and fields[0] != "Z"


class LocalServer(HttpClient):
    def __init__(self, process: subprocess.Popen[str], output: ServerOutput, env: dict[str, str], url: str) -> None:
        super().__init__(url)
        self.process = process
        self.output = output
        self.env = env
        self.stray_workers: list[int] = []  # workers still alive after stop()

    def worker_pids(self) -> set[int]:
        """The server's child processes: the functions' workers (the embedded DynamoDB is a thread)."""
        children = set()
        for entry in Path("/proc").glob("[0-9]*"):
            fields = _proc_stat(entry.name)
            if fields and int(fields[1]) == self.process.pid and fields[0] != "Z":
                children.add(int(entry.name))
        return children

    def token(self, user_id: Any = 1, **claims: Any) -> str:
        return make_token(user_id, secret=self.env["JWT_SECRET"], **claims)

    def auth(self, user_id: Any = 1) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(user_id)}"}

    def get(self, target: str, user: Any = 1) -> Reply:
        """GET as `user` (None: without a token)."""
        return self.request("GET", target, headers=self.auth(user) if user is not None else {})

    def post_json(self, target: str, body: Any, user: Any = 1) -> Reply:
        headers = {"Content-Type": "application/json", **(self.auth(user) if user is not None else {})}
        return self.request("POST", target, headers=headers, body=json.dumps(body).encode())

    def checkout(self, user: int, address: int) -> dict[str, str]:
        """create-stripe-order for `user`'s cart: the spec's `{id, url}`."""
        reply = self.post_json(CREATE_STRIPE_ORDER, {"shipping_address": address}, user)
        assert reply.status == 200, reply
        return reply.json

    def payments(self, user: int) -> list[dict[str, Any]]:
        reply = self.get(f"{PAYMENTS}?page_size=1000", user)
        assert reply.status == 200, reply
        return reply.json["results"]

    def payment_of_order(self, user: int, order: int, method: str = "stripe") -> dict[str, Any]:
        (payment,) = [p for p in self.payments(user) if p["order"] == order and p["method"] == method]
        return payment

    def run_curl(self, command: str, **variables: str) -> Reply:
        """Do what a printed `curl` line does (against this server), `$NAME`s expanded."""
        method, url, headers, body = curl(command, **variables)
        return self.request(method, url, headers=headers, body=body)

    def banner(self, pattern: str) -> re.Match[str]:
        """A line of the start-up banner (printed before "Ready on")."""
        match = self.output.wait_for(pattern, timeout=0)
        assert match is not None, f"no line matching {pattern!r} in:\n{self.output.text}"
        return match

    @property
    def sandbox(self) -> StripeSandboxClient:
        return StripeSandboxClient(self.banner(r"^  Stripe:   sandbox .* at (http://\S+), dashboard").group(1))

    @property
    def dynamodb_endpoint(self) -> str:
        return self.banner(r"^  DynamoDB: .*?(http://\S+)$").group(1)

    def store(self) -> Store:
        """The server's own tables (named by logical id), read straight from its DynamoDB."""
        import boto3

        client = boto3.client(
            "dynamodb",
            endpoint_url=self.dynamodb_endpoint,
            region_name="us-east-1",
            aws_access_key_id="local",
            aws_secret_access_key="local",  # the embedded DynamoDB takes any
        )
        return Store(client, {name: name for name in TABLES})

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Send `sig`; the exit status (the process is killed if it does not stop in time)."""
        workers = self.worker_pids()
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            status = self.process.wait(STOP_TIMEOUT)
            self.stray_workers = [pid for pid in workers if _alive(pid)]
            return status
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            name = signal.Signals(sig).name
            pytest.fail(f"the server did not stop within {STOP_TIMEOUT}s of {name}:\n{self.output.text}")
        finally:
            self.output.finish()


def server_environment(**overrides: str) -> dict[str, str]:
    """What a developer's shell would hold, minus anything from this test session's own setup."""
    env = {name: value for name, value in os.environ.items() if name in ("PATH", "HOME", "LANG", "TMPDIR")}
    env.update({name: value for name, value in os.environ.items() if name.startswith("COVERAGE_")})
    # Free ports for the server and its Stripe sandbox: a developer's `make run` may hold the defaults.
    env.update(PORT="0", STRIPE_SANDBOX_PORT="0", JWT_SECRET=E2E_JWT_SECRET, LOCAL_CONCURRENCY="4")
    env.update(overrides)
    return env


def launch(env: dict[str, str]) -> tuple[subprocess.Popen[str], ServerOutput]:
    process = subprocess.Popen(
        [sys.executable, "-m", "local"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
    )
    assert process.stdout is not None
    return process, ServerOutput(process.stdout)


def start_server(**env_overrides: str) -> LocalServer:
    env = server_environment(**env_overrides)
    process, output = launch(env)
    ready = output.wait_for(r"^Ready on (http://\S+)$", START_TIMEOUT)
    if ready is None:
        process.kill()
        process.wait()
        output.finish()
        pytest.fail(f"`python -m local` did not become ready (exit {process.returncode}):\n{output.text}")
    return LocalServer(process, output, env, ready.group(1))


@pytest.fixture
def launch_local() -> Iterator[Callable[..., tuple[subprocess.Popen[str], ServerOutput]]]:
    """Start `python -m local` without waiting for it (for start-up failures); killed after."""
    launched: list[subprocess.Popen[str]] = []

    def start(**env_overrides: str) -> tuple[subprocess.Popen[str], ServerOutput]:
        process, output = launch(server_environment(**env_overrides))
        launched.append(process)
        return process, output

    yield start
    for process in launched:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def local_server() -> Iterator[LocalServer]:
    """One server with the default demo seed for the whole session; it must stop cleanly."""
    server = start_server()
    yield server
    status = server.stop(signal.SIGTERM)
    assert status == 0, f"exit status {status} after SIGTERM:\n{server.output.text}"
    assert server.stray_workers == []


@pytest.fixture
def start_local_server() -> Iterator[Callable[..., LocalServer]]:
    """Start a server with custom settings (e.g. SEED_FILE=...); any still running is stopped after."""
    started: list[LocalServer] = []

    def start(**env_overrides: str) -> LocalServer:
        server = start_server(**env_overrides)
        started.append(server)
        return server

    yield start
    for server in started:
        if server.process.poll() is None:
            server.stop()


@pytest.fixture(scope="session")
def stripe_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    """`python -m local` with its Stripe sandbox and the e2e seed, shared by the checkout, browser
    and storm tests (each uses users and carts of its own); secrets are the printed local defaults."""
    seed = tmp_path_factory.mktemp("seed") / "e2e-seed.json"
    seed.write_text(json.dumps(E2E_SEED))
    server = start_server(SEED_FILE=str(seed))
    yield server
    status = server.stop(signal.SIGTERM)
    assert status == 0, f"exit status {status} after SIGTERM:\n{server.output.text}"
    assert "Traceback" not in server.output.text, server.output.text


@pytest.fixture(scope="module")
def reconcile_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    """A server of each module's own for the sweep's tests and the money after checkout, whose counts
    must not see other tests' checkouts: every open Stripe payment is due (RECONCILE_AFTER_MINUTES=0),
    and a webhook secret mid-rotation."""
    seed = tmp_path_factory.mktemp("seed") / "e2e-seed.json"
    seed.write_text(json.dumps(E2E_SEED))
    server = start_server(SEED_FILE=str(seed), RECONCILE_AFTER_MINUTES="0", STRIPE_WEBHOOK_SECRET=ROTATED_SECRET)
    yield server
    status = server.stop(signal.SIGTERM)
    assert status == 0, f"exit status {status} after SIGTERM:\n{server.output.text}"
    assert "Traceback" not in server.output.text, server.output.text


@pytest.fixture
def write_seed(tmp_path: Path) -> Callable[[dict[str, Any]], Path]:
    def write(seed: dict[str, Any]) -> Path:
        path = tmp_path / "seed.json"
        path.write_text(json.dumps(seed))
        return path

    return write


# ---------------------------------------------------------------------------- test functions
# A function whose behaviour each request picks (`?action=` or the event's "action"), to exercise
# what the gateway and the execution environments do around any handler.
ECHO_APP = """
import base64, json, os, sys, time

import helper  # from the layer directory

print("cold start: a print at import must not reach the protocol")


def lambda_handler(event, context):
    print("a print during an invocation goes to the console")
    action = event.get("action") or (event.get("queryStringParameters") or {}).get("action", "echo")
    if action == "sleep":
        time.sleep(30)
    if action == "nap":
        time.sleep(0.2)
        return {"pid": os.getpid()}
    if action == "raise":
        raise RuntimeError("internal detail: password=hunter2")
    if action == "exit":
        os._exit(3)
    if action == "big":
        return {"statusCode": 200, "body": "x" * (6 * 1024 * 1024 + 1)}
    if action == "plain":
        return {"hello": "world"}
    if action == "string":
        return "hello"
    if action == "malformed":
        return {"statusCode": "abc", "body": "never shown"}
    if action == "binary":
        body = base64.b64encode(bytes(range(256))).decode()
        return {"statusCode": 200, "headers": {"content-type": "image/png"}, "isBase64Encoded": True, "body": body}
    if action == "cookies":
        return {"statusCode": 201, "cookies": ["a=1; Path=/", "b=2"], "headers": {"x-custom": "yes"}, "body": ""}
    if action == "runtime":
        runtime = {"pid": os.getpid(), "path": sys.path, "env": dict(os.environ), "helper": helper.NAME,
                   "cwd": os.getcwd(), "remaining_ms": context.get_remaining_time_in_millis(),
                   "function_name": context.function_name, "request_id": context.aws_request_id}
        return {"statusCode": 200, "body": json.dumps(runtime)}
    return {"statusCode": 200, "headers": {"content-type": "application/json"}, "body": json.dumps(event)}
"""
BROKEN_APP = 'raise RuntimeError("cannot start: missing configuration")\n'


@dataclass
class TestFunctions:
    __test__ = False  # not a test class
    echo: FunctionSpec
    hook: FunctionSpec
    broken: FunctionSpec
    layer: Path
    root: Path

    @property
    def specs(self) -> list[FunctionSpec]:
        return [self.echo, self.hook, self.broken]

    def environment(self, spec: FunctionSpec) -> dict[str, str]:
        return function_environment(spec, {}, dynamodb_endpoint="http://127.0.0.1:9")


@pytest.fixture(scope="session")
def test_functions(tmp_path_factory: pytest.TempPathFactory) -> TestFunctions:
    root = tmp_path_factory.mktemp("functions")
    for name, source in (("echo", ECHO_APP), ("broken", BROKEN_APP)):
        (root / name).mkdir()
        (root / name / "app.py").write_text(source)
    layer = root / "layer"
    layer.mkdir()
    (layer / "helper.py").write_text('NAME = "from the layer"\n')

    def spec(logical_id: str, code: str, **kwargs: Any) -> FunctionSpec:
        return FunctionSpec(logical_id, root / code, "app.lambda_handler", 1, 256, {"GREETING": "hi"}, **kwargs)

    echo_routes = [Route("GET", "/echo/{id}"), Route("GET", "/echo/static")]
    return TestFunctions(
        echo=spec(
            "EchoFunction",
            "echo",
            routes=[*echo_routes, Route("POST", "/echo"), Route("POST", "/methods"), Route("ANY", "/methods")],
        ),
        hook=spec("HookFunction", "echo", function_url=True, local_path="/hooks/echo/"),
        broken=spec("BrokenFunction", "broken", routes=[Route("GET", "/broken")]),
        layer=layer,
        root=root,
    )


@pytest.fixture
def echo_pool(test_functions: TestFunctions) -> Iterator[FunctionPool]:
    pool = FunctionPool(test_functions.echo, test_functions.environment(test_functions.echo), [test_functions.layer], 2)
    yield pool
    pool.close()


class GatewayServer(HttpClient):
    def __init__(self, url: str, gateway: Gateway, local_routes: LocalRoutes) -> None:
        super().__init__(url)
        self.gateway = gateway
        self.local_routes = local_routes


@pytest.fixture(scope="session")
def gateway_server(test_functions: TestFunctions) -> Iterator[GatewayServer]:
    """The HTTP front and worker pools in this process, serving the test functions."""
    environments = {spec.logical_id: test_functions.environment(spec) for spec in test_functions.specs}
    gateway = Gateway(test_functions.specs, environments, [test_functions.layer], concurrency=2)
    local_routes = LocalRoutes()
    server = ApiServer(("127.0.0.1", 0), gateway, local_routes)
    serve_in_background(server)
    yield GatewayServer(f"http://127.0.0.1:{server.port}", gateway, local_routes)
    server.shutdown()
    server.server_close()
    gateway.close()
