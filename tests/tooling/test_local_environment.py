"""Each function's environment in the local server: secrets least-privilege, settings pass-through."""

from __future__ import annotations

from pathlib import Path

import pytest

from halum_payments.config import Settings
from local import pages
from local.defaults import LOCAL_JWT_SECRET, LOCAL_STRIPE_WEBHOOK_SECRET
from local.environment import LOCAL_STRIPE_SANDBOX_KEY, function_environment, secret_sources, stripe_sandbox_wanted
from local.template import FunctionSpec, Template

ENDPOINT = "http://127.0.0.1:8000"
SANDBOX = "http://127.0.0.1:12111"


def spec(environment: dict[str, str], name: str = "ListPaymentsFunction") -> FunctionSpec:
    return FunctionSpec(name, Path("/code/list_payments"), "app.lambda_handler", 10, 512, environment)


def build(environment: dict[str, str], server_env: dict[str, str] | None = None) -> dict[str, str]:
    return function_environment(spec(environment), server_env or {}, dynamodb_endpoint=ENDPOINT)


def test_a_secret_id_is_replaced_by_the_secret_from_the_servers_environment():
    env = build({"JWT_SECRET_SECRET_ID": "halum-hut/payments/jwt-secret"}, {"JWT_SECRET": "from-shell"})
    assert env["JWT_SECRET"] == "from-shell"
    assert not [name for name in env if name.endswith("_SECRET_ID")]


def test_a_declared_secret_falls_back_to_its_printed_local_default():
    env = build({"JWT_SECRET_SECRET_ID": "x", "STRIPE_WEBHOOK_SECRET_SECRET_ID": "y"}, {"JWT_SECRET": "  "})
    assert env["JWT_SECRET"] == LOCAL_JWT_SECRET
    assert env["STRIPE_WEBHOOK_SECRET"] == LOCAL_STRIPE_WEBHOOK_SECRET


def test_secrets_go_only_to_functions_that_declare_them():
    server_env = {"JWT_SECRET": "a", "STRIPE_SECRET_KEY": "sk", "PAYMENT_WEBHOOK_SECRET": "p", "CURSOR_SECRET": "c"}
    env = build({"JWT_SECRET_SECRET_ID": "x"}, server_env)
    assert env["JWT_SECRET"] == "a"
    assert {"STRIPE_SECRET_KEY", "PAYMENT_WEBHOOK_SECRET", "CURSOR_SECRET"}.isdisjoint(env)
    assert "JWT_SECRET" not in build({}, server_env)


def test_a_declared_secret_with_no_value_anywhere_is_left_out():
    env = build({"STRIPE_SECRET_KEY_SECRET_ID": "halum-hut/payments/stripe"})
    assert "STRIPE_SECRET_KEY" not in env and "STRIPE_SECRET_KEY_SECRET_ID" not in env


def test_a_plainly_declared_secret_takes_the_servers_value():
    assert (
        build({"PAYMENT_WEBHOOK_SECRET": ""}, {"PAYMENT_WEBHOOK_SECRET": "shell"})["PAYMENT_WEBHOOK_SECRET"] == "shell"
    )


def test_settings_pass_through_to_every_function_but_tables_stay_the_templates():
    server_env = {
        "CURRENCY": "bdt",
        "STRIPE_API_BASE": "http://127.0.0.1:12111",
        "RECONCILE_BATCH_SIZE": "5",
        "PAYMENTS_TABLE": "someone-elses-table",
        "POWERTOOLS_LOG_LEVEL": "DEBUG",
    }
    env = build({"CURRENCY": "usd", "PAYMENTS_TABLE": "PaymentsTable"}, server_env)
    assert (env["CURRENCY"], env["STRIPE_API_BASE"], env["RECONCILE_BATCH_SIZE"]) == (
        "bdt",
        server_env["STRIPE_API_BASE"],
        "5",
    )
    assert env["POWERTOOLS_LOG_LEVEL"] == "DEBUG"
    assert env["PAYMENTS_TABLE"] == "PaymentsTable"


def test_nothing_else_leaks_from_the_servers_environment():
    server_env = {
        "HOME": "/root",
        "AWS_PROFILE": "prod",
        "AWS_ACCESS_KEY_ID": "AKIAREAL",
        "PYTHONPATH": "/x",
        "SECRET_KEY": "s",
    }
    env = build({}, server_env)
    assert {"HOME", "AWS_PROFILE", "PYTHONPATH", "SECRET_KEY"}.isdisjoint(env)
    assert env["AWS_ACCESS_KEY_ID"] != "AKIAREAL"


def test_the_runtimes_variables_are_set():
    env = build({"GREETING": "hi"})
    assert env["GREETING"] == "hi"
    assert env["AWS_ENDPOINT_URL_DYNAMODB"] == ENDPOINT
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == "ListPaymentsFunction"
    assert (env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"], env["AWS_LAMBDA_FUNCTION_TIMEOUT"]) == ("512", "10")
    assert (env["_HANDLER"], env["LAMBDA_TASK_ROOT"]) == ("app.lambda_handler", "/code/list_payments")
    assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"]
    assert env["AWS_SECRET_ACCESS_KEY"]


@pytest.mark.parametrize("function", Template().function_ids())
def test_every_template_function_gets_a_complete_valid_configuration(function):
    template = Template()
    template.use_table_names({table: table for table in template.table_ids()})
    function_spec = template.function(function)
    env = function_environment(function_spec, {}, dynamodb_endpoint=ENDPOINT)
    settings = Settings.from_env(env)  # would try Secrets Manager if a *_SECRET_ID were left
    assert settings.payments_table == "PaymentsTable"
    if "JWT_SECRET_SECRET_ID" in function_spec.environment:
        assert settings.jwt_secret is not None


def test_secret_sources_describe_where_each_declared_secret_comes_from():
    specs = [
        spec({"JWT_SECRET_SECRET_ID": "x"}),
        spec({"STRIPE_SECRET_KEY_SECRET_ID": "y", "JWT_SECRET_SECRET_ID": "x"}),
    ]
    assert secret_sources(specs, {"STRIPE_SECRET_KEY": ""}) == {
        "JWT_SECRET": "local default",
        "STRIPE_SECRET_KEY": "not set",
    }
    assert secret_sources(specs, {"JWT_SECRET": "k"})["JWT_SECRET"] == "environment"


def test_the_sandbox_key_and_url_go_only_to_functions_that_declare_the_stripe_key():
    stripe = function_environment(
        spec({"STRIPE_SECRET_KEY_SECRET_ID": "x"}), {}, dynamodb_endpoint=ENDPOINT, stripe_sandbox=SANDBOX
    )
    assert (stripe["STRIPE_SECRET_KEY"], stripe["STRIPE_API_BASE"]) == (LOCAL_STRIPE_SANDBOX_KEY, SANDBOX)
    other = function_environment(
        spec({"JWT_SECRET_SECRET_ID": "x"}), {}, dynamodb_endpoint=ENDPOINT, stripe_sandbox=SANDBOX
    )
    assert {"STRIPE_SECRET_KEY", "STRIPE_API_BASE"}.isdisjoint(other)


def test_setting_defaults_replace_only_declared_settings_and_yield_to_the_servers_environment():
    defaults = {"CHECKOUT_SUCCESS_URL": "http://local/ok?session_id={CHECKOUT_SESSION_ID}"}
    declared = {"CHECKOUT_SUCCESS_URL": "https://shop.example/ok?session_id={CHECKOUT_SESSION_ID}"}

    def build_with(environment: dict[str, str], server_env: dict[str, str]) -> dict[str, str]:
        return function_environment(
            spec(environment), server_env, dynamodb_endpoint=ENDPOINT, setting_defaults=defaults
        )

    assert build_with(declared, {})["CHECKOUT_SUCCESS_URL"] == defaults["CHECKOUT_SUCCESS_URL"]
    assert "CHECKOUT_SUCCESS_URL" not in build_with({}, {})
    mine = "https://mine.example/ok?session_id={CHECKOUT_SESSION_ID}"
    assert build_with(declared, {"CHECKOUT_SUCCESS_URL": mine})["CHECKOUT_SUCCESS_URL"] == mine


@pytest.mark.parametrize(
    ("server_env", "wanted"),
    [
        ({}, True),
        ({"STRIPE_SANDBOX": "1"}, True),
        ({"STRIPE_SECRET_KEY": "  "}, True),  # blank is unset
        ({"STRIPE_SANDBOX": "0"}, False),
        ({"STRIPE_SANDBOX": "off"}, False),
        ({"STRIPE_SECRET_KEY": "sk_test_real"}, False),  # a real key: real Stripe, no sandbox
        ({"STRIPE_SANDBOX": "1", "STRIPE_SECRET_KEY": "sk_test_real"}, False),
    ],
)
def test_the_sandbox_runs_unless_switched_off_or_a_real_key_is_configured(server_env, wanted):
    assert stripe_sandbox_wanted(server_env) is wanted


@pytest.mark.parametrize("function", Template().function_ids())
def test_with_the_sandbox_every_function_is_valid_and_only_the_stripe_ones_are_configured_for_it(function):
    template = Template()
    template.use_table_names({table: table for table in template.table_ids()})
    function_spec = template.function(function)
    base = "http://127.0.0.1:3000"
    checkout_pages = {"CHECKOUT_SUCCESS_URL": pages.success_url(base), "CHECKOUT_CANCEL_URL": pages.cancel_url(base)}
    env = function_environment(
        function_spec, {}, dynamodb_endpoint=ENDPOINT, setting_defaults=checkout_pages, stripe_sandbox=SANDBOX
    )
    settings = Settings.from_env(env)
    declares_stripe = "STRIPE_SECRET_KEY_SECRET_ID" in function_spec.environment
    assert settings.stripe_configured is declares_stripe
    assert settings.stripe_api_base == (SANDBOX if declares_stripe else None)
    if "CHECKOUT_SUCCESS_URL" in function_spec.environment:
        assert settings.checkout_success_url == f"{base}/_local/checkout/success?session_id={{CHECKOUT_SESSION_ID}}"
        assert settings.checkout_cancel_url == f"{base}/_local/checkout/cancelled"
