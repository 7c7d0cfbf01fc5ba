"""What every part of the benchmark shares: the build, the local AWS and Stripe, the data, the events,
and the Lambda-like processes that run the built functions (local/lambda_runtime.py, with the
benchmark's ops from bench/runtime_plugin.py)."""

from __future__ import annotations

import copy
import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
for entry in (ROOT / "layers" / "payments", ROOT):
    if str(entry) not in sys.path:
        sys.path.insert(0, str(entry))

# Fake credentials before anything creates a boto3 client: nothing may reach AWS.
os.environ.update(
    AWS_ACCESS_KEY_ID="testing",
    AWS_SECRET_ACCESS_KEY="testing",
    AWS_SESSION_TOKEN="testing",
    AWS_DEFAULT_REGION="us-east-1",
    AWS_REGION="us-east-1",
)
for leaked in ("AWS_PROFILE", "AWS_ENDPOINT_URL"):
    os.environ.pop(leaked, None)

from local import defaults, seed  # noqa: E402
from local.lambda_runtime import PLUGIN_VARIABLE, SITE_PACKAGES_VARIABLE, RuntimeProcess  # noqa: E402
from local.make_events import (  # noqa: E402
    GET,
    POST,
    event_files,
    function_environment,
    prepare,
    stripe_signed,
)
from local.seed import DEFAULT_SEED  # noqa: E402
from local.template import Template  # noqa: E402

HOST_ARCH = {"aarch64": "arm64", "arm64": "arm64"}.get(platform.machine(), "x86_64")
# The build measured: `make build-test-artifacts`'s, unless BENCH_BUILD_DIR names another (bench/ab.py).
BUILD_DIR = Path(os.environ.get("BENCH_BUILD_DIR") or ROOT / ".aws-sam" / f"test-{HOST_ARCH}" / "build").resolve()
RUNTIME_SITE = ROOT / ".tools" / "lambda-runtime"
PLUGIN = Path(__file__).with_name("runtime_plugin.py")
REFERENCE_TASK = Path(__file__).with_name("reference")
REFERENCE = "Reference"
FLOOR = "Floor"  # reference/floor.py
STRIPE_KEY = "sk_test_bench_" + "b" * 24
TABLE_PREFIX = "bench-"
REPLY_TIMEOUT = 120
PAYMENTS = "/orders/api/payments/"
LIST_USER = 3  # seeded with LIST_ROWS payments (user 1 keeps the demo seed's two)
LIST_ROWS = 150

READ_FUNCTIONS = {"GetPaymentFunction", "ListPaymentsFunction"}
STRIPE_FUNCTIONS = {"CreateStripeOrderFunction", "StripeWebhookFunction", "ReconcilePaymentsFunction"}


def python313() -> str:
    found = subprocess.run([str(ROOT / "scripts" / "find-python3.13")], capture_output=True, text=True, check=False)
    if found.returncode != 0:
        raise SystemExit(f"the benchmark needs CPython 3.13 (Lambda's runtime):\n{found.stderr}")
    return found.stdout.strip()


def check_build(build_dir: Path = BUILD_DIR) -> Template:
    template = build_dir / "template.yaml"
    if not template.exists() or not (RUNTIME_SITE / "boto3").is_dir():
        raise SystemExit(f"no test build at {build_dir}: run `make build-test-artifacts` first")
    return Template(template)


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    n = len(ordered)

    def pct(p: float) -> float:
        if n == 1:
            return ordered[0]
        k = (n - 1) * p
        lo = int(k)
        hi = min(lo + 1, n - 1)
        return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)

    return {
        "n": n,
        "median": statistics.median(ordered),
        "p25": pct(0.25),
        "p75": pct(0.75),
        "p99": pct(0.99),
        "min": ordered[0],
        "max": ordered[-1],
    }


# --------------------------------------------------------------------------- the local world
logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's server logs every request


class World:
    """The embedded DynamoDB (moto) and the Stripe stand-in, the demo data, and the functions'
    environments. One per benchmark run; `reset()` gives fresh tables with fresh data.

    `code` is the checkout whose code creates the tables, writes the data and makes the Stripe
    checkout a webhook is about: None for this one (in this process); bench/ab.py sets another
    for a build made before a change of the tables or of what is in them."""

    def __init__(self) -> None:
        from local.dynamodb import EmbeddedDynamoDB
        from local.stripe_sandbox import StripeSandbox

        self.source = Template()
        self.built = check_build()
        self.python = python313()
        self.dynamodb_server = EmbeddedDynamoDB()
        endpoint = self.dynamodb_server.start()
        os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = endpoint
        self.endpoint = endpoint
        self.sandbox = StripeSandbox(
            api_key=STRIPE_KEY, webhook_secret=defaults.LOCAL_STRIPE_WEBHOOK_SECRET, quiet=True
        )
        self.sandbox.start()
        import boto3

        self.client = boto3.client("dynamodb")
        self.tables: dict[str, str] = {}
        self._secrets_created = False
        self.code: Path | None = None
        self._seed_path = _seed_file()
        self._seed = seed.load(self._seed_path)
        self.reset()

    def close(self) -> None:
        self.sandbox.stop()
        self.dynamodb_server.stop()
        self._seed_path.unlink()

    def reset(self) -> dict[str, str]:
        self.dynamodb_server.reset()
        self.sandbox.reset()
        import boto3

        Template().create_event_buses(boto3.client("events", endpoint_url=self.endpoint))
        if self.code is None:
            self.tables = Template().create_tables(self.client, prefix=TABLE_PREFIX)
            seed.apply(self._seed, self.client, self.tables)
        else:
            self.tables = self._in_code({"prefix": TABLE_PREFIX, "seed": str(self._seed_path)})["tables"]
        self._secrets_created = False
        return self.tables

    def _in_code(self, request: dict[str, Any]) -> dict[str, Any]:
        """Runs OTHER_CODE with self.code's code (and this process's endpoints and credentials)."""
        done = subprocess.run(
            [sys.executable, "-c", OTHER_CODE, str(self.code)],
            input=json.dumps(request),
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{self.code}'s code failed:\n{done.stderr[-4000:]}")
        answer: dict[str, Any] = json.loads(done.stdout)
        return answer

    def secret_values(self) -> dict[str, str]:
        """The template's secret ids (its parameters' defaults) -> the values the events are signed with."""
        values = {
            "JwtSecretName": defaults.LOCAL_JWT_SECRET,
            "StripeSecretKeyName": STRIPE_KEY,
            "StripeWebhookSecretName": defaults.LOCAL_STRIPE_WEBHOOK_SECRET,
            "PaymentWebhookSecretName": defaults.LOCAL_PAYMENT_WEBHOOK_SECRET,
        }
        return {self.source.parameters[name]: value for name, value in values.items()}

    def create_secrets(self) -> None:
        """The functions' secrets in the embedded AWS's Secrets Manager (moto), as they are in AWS."""
        if self._secrets_created:
            return
        import boto3

        manager = boto3.client("secretsmanager", endpoint_url=self.endpoint)
        for name, value in self.secret_values().items():
            manager.create_secret(Name=name, SecretString=value)
        self._secrets_created = True

    # ---- processes
    def function_ids(self) -> list[str]:
        return self.source.function_ids()

    def _built(self, build_dir: Path | None) -> tuple[Path, Template]:
        build_dir = build_dir or BUILD_DIR
        return build_dir, self.built if build_dir == BUILD_DIR else check_build(build_dir)

    def layers(self, logical_id: str, build_dir: Path | None = None) -> list[str]:
        """The built layer folders the function mounts (in the runtime, /opt)."""
        build_dir, built = self._built(build_dir)
        if logical_id == FLOOR:
            names = []
        elif logical_id == REFERENCE:
            names = ["PaymentsLayer"]
        else:
            names = built.function_layers(logical_id)
        return [str(build_dir / built.resources[name]["Properties"]["ContentUri"]) for name in names]

    def environment(
        self, logical_id: str, build_dir: Path | None = None, secrets_manager: bool = False
    ) -> dict[str, str]:
        build_dir, built = self._built(build_dir)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "TZ": "UTC",
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONNOUSERSITE": "1",
            "PYTHONUNBUFFERED": "1",
            "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_ENDPOINT_URL_DYNAMODB": self.endpoint,
            "AWS_ENDPOINT_URL_EVENTBRIDGE": self.endpoint,  # moto's EventBridge: PublishEventsFunction's bus
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
            SITE_PACKAGES_VARIABLE: str(RUNTIME_SITE),
            PLUGIN_VARIABLE: str(PLUGIN),
        }
        if logical_id == FLOOR:
            env.update(
                LAMBDA_TASK_ROOT=str(REFERENCE_TASK), _HANDLER="floor.lambda_handler", AWS_LAMBDA_FUNCTION_NAME=FLOOR
            )
            return env
        if logical_id == REFERENCE:
            env.update(
                LAMBDA_TASK_ROOT=str(REFERENCE_TASK),
                _HANDLER="app.lambda_handler",
                AWS_LAMBDA_FUNCTION_NAME=REFERENCE,
                AWS_LAMBDA_FUNCTION_MEMORY_SIZE="1024",
                AWS_LAMBDA_FUNCTION_TIMEOUT="30",
                JWT_SECRET=defaults.LOCAL_JWT_SECRET,
                POWERTOOLS_SERVICE_NAME="reference",
            )
            return env
        # The functions' configuration is this checkout's template's (an A/B's other build is
        # expected to read the same variables).
        self.source.use_table_names(self.tables)
        spec = self.source.function(logical_id)
        env.update(
            LAMBDA_TASK_ROOT=str(build_dir / logical_id),
            _HANDLER=built.function(logical_id).handler,
            AWS_LAMBDA_FUNCTION_NAME=logical_id,
            AWS_LAMBDA_FUNCTION_MEMORY_SIZE=str(spec.memory),
            AWS_LAMBDA_FUNCTION_TIMEOUT=str(spec.timeout),
        )
        env.update(function_environment(spec.environment))
        if "STRIPE_SECRET_KEY_SECRET_ID" in spec.environment:
            env.update(STRIPE_SECRET_KEY=STRIPE_KEY, STRIPE_API_BASE=self.sandbox.base_url)
        if secrets_manager:
            # As deployed: no secret in the environment, only `<NAME>_SECRET_ID`, read at cold start
            # (halum_payments/secrets.py) from Secrets Manager, here the embedded AWS's.
            self.create_secrets()
            for name, value in spec.environment.items():
                if name.endswith("_SECRET_ID"):
                    env.pop(name.removesuffix("_SECRET_ID"), None)
                    env[name] = value
            env["AWS_ENDPOINT_URL_SECRETS_MANAGER"] = self.endpoint
            env["AWS_ENDPOINT_URL_SSM"] = self.endpoint
        return env

    def spawn(self, logical_id: str, build_dir: Path | None = None, first: dict[str, Any] | None = None) -> Proc:
        """A runtime process of the function; `first`: its first request, sent at once."""
        return Proc(
            self.python, self.environment(logical_id, build_dir), self.layers(logical_id, build_dir), first=first
        )

    # ---- parent-side helpers for the flows
    def stripe_checkout_and_pay(self) -> dict[str, Any]:
        """A real Stripe checkout of user 1's cart (our checkout service, stripe-python, the stand-in),
        paid on the stand-in's checkout page: returns the `checkout.session.completed` event."""
        env = self.environment("CreateStripeOrderFunction")
        if self.code is None:
            from halum_payments import wiring
            from halum_payments.config import Settings
            from halum_payments.gateways.stripe_checkout import StripeCheckoutGateway

            gateway = StripeCheckoutGateway(
                STRIPE_KEY, api_base=self.sandbox.base_url, timeout=5.0, max_network_retries=0
            )
            service = wiring.stripe_checkout(Settings.from_env(env), gateway, self.client)
            session_id = service.from_cart(1, 1).session_id
        else:
            checkout = {"env": env, "key": STRIPE_KEY, "api_base": self.sandbox.base_url}
            session_id = self._in_code({"checkout": checkout})["session_id"]
        before = len(self.sandbox.deliveries)
        status, _ = self.sandbox.submit(f"/checkout/{session_id}/pay")
        assert status == 303, status
        (event,) = [d.event for d in self.sandbox.deliveries[before:]]
        assert event["type"] == "checkout.session.completed", event["type"]
        return event


def _seed_file() -> Path:
    """The demo seed plus LIST_ROWS payments (one order each) of user LIST_USER, for a full page: a
    seed file for the world's life (another checkout's code may have to read it)."""
    raw = json.loads(DEFAULT_SEED.read_text())
    start = 1000
    for i in range(LIST_ROWS):
        oid = start + i
        completed = i % 3 == 0
        day = f"2024-{1 + i // 28:02d}-{1 + i % 28:02d}T10:00:00Z"
        raw["orders"].append(
            {
                "id": oid,
                "user": LIST_USER,
                "status": "confirmed" if completed else "pending",
                "total_price": "425.50",
                "items": [{"variant": 4, "quantity": 1, "price": "425.50"}],
                "created_at": day,
            }
        )
        raw["payments"].append(
            {
                "id": oid,
                "order": oid,
                "user": LIST_USER,
                "amount": "425.50",
                "method": "ONLINE" if completed else "COD",
                "status": "completed" if completed else "pending",
                "transaction_id": f"txn_bench_{oid}" if completed else None,
                "created_at": day,
                "updated_at": day,
            }
        )
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(raw, handle)
    return Path(handle.name)


# Run by World._in_code in another checkout (argv[1]), with that checkout's code: its template's
# tables and its seed code, or a Stripe checkout of user 1's cart by its checkout service.
OTHER_CODE = """
import json, sys
from pathlib import Path
request = json.load(sys.stdin)
sys.path[:0] = [sys.argv[1] + "/layers/payments", sys.argv[1]]
import boto3
client = boto3.client("dynamodb")
answer = {}
if "seed" in request:
    from local import seed
    from local.template import Template
    answer["tables"] = Template().create_tables(client, prefix=request["prefix"])
    seed.apply(seed.load(Path(request["seed"])), client, answer["tables"])
else:
    from halum_payments import wiring
    from halum_payments.config import Settings
    from halum_payments.gateways.stripe_checkout import StripeCheckoutGateway
    c = request["checkout"]
    gateway = StripeCheckoutGateway(c["key"], api_base=c["api_base"], timeout=5.0, max_network_retries=0)
    service = wiring.stripe_checkout(Settings.from_env(c["env"]), gateway, client)
    answer["session_id"] = service.from_cart(1, 1).session_id
json.dump(answer, sys.stdout)
"""


# --------------------------------------------------------------------------- scenarios (events)
def _event_file(name: str) -> dict[str, Any]:
    path = event_files()[name]
    return prepare(name, json.loads(path.read_text()))


def _http(request: Any, function_dir: str, name: str) -> dict[str, Any]:
    return request.event(Template(), function_dir, name)


def _reference_event(method: str, path: str, body: Any = None) -> dict[str, Any]:
    from local.events import http_event
    from local.make_events import token

    headers = {"authorization": f"Bearer {token(1)}", "host": "api.example.com", "x-forwarded-proto": "https"}
    raw = None
    if body is not None:
        raw = json.dumps(body)
        headers["content-type"] = "application/json"
    return http_event(
        method, path, headers=headers, body=raw, domain_name="api.example.com", route_key=f"{method} {path}"
    )


def _stripe_completed(world: World) -> dict[str, Any]:
    event = world.stripe_checkout_and_pay()
    payload = json.dumps(event, indent=2)  # as Stripe sends it
    request = POST("/orders/api/stripe-webhook/", body=payload, headers={"content-type": "application/json"})
    return stripe_signed()(_http(request, "stripe_webhook", "bench/stripe_webhook"), int(time.time()))


def _key() -> dict[str, str]:
    return {"idempotency-key": f"bench-{uuid.uuid4().hex}"}


@dataclass(frozen=True)
class Scenario:
    name: str
    function: str
    build: Callable[[World], dict[str, Any]]
    expect: int | None = 200  # statusCode of the answer (None: not an HTTP function)
    compare_with: str | None = None  # the reference scenario for the warm ratio
    label: str = ""


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in [
        Scenario(
            "detail",
            "GetPaymentFunction",
            lambda w: _event_file("get_payment/ok"),
            200,
            "ref_detail",
            "GET payment (detail)",
        ),
        Scenario(
            "list",
            "ListPaymentsFunction",
            lambda w: _event_file("list_payments/ok"),
            200,
            "ref_list100",
            "GET payments (2 rows, demo user)",
        ),
        Scenario(
            "list100",
            "ListPaymentsFunction",
            lambda w: _http(GET(PAYMENTS, user=LIST_USER), "list_payments", "bench/list100"),
            200,
            "ref_list100",
            "GET payments (page of 100)",
        ),
        Scenario(
            "checkout",
            "CreateStripeOrderFunction",
            lambda w: _http(
                POST("/orders/api/create-stripe-order/", body={"shipping_address": 1}, user=1),
                "create_stripe_order",
                "bench/checkout",
            ),
            200,
            "ref_post",
            "Stripe checkout",
        ),
        Scenario(
            "checkout_key",
            "CreateStripeOrderFunction",
            lambda w: _http(
                POST("/orders/api/create-stripe-order/", body={"shipping_address": 1}, user=1, headers=_key()),
                "create_stripe_order",
                "bench/checkout_key",
            ),
            200,
            "ref_post",
            "Stripe checkout + Idempotency-Key",
        ),
        Scenario(
            "cod",
            "CreateCodOrderFunction",
            lambda w: _event_file("create_cod_order/ok"),
            201,
            "ref_post",
            "COD checkout",
        ),
        Scenario(
            "cod_key",
            "CreateCodOrderFunction",
            lambda w: _http(
                POST("/orders/api/create-cod/", body={"shipping_address": 1}, user=1, headers=_key()),
                "create_cod_order",
                "bench/cod_key",
            ),
            201,
            "ref_post",
            "COD checkout + Idempotency-Key",
        ),
        Scenario(
            "stripe_webhook",
            "StripeWebhookFunction",
            _stripe_completed,
            200,
            "ref_post",
            "Stripe webhook (checkout.session.completed)",
        ),
        Scenario(
            "gateway_webhook",
            "PaymentWebhookFunction",
            lambda w: _event_file("payment_webhook/payment_completed"),
            200,
            "ref_post",
            "gateway webhook (spec example)",
        ),
        Scenario(
            "reconcile",
            "ReconcilePaymentsFunction",
            lambda w: _event_file("reconcile_payments/scheduled"),
            None,
            None,
            "reconcile sweep (nothing open)",
        ),
        Scenario(
            "publish_events",
            "PublishEventsFunction",
            lambda w: _event_file("publish_events/order_placed_and_paid"),
            None,
            None,
            "audit stream batch -> domain events (not a request path)",
        ),
        Scenario(
            "ref_detail",
            REFERENCE,
            lambda w: _reference_event("GET", "/ref/items/1"),
            200,
            None,
            "reference: GET one item",
        ),
        Scenario(
            "ref_list100",
            REFERENCE,
            lambda w: _reference_event("GET", "/ref/items"),
            200,
            None,
            "reference: GET 100 items",
        ),
        Scenario(
            "ref_post",
            REFERENCE,
            lambda w: _reference_event("POST", "/ref/items", {"shipping_address": 1}),
            200,
            None,
            "reference: POST body -> item",
        ),
    ]
}

# The first request of each function's cold start: its most common real request.
COLD_FIRST = {
    "GetPaymentFunction": "detail",
    "ListPaymentsFunction": "list",
    "CreateStripeOrderFunction": "checkout",
    "CreateCodOrderFunction": "cod",
    "StripeWebhookFunction": "stripe_webhook",
    "PaymentWebhookFunction": "gateway_webhook",
    "ReconcilePaymentsFunction": "reconcile",
    "PublishEventsFunction": "publish_events",
    REFERENCE: "ref_detail",
}


def check_status(scenario: Scenario, response: Any) -> None:
    if scenario.expect is None:
        return
    status = response.get("statusCode") if isinstance(response, dict) else response
    if status != scenario.expect:
        body = response.get("body") if isinstance(response, dict) else None
        raise RuntimeError(f"{scenario.name}: status {status}, expected {scenario.expect}: {str(body)[:400]}")


# --------------------------------------------------------------------------- the process
class Proc(RuntimeProcess):
    """One runtime process (local/lambda_runtime.py with bench/runtime_plugin.py's ops): -S, a clean
    environment, the function's build as Lambda lays it out. An error answer raises."""

    def __init__(
        self,
        python: str,
        env: dict[str, str],
        layers: list[str],
        *,
        importtime: bool = False,
        first: dict[str, Any] | None = None,
    ) -> None:
        command = [python, "-S", *(["-X", "importtime"] if importtime else [])]
        super().__init__(command, layers, env, tempfile.TemporaryFile("w+"))  # noqa: SIM115 - closed by close()
        if first is not None:
            self.send(first)

    def receive(self, timeout: float = REPLY_TIMEOUT) -> dict[str, Any]:
        answer = super().receive(timeout)
        if answer.get("type") in ("error", "init_error"):
            raise RuntimeError(f"{answer['errorType']}: {answer['errorMessage']}\n--- output:\n{self.output()}")
        return answer

    def request(self, message: dict[str, Any], timeout: float = REPLY_TIMEOUT) -> dict[str, Any]:
        self.send(message)
        return self.receive(timeout)

    def close(self, timeout: float = 30) -> int:
        try:
            return super().close(timeout)
        finally:
            self.log.close()


def fresh_event(world: World, scenario: Scenario) -> dict[str, Any]:
    world.reset()
    return copy.deepcopy(scenario.build(world))
