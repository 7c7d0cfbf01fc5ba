"""The `sam build` output works as Lambda runs it: every function, every one of its events/ files.

What `sam local invoke` would check in its container, without Docker: for each function in
template.yaml, CPython 3.13 is started on the build for this machine's architecture
(`make build-test-artifacts`, which `make test` runs first) in local/lambda_runtime.py, the Lambda
runtime emulator the local server and the benchmark use too, with sys.path laid out as on Lambda:
the function's build folder as /var/task, the built layer as /opt, a boto3 standing in for the
runtime's, the standard library, and nothing from the repository or a virtualenv; bytecode is not
written (Lambda's file system is read-only). It imports the template's Handler, then invokes it with
each of the function's events/ files against the embedded DynamoDB, on fresh demo data each time,
and checks events/expected.json. A requirement missing from the layer, a module that only the
repository provides, or a wrong Handler fails here rather than in AWS.
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import textwrap
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest

from local import seed
from local.lambda_runtime import SITE_PACKAGES_VARIABLE as RUNTIME_SITE_VARIABLE
from local.lambda_runtime import RuntimeProcess
from local.make_events import check_response, event_files, function_environment, load_manifest, prepare
from local.seed import DEFAULT_SEED
from local.template import ROOT, Template

pytestmark = pytest.mark.build

HOST_ARCH = {"aarch64": "arm64", "arm64": "arm64"}.get(platform.machine(), "x86_64")
BUILD_DIR = ROOT / ".aws-sam" / f"test-{HOST_ARCH}" / "build"
RUNTIME_SITE = ROOT / ".tools" / "lambda-runtime"  # boto3 for 3.13, as Lambda's runtime provides it
LAYER_SOURCE = ROOT / "layers" / "payments"
REBUILD = "run `make build-test-artifacts` (`make test` does it first)"
REPLY_TIMEOUT = 60

SOURCE = Template()
FUNCTION_IDS = SOURCE.function_ids()


def _ignored(path: Path) -> bool:
    return "__pycache__" in path.parts or path.suffix == ".pyc"


def _source_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and not _ignored(p))


@pytest.fixture(scope="module")
def python313() -> str:
    found = subprocess.run([str(ROOT / "scripts" / "find-python3.13")], capture_output=True, text=True, check=False)
    if found.returncode != 0:
        pytest.fail(f"the build test needs CPython 3.13 (Lambda's runtime):\n{found.stderr}")
    return found.stdout.strip()


@pytest.fixture(scope="module")
def built() -> Template:
    template = BUILD_DIR / "template.yaml"
    if not template.exists():
        pytest.fail(f"no build for {HOST_ARCH} at {BUILD_DIR.relative_to(ROOT)}: {REBUILD}")
    if not (RUNTIME_SITE / "boto3").is_dir():
        pytest.fail(f"no stand-in for the runtime's boto3 at {RUNTIME_SITE.relative_to(ROOT)}: {REBUILD}")
    return Template(template)


def _layer_dirs(built: Template, logical_id: str) -> list[Path]:
    """The built layers a function uses, in order (Lambda extracts them all into /opt)."""
    dirs = []
    for name in built.function_layers(logical_id):
        if name not in built.resources:
            pytest.fail(f"{logical_id}: layer {name!r} is not a layer of this template")
        dirs.append(BUILD_DIR / built.resources[name]["Properties"]["ContentUri"])
    return dirs


def _stale(source: Path, target: Path) -> list[str]:
    stale = []
    for path in _source_files(source):
        copy = target / path.relative_to(source)
        if not copy.exists() or copy.read_bytes() != path.read_bytes():
            stale.append(str(path.relative_to(ROOT)))
    return stale


def _layer_site(built: Template) -> Path:
    assert "PaymentsLayer" in built.resources, "the built template has no PaymentsLayer"
    return BUILD_DIR / built.resources["PaymentsLayer"]["Properties"]["ContentUri"] / "python"


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


# --------------------------------------------------------------------------- the layer
def test_layer_is_current(built):
    site = _layer_site(built)
    stale = _stale(LAYER_SOURCE / "halum_payments", site / "halum_payments")
    assert not stale, f"the build is older than {stale[:5]}: {REBUILD}"
    installed = set()
    for dist_info in site.glob("*.dist-info"):
        name, version = dist_info.name.removesuffix(".dist-info").rsplit("-", 1)
        installed.add((_normalise(name), version))
    for line in (LAYER_SOURCE / "requirements.txt").read_text().splitlines():
        requirement = line.split("#", 1)[0].strip()
        if requirement:
            name, _, version = requirement.partition("==")
            assert (_normalise(name), version) in installed, f"the built layer lacks {requirement}: {REBUILD}"


def test_layer_leaves_boto3_to_the_runtime(built):
    site = _layer_site(built)
    shipped = [name for name in ("boto3", "botocore", "s3transfer") if (site / name).exists()]
    assert not shipped, f"the layer ships {shipped}: Lambda's runtime provides them"


def test_layer_ships_unchecked_hash_bytecode_for_python313(built, python313):
    """Lambda cannot write bytecode to /opt: without it, every cold start compiles the layer again."""
    magic = subprocess.run(
        [python313, "-c", "import importlib.util; print(importlib.util.MAGIC_NUMBER.hex())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    makefile = (LAYER_SOURCE / "Makefile").read_text()
    skip = re.search(r"^NO_BYTECODE := (.*)$", makefile, re.M)
    skip_pattern = skip.group(1).strip() if skip and skip.group(1).strip() else None
    site = _layer_site(built)
    problems = []
    sources = [p for p in site.rglob("*.py") if not (skip_pattern and re.search(skip_pattern, str(p)))]
    for source in sources:
        pyc = source.parent / "__pycache__" / f"{source.stem}.cpython-313.pyc"
        if not pyc.exists():
            problems.append(f"{source.relative_to(site)}: no {pyc.name}")
            continue
        header = pyc.read_bytes()[:8]
        flags = int.from_bytes(header[4:8], "little")
        if header[:4].hex() != magic:
            problems.append(f"{pyc.relative_to(site)}: not Python 3.13 bytecode")
        elif flags != 0b01:  # hash-based (bit 0), source not checked (bit 1 clear)
            problems.append(f"{pyc.relative_to(site)}: flags {flags:#b}, not unchecked-hash")
    assert len(sources) > 100
    assert not problems, f"{len(problems)} of {len(sources)} modules: {problems[:10]}"


def test_layer_loads_only_the_powertools_resolver_and_event_class_in_use(built, python313):
    """layers/lazy_reexports.py: every exported name still resolves (resolvers, event classes,
    parameter providers), but the HTTP resolver alone no longer drags in AppSync (and asyncio),
    Bedrock or the Kinesis/S3/SQS event classes."""
    probe = textwrap.dedent(
        """
        import json, sys
        sys.path[:0] = sys.argv[1:]
        from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
        unused = ("asyncio", ".event_handler.appsync", ".event_handler.bedrock",
                  "kinesis_stream_event", "data_classes.s3_event", "sqs_event")
        loaded = sorted(m for m in sys.modules if any(m == u or m.endswith(u) or u + "." in m for u in unused))
        import aws_lambda_powertools.event_handler as handlers
        import aws_lambda_powertools.utilities.data_classes as events
        import aws_lambda_powertools.utilities.parameters as parameters
        packages = (handlers, events, parameters)
        missing = [f"{p.__name__}.{n}" for p in packages for n in p.__all__ if getattr(p, n, None) is None]
        count = sum(len(p.__all__) for p in packages)
        print(json.dumps({"loaded_before_use": loaded, "missing": missing, "count": count}))
        """
    )
    site = _layer_site(built)
    result = subprocess.run(
        [python313, "-S", "-c", probe, str(site), str(RUNTIME_SITE)],
        capture_output=True,
        text=True,
        check=False,
        env={"PYTHONDONTWRITEBYTECODE": "1", "PATH": os.environ.get("PATH", "")},
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["loaded_before_use"] == []
    assert report["missing"] == []
    assert report["count"] > 75


# --------------------------------------------------------------------------- the functions
def _environment(spec: Any, built: Template, tables: dict[str, str], endpoint: str) -> dict[str, str]:
    SOURCE.use_table_names(tables)
    function_env = function_environment(SOURCE.function(spec.logical_id).environment)
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "TZ": "UTC",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONNOUSERSITE": "1",
        "PYTHONUNBUFFERED": "1",
        "LAMBDA_TASK_ROOT": str(BUILD_DIR / spec.logical_id),
        "_HANDLER": built.function(spec.logical_id).handler,
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
        "AWS_LAMBDA_FUNCTION_NAME": spec.logical_id,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory),
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_ENDPOINT_URL_DYNAMODB": endpoint,
        "AWS_ENDPOINT_URL_EVENTBRIDGE": endpoint,  # moto's EventBridge: PublishEventsFunction's bus
        "AWS_CONFIG_FILE": os.devnull,  # no profiles, no instance metadata: nothing reaches AWS
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_LAMBDA_FUNCTION_TIMEOUT": str(spec.timeout),
        RUNTIME_SITE_VARIABLE: str(RUNTIME_SITE),
        **function_env,
    }


@pytest.mark.parametrize("logical_id", FUNCTION_IDS)
def test_built_function_answers_its_events(logical_id, built, python313, dynamodb_server, dynamodb):
    spec = SOURCE.function(logical_id)
    task = BUILD_DIR / logical_id
    if logical_id not in built.resources or not task.is_dir():
        pytest.fail(f"{logical_id} is not in the build: {REBUILD}")
    stale = _stale(spec.code_uri, task)
    assert not stale, f"the build is older than {stale}: {REBUILD}"

    function_dir = spec.code_uri.name
    events = {name: path for name, path in event_files().items() if name.split("/", 1)[0] == function_dir}
    expected = load_manifest()
    prefix = f"b{uuid.uuid4().hex[:8]}-"

    def fresh_tables() -> dict[str, str]:
        dynamodb_server.reset()
        Template().create_event_buses(boto3.client("events", endpoint_url=dynamodb_server.endpoint))
        names = Template().create_tables(dynamodb, prefix=prefix)
        seed.apply(seed.load(DEFAULT_SEED), dynamodb, names)
        return names

    tables = fresh_tables()
    layers = [str(d) for d in _layer_dirs(built, logical_id)]
    with tempfile.TemporaryFile("w+") as log:
        # -S and a clean environment: nothing from the repository or a virtualenv is importable.
        env = _environment(spec, built, tables, dynamodb_server.endpoint)
        runner = RuntimeProcess([python313, "-S"], layers, env, log)
        started = runner.receive(REPLY_TIMEOUT)
        if started["type"] == "init_error":
            handler = built.function(logical_id).handler
            pytest.fail(f"{logical_id} (Handler {handler}) fails to start:\n{runner.output()}")
        failures = []
        for name, path in sorted(events.items()):
            if name not in expected:
                failures.append(f"{name}: no entry in events/expected.json")
                continue
            fresh_tables()
            reply = runner.request({"event": prepare(name, json.loads(path.read_text()))}, REPLY_TIMEOUT)
            if reply["type"] != "result":
                failures.append(f"{name}: raised {reply['errorType']}: {reply['errorMessage']}")
                continue
            problem = check_response(name, reply["result"], expected[name])
            if problem:
                failures.append(problem)
        final = runner.request({"op": "foreign_modules"}, REPLY_TIMEOUT)
        assert runner.close(REPLY_TIMEOUT) == 0, runner.output()
        assert not failures, "\n".join(failures) + f"\n--- function output:\n{runner.output()}"
    assert not final["foreign"], f"modules loaded from outside the build, layer and runtime: {final['foreign']}"
    print(f"{logical_id}: cold init {started['initMs']} ms, {len(events)} events", file=sys.stderr)
