"""Secret values fetched at cold start from Secrets Manager or SSM (AWS only)."""

from __future__ import annotations

from .errors import ConfigError


def fetch_secrets(references: dict[str, str]) -> dict[str, str]:
    """Map setting name -> secret value. A reference is a Secrets Manager id/ARN or `ssm:<name>`.

    Fails the cold start with a clear message (never the value) when a secret cannot be read.
    """
    from aws_lambda_powertools.utilities import parameters

    values: dict[str, str] = {}
    for name, reference in references.items():
        try:
            if reference.startswith("ssm:"):
                value = parameters.get_parameter(reference[4:], decrypt=True, max_age=300)
            else:
                value = parameters.get_secret(reference, max_age=300)
        except Exception as exc:  # noqa: BLE001 - any failure here is a deployment error
            raise ConfigError(f"Cannot read secret for {name.upper()} from {reference}: {type(exc).__name__}") from None
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"Secret for {name.upper()} at {reference} is empty")
        values[name] = value.strip()
    return values
