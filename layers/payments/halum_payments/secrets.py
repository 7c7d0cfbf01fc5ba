"""Secret values fetched at cold start from Secrets Manager or SSM (AWS only)."""

from __future__ import annotations

from typing import Any

from .errors import ConfigError


def fetch_secrets(references: dict[str, str]) -> dict[str, str]:
    """Map setting name -> secret value. A reference is a Secrets Manager id/ARN or `ssm:<name>`.

    Fails the cold start with a clear message (never the value) when a secret cannot be read.
    """
    providers = _Providers()
    values: dict[str, str] = {}
    for name, reference in references.items():
        try:
            if reference.startswith("ssm:"):
                value = providers.ssm().get(reference[4:], decrypt=True, max_age=300)
            else:
                value = providers.secrets().get(reference, max_age=300)
        except Exception as exc:  # noqa: BLE001 - any failure here is a deployment error
            raise ConfigError(f"Cannot read secret for {name.upper()} from {reference}: {type(exc).__name__}") from None
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"Secret for {name.upper()} at {reference} is empty")
        values[name] = value.strip()
    return values


class _Providers:
    """Powertools' parameter providers, each created on first use with a client of the process's
    botocore session (the DynamoDB client's): left to themselves they would build a boto3 session,
    a second copy of botocore's models and endpoint data, at every cold start."""

    def __init__(self) -> None:
        self._secrets: Any = None
        self._ssm: Any = None

    def secrets(self) -> Any:
        if self._secrets is None:
            from aws_lambda_powertools.utilities.parameters.secrets import SecretsProvider

            self._secrets = SecretsProvider(boto3_client=_client("secretsmanager"))
        return self._secrets

    def ssm(self) -> Any:
        if self._ssm is None:
            from aws_lambda_powertools.utilities.parameters.ssm import SSMProvider

            self._ssm = SSMProvider(boto3_client=_client("ssm"))
        return self._ssm


def _client(service: str) -> Any:
    from .repositories.dynamo import CLIENT_CONFIG, aws_session

    return aws_session().create_client(service, config=CLIENT_CONFIG)
