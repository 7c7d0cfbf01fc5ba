"""`python -m local` (`make run`): the whole API from template.yaml, Docker-free.

Environment: HOST (127.0.0.1), PORT (3000; 0 picks a free port), CORS_ALLOW_ORIGIN (the template's
CorsAllowOrigin, for a local front end's origin), SEED_FILE (local/seed.json;
`none` skips seeding), LOCAL_CONCURRENCY (workers per function, 4), AWS_ENDPOINT_URL_DYNAMODB (use
that DynamoDB instead of the embedded one), the functions' secrets (JWT_SECRET, ...; printed local
defaults otherwise) and settings (CURRENCY, RECONCILE_AFTER_MINUTES, ...).

Events: each domain event is printed as published; EVENTS_TARGET_URL (a URL) gets each POSTed
as an EventBridge target would (docs/events.md).

Stripe: without STRIPE_SECRET_KEY a local Stripe sandbox runs on STRIPE_SANDBOX_PORT (12111; 0
picks a free port) and the Stripe functions talk to it; STRIPE_SANDBOX=0 turns it off (then
create-stripe-order answers 503). With a real key, forward Stripe's webhooks with `stripe listen`.
"""

from __future__ import annotations

import sys

from local.template import Template

TEMPLATE = Template()
# This process writes the seed through the layer's repositories: the layer is importable here too.
sys.path[:0] = [str(path) for path in TEMPLATE.layer_dirs() if str(path) not in sys.path]

import contextlib  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import threading  # noqa: E402
from collections.abc import Mapping  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from types import FrameType  # noqa: E402
from typing import Any  # noqa: E402

from local import pages  # noqa: E402
from local import seed as seeding  # noqa: E402
from local.console import ConsoleHandler, console  # noqa: E402
from local.defaults import DEMO_USER, LOCAL_JWT_SECRET  # noqa: E402
from local.environment import (  # noqa: E402
    FAKE_AWS,
    LOCAL_SECRET_DEFAULTS,
    LOCAL_STRIPE_SANDBOX_KEY,
    function_environment,
    secret_sources,
    secret_value,
    stripe_sandbox_wanted,
)
from local.event_bus import LocalEventBus  # noqa: E402
from local.routing import Cors, InvalidRoute, Router  # noqa: E402
from local.server import (  # noqa: E402
    RECONCILE_PATH,
    ApiServer,
    Gateway,
    default_local_routes,
    describe_routes,
    serve_in_background,
)
from local.streams import NoStream, Poller, Result, StreamMapping, dead_letter_to_console  # noqa: E402
from local.stripe_sandbox import DEFAULT_PORT as STRIPE_SANDBOX_DEFAULT_PORT  # noqa: E402
from local.stripe_sandbox import StripeSandbox  # noqa: E402
from local.template import FunctionSpec, ensure_tables  # noqa: E402
from local.tokens import DEMO_TTL_SECONDS, mint  # noqa: E402
from local.workers import Outcome  # noqa: E402

log = logging.getLogger("local")
EVENTS_TARGET_URL = "EVENTS_TARGET_URL"  # where `make run` POSTs each domain event (docs/events.md)
STRIPE_WEBHOOK_FUNCTION = "StripeWebhookFunction"
IN_MEMORY = "The data lives in this process's memory: stop it (Ctrl-C) and start it again to reset it."


@dataclass(frozen=True)
class Options:
    host: str
    port: int
    seed_file: Path | None
    concurrency: int
    dynamodb_endpoint: str | None
    stripe_sandbox: bool
    stripe_sandbox_port: int

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Options:
        seed = env.get("SEED_FILE", "").strip()
        return cls(
            host=env.get("HOST", "").strip() or "127.0.0.1",
            port=_int(env, "PORT", 3000, 0, 65535),
            seed_file=None if seed.lower() == "none" else Path(seed) if seed else seeding.DEFAULT_SEED,
            concurrency=_int(env, "LOCAL_CONCURRENCY", 4, 1, 64),
            dynamodb_endpoint=env.get("AWS_ENDPOINT_URL_DYNAMODB", "").strip() or None,
            stripe_sandbox=stripe_sandbox_wanted(env),
            stripe_sandbox_port=_int(env, "STRIPE_SANDBOX_PORT", STRIPE_SANDBOX_DEFAULT_PORT, 0, 65535),
        )


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise ValueError(f"{name} must be an integer from {low} to {high}, not {raw!r}")
    return int(raw)


def main(server_env: Mapping[str, str] | None = None) -> int:
    _configure_logging()
    server_env = dict(os.environ if server_env is None else server_env)
    try:
        options = Options.from_env(server_env)
    except ValueError as exc:
        print(f"local server: {exc}", file=sys.stderr)
        return 2
    try:  # a route AWS would refuse stops the start, before anything is started
        Router.from_specs(TEMPLATE.functions())
    except InvalidRoute as exc:
        print(f"local server: {TEMPLATE.path.name}: {exc}", file=sys.stderr)
        return 2
    stop = _stop_on_signals()

    seed = None
    if options.seed_file is not None:
        try:
            seed = seeding.load(options.seed_file)
        except seeding.SeedError as exc:
            print(f"Seed file rejected: {exc}", file=sys.stderr)
            return 2

    # This process only ever talks to the local DynamoDB: never to AWS with a developer's profile.
    os.environ.pop("AWS_PROFILE", None)
    os.environ.update(FAKE_AWS)
    import boto3

    with contextlib.ExitStack() as cleanup:
        if options.dynamodb_endpoint:
            endpoint, store = options.dynamodb_endpoint, f"DynamoDB at {options.dynamodb_endpoint}"
        else:
            from local.dynamodb import EmbeddedDynamoDB

            embedded = EmbeddedDynamoDB()
            endpoint = embedded.start()
            cleanup.callback(embedded.stop)
            store = f"embedded (moto) at {endpoint}"
        client = boto3.client("dynamodb", endpoint_url=endpoint)
        created = ensure_tables(TEMPLATE, client)

        # Bind before building the functions' environment: it holds this server's URL (PORT=0).
        try:
            httpd = ApiServer((options.host, options.port))
        except OSError as exc:
            print(f"local server: cannot listen on {options.host}:{options.port}: {exc}", file=sys.stderr)
            return 1
        cleanup.callback(httpd.server_close)
        base_url = httpd.local_url

        specs = TEMPLATE.functions()
        webhook_url = base_url + _webhook_path(specs)
        sandbox = None
        if options.stripe_sandbox:
            try:
                sandbox = _start_sandbox(options, server_env, webhook_url)
            except OSError as exc:
                print(
                    f"local server: the Stripe sandbox cannot listen on {options.host}:{options.stripe_sandbox_port}: "
                    f"{exc} (STRIPE_SANDBOX_PORT=0 picks a free port; STRIPE_SANDBOX=0 turns it off)",
                    file=sys.stderr,
                )
                return 1
            cleanup.callback(sandbox.stop)
        # The deployed site's checkout return pages are not here: default to the local ones.
        checkout_pages = {
            "CHECKOUT_SUCCESS_URL": pages.success_url(base_url),
            "CHECKOUT_CANCEL_URL": pages.cancel_url(base_url),
        }
        environments = {
            spec.logical_id: function_environment(
                spec,
                server_env,
                dynamodb_endpoint=endpoint,
                setting_defaults=checkout_pages,
                stripe_sandbox=sandbox.base_url if sandbox else None,
            )
            for spec in specs
        }
        events = _start_event_bus(server_env, environments)
        if events is not None:
            cleanup.callback(events.stop)
        if seed is None:
            seed_summary = "none (SEED_FILE=none)"
        elif "PaymentsTable" not in created:
            seed_summary = "skipped: the tables already existed, their data is kept"
        else:
            currency = next((env["CURRENCY"] for env in environments.values() if env.get("CURRENCY")), "usd")
            counts = seeding.apply(seed, client, {t: t for t in TEMPLATE.table_ids()}, currency)
            seed_summary = f"{options.seed_file}: " + ", ".join(f"{n} {name}" for name, n in counts.items())

        secrets = secret_sources(specs, server_env)
        # The template's CorsAllowOrigin parameter; a local front end sets its own origin.
        if origin := server_env.get("CORS_ALLOW_ORIGIN", "").strip():
            TEMPLATE.parameters["CorsAllowOrigin"] = origin
        cors_config = TEMPLATE.http_api_cors()
        cors = Cors.from_config(cors_config) if cors_config else None
        gateway = Gateway(specs, environments, TEMPLATE.layer_dirs(), options.concurrency, cors)
        cleanup.callback(gateway.close)
        dashboard = f"{sandbox.public_url}/" if sandbox else None
        local_routes = default_local_routes(
            checkout_sessions=_session_lookup(sandbox) if sandbox else None, stripe_dashboard=dashboard
        )
        httpd.gateway, httpd.local_routes = gateway, local_routes
        poller = _stream_mappings(gateway, boto3.client("dynamodbstreams", endpoint_url=endpoint))
        poller.start()
        cleanup.callback(poller.stop)
        serve_in_background(httpd)
        cleanup.callback(httpd.shutdown)  # runs first: stop accepting, then workers, the sandbox, DynamoDB

        jwt_secret = secret_value("JWT_SECRET", server_env)[0] or LOCAL_JWT_SECRET
        token = mint(DEMO_USER, jwt_secret)
        lines = [
            f"Halum Hut payments, local API Gateway + Lambda from {TEMPLATE.path.name} on {base_url}",
            f"  DynamoDB: {store}",
            f"  Seed:     {seed_summary}",
            f"  Workers:  up to {options.concurrency} per function (LOCAL_CONCURRENCY)",
            *_describe_stripe(sandbox, server_env, webhook_url),
            *_describe_events(events),
            "  Secrets:",
            *(
                f"    {name}: {_describe_secret(name, source, jwt_secret, sandbox is not None)}"
                for name, source in secrets.items()
            ),
            "  Routes:",
            *(f"    {route:<48} {function}" for route, function in describe_routes(gateway, local_routes)),
            "",
            f"Demo user {DEMO_USER} (valid {DEMO_TTL_SECONDS // 3600} h; `make token USER_ID=2` for another user):",
            f"Authorization: Bearer {token}",
            *(_stripe_demo(base_url, token) if sandbox or _has_key(server_env) else []),
            "",
            *([] if options.dynamodb_endpoint else [IN_MEMORY]),
            f"Ready on {base_url}",
        ]
        print("\n".join(lines), flush=True)
        gateway.warm()
        # Wake up now and then: Python runs signal handlers only in the main thread, and a blocked
        # wait() is not woken when the kernel hands SIGTERM to another thread (a busy start-up).
        while not stop.wait(0.25):
            pass
        log.info("stopping")
    console().flush()  # the last lines (workers' included) before the process ends
    return 0


def _start_event_bus(server_env: Mapping[str, str], environments: dict[str, dict[str, str]]) -> LocalEventBus | None:
    """The EventBridge bus's stand-in, for the functions that declare AWS_ENDPOINT_URL_EVENTBRIDGE."""
    publishers = [env for env in environments.values() if "AWS_ENDPOINT_URL_EVENTBRIDGE" in env]
    if not publishers:
        return None
    target = server_env.get(EVENTS_TARGET_URL, "").strip() or None
    bus = LocalEventBus(publishers[0].get("EVENT_BUS_NAME", "default"), target)
    url = bus.start()
    for env in publishers:
        env["AWS_ENDPOINT_URL_EVENTBRIDGE"] = url
    return bus


def _stream_mappings(gateway: Gateway, streams: Any) -> Poller:
    """The stream event source mappings of the template, invoking their functions through the gateway."""
    mappings = []
    for spec in TEMPLATE.stream_mappings():

        def invoke(event: dict[str, Any], function: str = spec.function) -> Result:
            invocation = gateway.invoke(function, event)
            return Result(invocation.outcome is Outcome.OK, invocation.result)

        table = TEMPLATE.table_names.get(spec.table, spec.table)
        try:
            mappings.append(StreamMapping.for_table(spec, streams, table, invoke, dead_letter_to_console(spec)))
        except NoStream as exc:  # an AWS_ENDPOINT_URL_DYNAMODB whose tables predate the stream
            log.warning("%s: %s; no domain events until the table is created again", spec.logical_id, exc)
    return Poller(mappings)


def _describe_events(bus: LocalEventBus | None) -> list[str]:
    if bus is None:
        return []
    target = f"each POSTed to {bus.target_url}" if bus.target_url else f"set {EVENTS_TARGET_URL} to POST each to a URL"
    return [f"  Events:   domain events printed here as published ({target})"]


def _webhook_path(specs: list[FunctionSpec]) -> str:
    """Where this server mounts Stripe's webhook (the Function URL's local path in the template)."""
    spec = next(spec for spec in specs if spec.logical_id == STRIPE_WEBHOOK_FUNCTION)
    return spec.local_path or "/"


def _has_key(server_env: Mapping[str, str]) -> bool:
    return secret_value("STRIPE_SECRET_KEY", server_env, {})[0] is not None


def _start_sandbox(options: Options, server_env: Mapping[str, str], webhook_url: str) -> StripeSandbox:
    # It signs with the secret the webhook function verifies (the first one during a rotation).
    secret = secret_value("STRIPE_WEBHOOK_SECRET", server_env)[0] or LOCAL_SECRET_DEFAULTS["STRIPE_WEBHOOK_SECRET"]
    sandbox = StripeSandbox(
        options.host,
        options.stripe_sandbox_port,
        api_key=LOCAL_STRIPE_SANDBOX_KEY,
        webhook_url=webhook_url,
        webhook_secret=secret.split(",")[0].strip(),
        public_url=server_env.get("STRIPE_SANDBOX_PUBLIC_URL", "").strip() or None,
        # Longer than Stripe's wait: the first delivery may meet the webhook function's cold start
        # on a busy laptop (up to the worker's 30 s init limit), and a retry would only queue behind it.
        delivery_timeout=45.0,
    )
    sandbox.start()
    return sandbox


def _session_lookup(sandbox: StripeSandbox) -> pages.SessionLookup:
    def lookup(session_id: str) -> dict[str, Any] | None:
        try:
            return sandbox.session(session_id)
        except KeyError:
            return None

    return lookup


def _describe_stripe(sandbox: StripeSandbox | None, server_env: Mapping[str, str], webhook_url: str) -> list[str]:
    if sandbox is not None:
        return [
            f"  Stripe:   sandbox (test mode, no account) at {sandbox.base_url}, dashboard {sandbox.public_url}/",
            f"            its signed events go to {webhook_url} (STRIPE_SANDBOX=0 turns it off)",
        ]
    if _has_key(server_env):
        api = server_env.get("STRIPE_API_BASE", "").strip()
        return [
            f"  Stripe:   STRIPE_SECRET_KEY from the environment (no sandbox){f', API at {api}' if api else ''}.",
            "            Forward Stripe's webhooks here with",
            f"              stripe listen --forward-to {webhook_url}",
            "            and start this server with STRIPE_WEBHOOK_SECRET set to the whsec_... secret it prints.",
        ]
    return ["  Stripe:   off (STRIPE_SANDBOX=0 and no STRIPE_SECRET_KEY): create-stripe-order answers 503"]


def _stripe_demo(base_url: str, token: str) -> list[str]:
    auth = '-H "Authorization: Bearer $TOKEN"'
    return [
        "",
        f"Stripe checkout of demo user {DEMO_USER}'s cart (paste into a shell):",
        f"  TOKEN={token}",
        f"  curl -s -X POST {base_url}/orders/api/create-stripe-order/ {auth} "
        """-H 'Content-Type: application/json' -d '{"shipping_address": 1}'""",
        '  # open the "url" it answers in a browser and press Pay; then list the payments:',
        f"  curl -s {base_url}/orders/api/payments/ {auth}",
        f"  # a webhook lost (dashboard: pause webhooks)? settle it now: make reconcile (POST {RECONCILE_PATH})",
    ]


def _describe_secret(name: str, source: str, jwt_secret: str, sandbox: bool) -> str:
    if name == "STRIPE_SECRET_KEY" and sandbox:
        return "the local Stripe sandbox's test key"
    if source == "environment":
        return "from the environment"
    if source == "not set":
        return "not set (what needs it answers as not configured)"
    # The JWT default is printed: developers sign their own tokens with it (python -m local.tokens).
    return f"local default {jwt_secret!r}" if name == "JWT_SECRET" else "local default"


def _configure_logging() -> None:
    handler = ConsoleHandler(console())  # request threads queue their lines, never wait on stderr
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    # moto's HTTP server logs every DynamoDB call at INFO, and boto3 its credential lookup.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    logging.getLogger("botocore").setLevel(logging.WARNING)


def _stop_on_signals() -> threading.Event:
    """SIGINT/SIGTERM ask for a clean stop; a second one stops at once (the default action)."""
    stop = threading.Event()

    def handle(signum: int, frame: FrameType | None) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_DFL)
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, handle)
    return stop


if __name__ == "__main__":
    sys.exit(main())
