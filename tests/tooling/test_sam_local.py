"""`sam local` as SAM's users run it, checked without Docker: each function's environment computed by
SAM CLI's own code from template.yaml and env.json (scripts/sam_local_env.py, tools venv), then the
function's configuration built from it exactly as a cold start builds it, with no AWS call; and the
events `make invoke` re-signs verify with the secrets env.json gives the functions."""

from __future__ import annotations

import functools
import json
import subprocess
import time
from typing import Any

import pytest
from support import ROOT, TABLE_SETTINGS
from support.sam import TOOLS_PYTHON

from halum_payments.config import Settings
from local.template import Template

ENV_JSON = ROOT / "env.json"
FUNCTIONS = Template().function_ids()


@functools.cache
def sam_local_environments(env_json: str = str(ENV_JSON)) -> dict[str, dict[str, str]]:
    result = subprocess.run(
        [str(TOOLS_PYTHON), str(ROOT / "scripts" / "sam_local_env.py"), str(ROOT / "template.yaml"), env_json],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    environments: dict[str, dict[str, str]] = json.loads(result.stdout)
    return environments


@pytest.mark.parametrize("function", FUNCTIONS)
def test_sam_local_gives_every_function_a_valid_configuration_without_aws(function):
    env = sam_local_environments()[function]
    # No secret reader: a secret left to fetch from Secrets Manager fails, as a missing table or an
    # invalid setting does.
    settings = Settings.from_env(env)

    parameters = json.loads(ENV_JSON.read_text())["Parameters"]
    assert env["AWS_ENDPOINT_URL_DYNAMODB"] == parameters["AWS_ENDPOINT_URL_DYNAMODB"]  # DynamoDB Local
    for logical_id, setting in TABLE_SETTINGS.items():
        assert getattr(settings, setting.lower()) == parameters[setting] == logical_id
    assert [name for name, value in env.items() if name.endswith("_SECRET_ID") and value] == []
    declared = Template().function(function).environment
    if "JWT_SECRET_SECRET_ID" in declared:
        assert settings.jwt_secret is not None
    if "STRIPE_WEBHOOK_SECRET_SECRET_ID" in declared:
        assert settings.stripe_webhook_secret
    if "PAYMENT_WEBHOOK_SECRET_SECRET_ID" in declared:
        assert settings.payment_webhook_secret


def test_every_variable_env_json_sets_reaches_some_function():
    """SAM CLI passes only variables the template declares: a name env.json sets that no function
    declares would silently do nothing."""
    parameters = json.loads(ENV_JSON.read_text())["Parameters"]
    environments = sam_local_environments()
    ignored = [name for name in parameters if not any(name in env for env in environments.values())]
    assert ignored == []


def test_a_variable_the_template_does_not_declare_never_reaches_a_function(tmp_path):
    """What made sam local unusable before: JWT_SECRET and friends were not declared, so env.json could
    not set them and functions went to Secrets Manager (and to the real account's tables)."""
    env_json = tmp_path / "env.json"
    env_json.write_text(json.dumps({"Parameters": {"CURSOR_SECRET": "x", "JWT_SECRET": "y"}}))
    environments = sam_local_environments(str(env_json))
    assert all("CURSOR_SECRET" not in env for env in environments.values())
    assert environments["ListPaymentsFunction"]["JWT_SECRET"] == "y"
    assert environments["ListPaymentsFunction"]["PAYMENTS_TABLE"] == "PaymentsTable"  # the logical id


def test_in_aws_the_declared_overrides_are_empty_and_leave_botocore_on_aws():
    """Empty in AWS: our settings and botocore (the runtime's version, pinned like Lambda's) read them as unset."""
    import botocore.session

    for function in FUNCTIONS:
        declared = Template().function(function).environment
        for name in ("AWS_ENDPOINT_URL_DYNAMODB", "JWT_SECRET", "STRIPE_SECRET_KEY", "STRIPE_API_BASE"):
            assert declared.get(name, "") == "", (function, name)
    session = botocore.session.Session()
    session.set_config_variable("region", "us-east-1")
    import os

    saved = os.environ.get("AWS_ENDPOINT_URL_DYNAMODB")
    os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = ""
    try:
        client = session.create_client("dynamodb", aws_access_key_id="x", aws_secret_access_key="y")
        assert client.meta.endpoint_url == "https://dynamodb.us-east-1.amazonaws.com"
    finally:
        if saved is None:
            os.environ.pop("AWS_ENDPOINT_URL_DYNAMODB")
        else:
            os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = saved


def _prepared(event: str) -> dict[str, Any]:
    result = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "python"), str(ROOT / "scripts" / "prepare_event.py"), event],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    prepared: dict[str, Any] = json.loads(result.stdout)
    return prepared


@pytest.mark.parametrize(
    "event", sorted(str(p.relative_to(ROOT)) for p in (ROOT / "events" / "stripe_webhook").glob("*.json"))
)
def test_make_invoke_re_signs_stripe_events_for_the_secret_env_json_gives(event):
    import stripe

    prepared = _prepared(event)
    secret = sam_local_environments()["StripeWebhookFunction"]["STRIPE_WEBHOOK_SECRET"]
    header = prepared["headers"].get("stripe-signature")
    if "bad_signature" in event:
        return  # a deliberately wrong signature stays wrong
    assert header and int(header.split(",")[0].removeprefix("t=")) > time.time() - 60
    stripe.Webhook.construct_event(prepared["body"], header, secret, tolerance=300)


@pytest.mark.parametrize(
    "event", sorted(str(p.relative_to(ROOT)) for p in (ROOT / "events" / "payment_webhook").glob("*.json"))
)
def test_make_invoke_signs_gateway_events_with_the_secret_env_json_gives(event):
    import hashlib
    import hmac

    prepared = _prepared(event)
    secret = sam_local_environments()["PaymentWebhookFunction"]["PAYMENT_WEBHOOK_SECRET"]
    expected = hmac.new(secret.encode(), prepared["body"].encode(), hashlib.sha256).hexdigest()
    signature = prepared["headers"].get("x-webhook-signature", "").removeprefix("sha256=")
    assert (signature == expected) is ("bad_signature" not in event)
