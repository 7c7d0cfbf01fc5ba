"""Each function's environment, as Lambda would give it, computed from the template (pure).

In AWS the template passes `<NAME>_SECRET_ID` and the function reads the secret at cold start (and
again as it ages, after a SnapStart restore and when a check fails with it: docs/operations.md).
Locally there is no Secrets Manager: the secret's value itself is passed as `<NAME>`, from the
server's environment or a printed local default, and only to the functions whose template
declares that secret, so a function missing a declaration fails here as it would in AWS.

With the local Stripe sandbox running, the functions that declare the Stripe key get the
sandbox's test key and its URL as `STRIPE_API_BASE`, exactly as a real key would reach them.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Literal

from halum_payments.config import SECRET_FIELDS, Settings
from local.defaults import LOCAL_JWT_SECRET, LOCAL_PAYMENT_WEBHOOK_SECRET, LOCAL_STRIPE_WEBHOOK_SECRET
from local.template import FunctionSpec

SECRET_ID_SUFFIX = "_SECRET_ID"  # noqa: S105 - a variable-name suffix, not a secret
STRIPE_KEY = "STRIPE_SECRET_KEY"
# The key the local sandbox accepts (and nothing else does): printed, worthless anywhere else.
LOCAL_STRIPE_SANDBOX_KEY = "sk_test_local_sandbox_development_only"
SECRET_NAMES = frozenset(field.upper() for field in SECRET_FIELDS)
# Settings a developer may set when starting the server; every function gets them. Table names
# are not among them: the server creates and names the tables, the template wires them.
PASS_THROUGH_SETTINGS = tuple(
    field.upper() for field in Settings.model_fields if field not in SECRET_FIELDS and not field.endswith("_table")
)
LOCAL_SECRET_DEFAULTS: Mapping[str, str] = {
    "JWT_SECRET": LOCAL_JWT_SECRET,
    "STRIPE_WEBHOOK_SECRET": LOCAL_STRIPE_WEBHOOK_SECRET,
    "PAYMENT_WEBHOOK_SECRET": LOCAL_PAYMENT_WEBHOOK_SECRET,
}
# Also honoured from the server's environment: the PATH for subprocesses, and Powertools' log switches.
DEVELOPER_SWITCHES = ("PATH", "POWERTOOLS_LOG_LEVEL", "POWERTOOLS_DEV", "POWERTOOLS_LOGGER_LOG_EVENT")
REGION = "us-east-1"
# Credentials that cannot reach AWS: a function that escapes the local endpoints fails loudly.
FAKE_AWS = {
    "AWS_ACCESS_KEY_ID": "local",
    "AWS_SECRET_ACCESS_KEY": "local",
    "AWS_SESSION_TOKEN": "local",
    "AWS_REGION": REGION,
    "AWS_DEFAULT_REGION": REGION,
    # Ignore the developer's ~/.aws profiles and never probe instance metadata.
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "AWS_EC2_METADATA_DISABLED": "true",
}
# The Python runtime's own variables (Lambda sets TZ and LANG this way).
RUNTIME = {"TZ": ":UTC", "LANG": "en_US.UTF-8"}

SecretSource = Literal["environment", "local default", "not set"]


def _value(env: Mapping[str, str], name: str) -> str | None:
    """A set, non-blank variable, stripped (as Settings reads it, so printed tokens match)."""
    value = (env.get(name) or "").strip()
    return value or None


def declared_secrets(spec: FunctionSpec) -> set[str]:
    """Secrets the template gives this function: every `X_SECRET_ID`, and plain secret names."""
    names = {name.removesuffix(SECRET_ID_SUFFIX) for name in spec.environment if name.endswith(SECRET_ID_SUFFIX)}
    return names | {name for name in spec.environment if name in SECRET_NAMES}


def secret_value(
    name: str, server_env: Mapping[str, str], local_defaults: Mapping[str, str] = LOCAL_SECRET_DEFAULTS
) -> tuple[str | None, SecretSource]:
    if (value := _value(server_env, name)) is not None:
        return value, "environment"
    if (value := _value(local_defaults, name)) is not None:
        return value, "local default"
    return None, "not set"


def function_environment(
    spec: FunctionSpec,
    server_env: Mapping[str, str],
    *,
    dynamodb_endpoint: str,
    local_defaults: Mapping[str, str] = LOCAL_SECRET_DEFAULTS,
    pass_through: Iterable[str] = PASS_THROUGH_SETTINGS,
    setting_defaults: Mapping[str, str] | None = None,
    stripe_sandbox: str | None = None,
) -> dict[str, str]:
    """The complete environment of one function's worker (nothing else is inherited).

    `setting_defaults` replace the template's values of settings the function declares, unless
    the server's environment sets them (local URLs instead of the deployed site's, say).
    `stripe_sandbox` is the sandbox's URL: functions declaring the Stripe key get the sandbox key
    and that URL as `STRIPE_API_BASE` (only those: no other function may reach Stripe).
    """
    env = {name: value for name, value in spec.environment.items() if not name.endswith(SECRET_ID_SUFFIX)}
    for name, default in (setting_defaults or {}).items():
        if name in spec.environment:
            env[name] = default
    for name in declared_secrets(spec):
        value, _ = secret_value(name, server_env, local_defaults)
        if value is not None:
            env[name] = value
        elif not _value(env, name):
            env.pop(name, None)  # no value anywhere: the function reports it as not configured
    for name in (*pass_through, *DEVELOPER_SWITCHES):
        if (value := _value(server_env, name)) is not None:
            env[name] = value
    if stripe_sandbox is not None and STRIPE_KEY in declared_secrets(spec):
        env.update({STRIPE_KEY: LOCAL_STRIPE_SANDBOX_KEY, "STRIPE_API_BASE": stripe_sandbox})
    env.update(FAKE_AWS)
    env.update(RUNTIME)
    env.update(
        {
            "AWS_ENDPOINT_URL_DYNAMODB": dynamodb_endpoint,
            "AWS_LAMBDA_FUNCTION_NAME": spec.logical_id,
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory),
            "AWS_LAMBDA_FUNCTION_TIMEOUT": str(spec.timeout),
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{spec.logical_id}",
            "AWS_LAMBDA_LOG_STREAM_NAME": "local",
            "_HANDLER": spec.handler,
            "LAMBDA_TASK_ROOT": str(spec.code_uri),
        }
    )
    return env


def secret_sources(
    specs: Iterable[FunctionSpec],
    server_env: Mapping[str, str],
    local_defaults: Mapping[str, str] = LOCAL_SECRET_DEFAULTS,
) -> dict[str, SecretSource]:
    """Where each secret some function declares comes from (for the start-up banner)."""
    names = sorted({name for spec in specs for name in declared_secrets(spec)})
    return {name: secret_value(name, server_env, local_defaults)[1] for name in names}


def stripe_sandbox_wanted(server_env: Mapping[str, str]) -> bool:
    """The sandbox runs unless STRIPE_SANDBOX=0 (or false/no/off) or a real Stripe key is configured."""
    switched_off = (_value(server_env, "STRIPE_SANDBOX") or "").lower() in ("0", "false", "no", "off")
    return not switched_off and _value(server_env, STRIPE_KEY) is None
