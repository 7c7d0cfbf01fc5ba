"""IAM conformance: what each function's code does is what its role in the SAM-translated template allows.

Every AWS call a function makes while the suites run is recorded (tests/support/iam.py: one
request per table, index, secret and transaction item, as AWS authorizes them) and judged against
the statements of that function's execution role in the template as SAM translates it, with the
ARNs resolved consistently (tests/support/sam.py). Two verdicts, run after every other test:
- every recorded call is allowed (an AccessDenied in AWS is a 500 the local server never shows);
- every action the role grants on every resource is used by some call (least privilege, per
  function): a grant no test exercises is either dead weight or an untested path.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import boto3
import pytest
from support.iam import RECORDER, AwsCall
from support.iam_policy import grants, is_allowed, matches_action, matches_arn
from support.sam import Resolver, function_policies, translated

from local.dynamodb import EmbeddedDynamoDB
from local.template import Template

TEMPLATE = Template()
FUNCTIONS = TEMPLATE.function_ids()
SECRET_VALUES = {
    "JWT_SECRET": "jwt-secret-from-secrets-manager-" + "j" * 16,
    "STRIPE_SECRET_KEY": "sk_test_from_secrets_manager",
    "STRIPE_WEBHOOK_SECRET": "whsec_from_secrets_manager",
    "PAYMENT_WEBHOOK_SECRET": "payment-webhook-secret-from-secrets-manager",
}


@pytest.fixture(scope="module")
def policies() -> dict[str, list[dict[str, Any]]]:
    template = translated()
    resolver = Resolver(template)
    return {function: function_policies(template, function, resolver) for function in FUNCTIONS}


@pytest.mark.parametrize("function", FUNCTIONS)
def test_a_cold_start_as_deployed_reads_its_secrets_from_secrets_manager(
    function: str, load_function: Any, dynamodb_server: EmbeddedDynamoDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As in AWS: no secret in the environment, `<NAME>_SECRET_ID` names the secret (the template's default)."""
    spec = TEMPLATE.function(function)
    secret_ids = {name: value for name, value in spec.environment.items() if name.endswith("_SECRET_ID")}
    monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", dynamodb_server.endpoint)
    secrets = boto3.client("secretsmanager", endpoint_url=dynamodb_server.endpoint)
    env = {}
    for variable, secret_id in secret_ids.items():
        setting = variable.removesuffix("_SECRET_ID")
        secrets.create_secret(Name=secret_id, SecretString=SECRET_VALUES[setting])
        env[variable] = secret_id
        env[setting] = ""  # unset: the value must come from Secrets Manager
    before = len(RECORDER.calls)

    module = load_function(spec.code_uri.name, **env)

    settings = module.settings
    for variable in secret_ids:
        setting = variable.removesuffix("_SECRET_ID").lower()
        value = getattr(settings, setting)
        value = value[0] if isinstance(value, tuple) else value
        assert value.get_secret_value() == SECRET_VALUES[setting.upper()]
    read = {call.resource for call in RECORDER.calls[before:] if call.action == "secretsmanager:GetSecretValue"}
    assert len(read) == len(secret_ids), read


def _judged_calls() -> list[AwsCall]:
    calls = RECORDER.calls
    assert calls, "no AWS call was recorded: is the recorder installed before the clients are created?"
    return calls


def test_verdict_every_recorded_call_is_allowed_by_the_functions_role(policies):
    denied = sorted(
        {str(call) for call in _judged_calls() if not is_allowed(policies[call.function], call.action, call.resource)}
    )
    assert not denied, "AWS would answer AccessDenied to:\n" + "\n".join(denied)


def test_verdict_every_granted_action_is_used_by_the_function(policies):
    if not RECORDER.whole_suite:
        pytest.skip("least privilege is judged on the whole integration suite (make test, pytest tests/integration)")
    used: dict[str, list[AwsCall]] = defaultdict(list)
    for call in _judged_calls():
        used[call.function].append(call)
    unused = []
    for function in FUNCTIONS:
        assert used[function], f"{function} made no AWS call in the whole suite"
        for action, resource in grants(policies[function]):
            if not any(matches_action(action, c.action) and matches_arn(resource, c.resource) for c in used[function]):
                unused.append(f"{function}: {action} on {resource}")
    assert not unused, "granted but never used by any test (remove it, or test the path that needs it):\n" + "\n".join(
        sorted(unused)
    )
