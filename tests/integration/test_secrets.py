"""Secrets as deployed: `<NAME>_SECRET_ID` read at cold start from Secrets Manager (moto)."""

from __future__ import annotations

import uuid
from typing import Any

import boto3
import pytest

from halum_payments.config import Settings
from halum_payments.errors import ConfigError
from halum_payments.repositories.secrets_manager import read_secret
from halum_payments.secrets import fetch_secrets
from local.dynamodb import EmbeddedDynamoDB


@pytest.fixture
def aws(dynamodb_server: EmbeddedDynamoDB, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    endpoint = dynamodb_server.endpoint
    monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", endpoint)
    return {
        "secrets": boto3.client("secretsmanager", endpoint_url=endpoint),
        "prefix": f"halum-{uuid.uuid4().hex[:8]}",
    }


def test_secret_ids_resolve_from_secrets_manager_at_cold_start(aws, base_env):
    aws["secrets"].create_secret(Name=f"{aws['prefix']}/jwt", SecretString="  jwt-from-secrets-manager\n")
    aws["secrets"].create_secret(Name=f"{aws['prefix']}/cursor", SecretString="cursor-from-secrets-manager")
    env = {key: value for key, value in base_env.items() if key not in ("JWT_SECRET", "CURSOR_SECRET")}
    env["JWT_SECRET_SECRET_ID"] = f"{aws['prefix']}/jwt"
    env["CURSOR_SECRET_SECRET_ID"] = f"{aws['prefix']}/cursor"

    settings = Settings.from_env(env, read_secret)

    assert settings.jwt_secret is not None and settings.jwt_secret.get_secret_value() == "jwt-from-secrets-manager"
    assert settings.cursor_secret is not None
    assert settings.cursor_secret.get_secret_value() == "cursor-from-secrets-manager"


def test_a_secret_set_in_the_environment_is_not_fetched(aws, base_env):
    env = {**base_env, "JWT_SECRET_SECRET_ID": f"{aws['prefix']}/does-not-exist"}
    assert Settings.from_env(env, read_secret).jwt_secret is not None  # JWT_SECRET from the environment won


def test_a_missing_secret_fails_the_cold_start_naming_the_setting(aws):
    with pytest.raises(ConfigError, match=r"Cannot read secret for JWT_SECRET from .*/missing"):
        fetch_secrets({"jwt_secret": f"{aws['prefix']}/missing"}, read_secret)


def test_an_empty_secret_fails_the_cold_start_without_echoing_values(aws):
    aws["secrets"].create_secret(Name=f"{aws['prefix']}/blank", SecretString="   ")
    with pytest.raises(ConfigError, match="is empty") as failure:
        fetch_secrets({"stripe_secret_key": f"{aws['prefix']}/blank"}, read_secret)
    assert "STRIPE_SECRET_KEY" in str(failure.value)
