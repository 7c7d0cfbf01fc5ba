"""`python -m local` (`make run`): the whole API from template.yaml, Docker-free.

Environment: HOST (127.0.0.1), PORT (3000; 0 picks a free port), SEED_FILE (local/seed.json;
`none` skips seeding), LOCAL_CONCURRENCY (workers per function, 4), AWS_ENDPOINT_URL_DYNAMODB (use
that DynamoDB instead of the embedded one), the functions' secrets (JWT_SECRET, ...; printed local
defaults otherwise) and settings (CURRENCY, STRIPE_API_BASE, ...).
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

from local import seed as seeding  # noqa: E402
from local.defaults import DEMO_USER, LOCAL_JWT_SECRET  # noqa: E402
from local.environment import FAKE_AWS, function_environment, secret_sources, secret_value  # noqa: E402
from local.server import (  # noqa: E402
    ApiServer,
    Gateway,
    default_local_routes,
    describe_routes,
    serve_in_background,
)
from local.tokens import DEMO_TTL_SECONDS, header_line  # noqa: E402

log = logging.getLogger("local")


@dataclass(frozen=True)
class Options:
    host: str
    port: int
    seed_file: Path | None
    concurrency: int
    dynamodb_endpoint: str | None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Options:
        seed = env.get("SEED_FILE", "").strip()
        return cls(
            host=env.get("HOST", "").strip() or "127.0.0.1",
            port=_int(env, "PORT", 3000, 0, 65535),
            seed_file=None if seed.lower() == "none" else Path(seed) if seed else seeding.DEFAULT_SEED,
            concurrency=_int(env, "LOCAL_CONCURRENCY", 4, 1, 64),
            dynamodb_endpoint=env.get("AWS_ENDPOINT_URL_DYNAMODB", "").strip() or None,
        )


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise ValueError(f"{name} must be an integer from {low} to {high}, not {raw!r}")
    return int(raw)


def ensure_tables(template: Template, client: Any) -> list[str]:
    """Create the template's tables that do not exist yet (named by logical id); the created ones."""
    existing: set[str] = set()
    for page in client.get_paginator("list_tables").paginate():
        existing.update(page["TableNames"])
    created = []
    for logical_id in template.table_ids():
        if logical_id in existing:
            continue
        client.create_table(**template.create_table_request(logical_id, logical_id))
        client.get_waiter("table_exists").wait(TableName=logical_id, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
        ttl = template.resources[logical_id]["Properties"].get("TimeToLiveSpecification")
        if ttl and ttl.get("Enabled"):
            client.update_time_to_live(
                TableName=logical_id, TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": True}
            )
        created.append(logical_id)
    template.use_table_names({logical_id: logical_id for logical_id in template.table_ids()})
    return created


def main(server_env: Mapping[str, str] | None = None) -> int:
    _configure_logging()
    server_env = dict(os.environ if server_env is None else server_env)
    try:
        options = Options.from_env(server_env)
    except ValueError as exc:
        print(f"local server: {exc}", file=sys.stderr)
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

        specs = TEMPLATE.functions()
        environments = {
            spec.logical_id: function_environment(spec, server_env, dynamodb_endpoint=endpoint) for spec in specs
        }
        if seed is None:
            seed_summary = "none (SEED_FILE=none)"
        elif "PaymentsTable" not in created:
            seed_summary = "skipped: the tables already existed, their data is kept"
        else:
            currency = next((env["CURRENCY"] for env in environments.values() if env.get("CURRENCY")), "usd")
            counts = seeding.apply(seed, client, {t: t for t in TEMPLATE.table_ids()}, currency)
            seed_summary = f"{options.seed_file}: " + ", ".join(f"{n} {name}" for name, n in counts.items())

        secrets = secret_sources(specs, server_env)
        gateway = Gateway(specs, environments, TEMPLATE.layer_dirs(), options.concurrency)
        cleanup.callback(gateway.close)
        local_routes = default_local_routes()
        try:
            httpd = ApiServer((options.host, options.port), gateway, local_routes)
        except OSError as exc:
            print(f"local server: cannot listen on {options.host}:{options.port}: {exc}", file=sys.stderr)
            return 1
        cleanup.callback(httpd.server_close)
        serve_in_background(httpd)
        cleanup.callback(httpd.shutdown)  # runs first: stop accepting, then workers, then DynamoDB

        base_url = f"http://{options.host}:{httpd.port}"
        jwt_secret = secret_value("JWT_SECRET", server_env)[0] or LOCAL_JWT_SECRET
        lines = [
            f"Halum Hut payments, local API Gateway + Lambda from {TEMPLATE.path.name} on {base_url}",
            f"  DynamoDB: {store}",
            f"  Seed:     {seed_summary}",
            f"  Workers:  up to {options.concurrency} per function (LOCAL_CONCURRENCY)",
            "  Secrets:",
            *(f"    {name}: {_describe_secret(name, source, jwt_secret)}" for name, source in secrets.items()),
            "  Routes:",
            *(f"    {route:<48} {function}" for route, function in describe_routes(gateway, local_routes)),
            "",
            f"Demo user {DEMO_USER} (valid {DEMO_TTL_SECONDS // 3600} h; `python -m local.tokens USER_ID` for others):",
            header_line(DEMO_USER, jwt_secret),
            "",
            f"Ready on {base_url}",
        ]
        print("\n".join(lines), flush=True)
        gateway.warm()
        stop.wait()
        log.info("stopping")
    return 0


def _describe_secret(name: str, source: str, jwt_secret: str) -> str:
    if source == "environment":
        return "from the environment"
    if source == "not set":
        return "not set (what needs it answers as not configured)"
    # The JWT default is printed: developers sign their own tokens with it (python -m local.tokens).
    return f"local default {jwt_secret!r}" if name == "JWT_SECRET" else "local default"


def _configure_logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
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
