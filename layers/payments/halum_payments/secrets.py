"""Secret values fetched at cold start from Secrets Manager (AWS only)."""

from __future__ import annotations

from typing import Any

from .errors import ConfigError


def fetch_secrets(references: dict[str, str]) -> dict[str, str]:
    """Map setting name -> secret value; a reference is a Secrets Manager secret name (the template
    accepts names only: its IAM grants are for `<name>-??????`).

    Fails the cold start with a clear message (never the value) when a secret cannot be read.
    """
    provider: Any = None
    values: dict[str, str] = {}
    for name, reference in references.items():
        try:
            provider = provider or _secrets_provider()
            value = provider.get(reference, max_age=300)
        except Exception as exc:  # noqa: BLE001 - any failure here is a deployment error
            raise ConfigError(f"Cannot read secret for {name.upper()} from {reference}: {type(exc).__name__}") from None
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"Secret for {name.upper()} at {reference} is empty")
        values[name] = value.strip()
    return values


def _secrets_provider() -> Any:
    """Powertools' Secrets Manager provider, with a client of the process's botocore session (the
    DynamoDB client's): left to itself it would build a boto3 session, a second copy of botocore's
    models and endpoint data, at every cold start."""
    from aws_lambda_powertools.utilities.parameters.secrets import SecretsProvider

    from .repositories.dynamo import CLIENT_CONFIG, aws_session

    return SecretsProvider(boto3_client=aws_session().create_client("secretsmanager", config=CLIENT_CONFIG))
