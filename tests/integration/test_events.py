"""Every file in events/ is fed to its function's handler and must answer what events/expected.json says.

Each event runs on fresh tables with the demo data (local/seed.json), in a freshly imported
handler (a cold start) configured with the function's environment from template.yaml and the
local secrets the events are signed for. The files, the manifest and the template must agree:
no file without an expectation, no expectation without a file, no events/ folder that is not a
function's, no function without an event, and no file that local/make_events.py would not write.
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any

import pytest

from halum_payments.observability import logger
from local.events import LambdaContext
from local.make_events import (
    EVENTS_DIR,
    MANIFEST,
    check_response,
    differences,
    event_files,
    function_environment,
    load_manifest,
    prepare,
)
from local.template import Template

FUNCTIONS = {spec.code_uri.name: spec for spec in Template().functions()}
FILES = event_files()
EXPECTED: dict[str, Any] = load_manifest() if MANIFEST.exists() else {}
REGENERATE = "regenerate with `python -m local.make_events` (cases live in local/make_events.py)"


def environment(logical_id: str, tables: dict[str, str]) -> dict[str, str]:
    """The function's variables from template.yaml (its tables, its secrets as local values)."""
    template = Template()
    template.use_table_names(tables)
    return function_environment(template.function(logical_id).environment)


def test_every_event_file_has_an_expectation():
    missing = sorted(set(FILES) - set(EXPECTED))
    assert not missing, f"event files with no entry in {MANIFEST.name}: {missing}; {REGENERATE}"


def test_every_expectation_has_an_event_file():
    missing = sorted(set(EXPECTED) - set(FILES))
    assert not missing, f"{MANIFEST.name} entries with no event file: {missing}; {REGENERATE}"


def test_every_events_folder_belongs_to_a_function():
    folders = {path.name for path in EVENTS_DIR.iterdir() if path.is_dir()}
    unknown = sorted(folders - set(FUNCTIONS))
    assert not unknown, f"events/ folders that match no function's CodeUri in template.yaml: {unknown}"


def test_every_function_has_events():
    covered = {name.split("/", 1)[0] for name in FILES}
    missing = sorted(set(FUNCTIONS) - covered)
    assert not missing, f"functions in template.yaml with no events/<function_dir>/*.json: {missing}; {REGENERATE}"


def test_event_files_are_what_make_events_writes():
    problems = differences()
    assert not problems, "\n".join([*problems, REGENERATE])


def secrets_in(event: dict[str, Any], env: dict[str, str]) -> list[str]:
    """What must never reach a log: configured secrets, bearer tokens, signature headers."""
    values = [v for k, v in env.items() if k in ("JWT_SECRET", "STRIPE_WEBHOOK_SECRET", "PAYMENT_WEBHOOK_SECRET") and v]
    headers = event.get("headers") or {}
    token = headers.get("authorization", "").removeprefix("Bearer ").strip()
    values += [token] if len(token) > 20 else []
    values += [headers[h] for h in ("stripe-signature", "x-webhook-signature") if headers.get(h)]
    return values


@pytest.mark.parametrize("name", sorted(FILES))
def test_event(name, load_function, tables, store, capfd):
    function_dir = name.split("/", 1)[0]
    spec = FUNCTIONS.get(function_dir)
    if spec is None:
        pytest.fail(f"events/{function_dir}/ matches no function in template.yaml")
    if name not in EXPECTED:
        pytest.fail(f"{name} has no entry in {MANIFEST.name}; {REGENERATE}")
    module_name, _, attribute = spec.handler.rpartition(".")
    if module_name != "app":
        pytest.fail(f"{spec.logical_id}: Handler {spec.handler!r} is not app.<function> (functions/<name>/app.py)")

    env = environment(spec.logical_id, tables)
    module = load_function(function_dir, **env)
    handler = getattr(module, attribute)
    event = prepare(name, json.loads(FILES[name].read_text()))
    logger.setLevel("DEBUG")  # the most a deployment could log
    for handler_ in logger.handlers:  # the logger outlives tests: write to this test's capture
        handler_.stream = sys.stdout  # type: ignore[attr-defined]
    try:
        response = handler(event, LambdaContext(spec.logical_id, spec.timeout, spec.memory))
        logger.info("log capture check")
    finally:
        logger.setLevel("INFO")
    logs = capfd.readouterr()
    assert "log capture check" in logs.out, "the function's logs were not captured"
    leaked = [value[:8] + "..." for value in secrets_in(event, env) if value in logs.out or value in logs.err]
    assert not leaked, f"{name}: secrets or tokens in the logs: {leaked}"

    problem = check_response(name, response, EXPECTED[name])
    assert problem is None, problem
    if isinstance(response, dict) and "statusCode" in response:
        # Whatever the case, an error body never leaks internals.
        assert not re.search(r"Traceback|File \"", response.get("body") or ""), response
