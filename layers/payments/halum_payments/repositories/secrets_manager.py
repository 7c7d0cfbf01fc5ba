"""Secrets Manager: a secret's current value, read through the process's botocore session."""

from __future__ import annotations

import functools
from typing import Any

from ..errors import ConfigError
from .dynamo import CLIENT_CONFIG, aws_session, bounded_by_deadline


def read_secret(reference: str) -> str:
    """The secret's current value from Secrets Manager (never a cached one)."""
    value = _secrets_provider().get(reference, force_fetch=True)
    if not isinstance(value, str) or not value.strip():
        raise ConfigError("is empty")
    return value.strip()


@functools.cache
def _secrets_provider() -> Any:
    """Powertools' Secrets Manager provider, with a client of the process's botocore session (the
    DynamoDB client's): left to itself it would build a boto3 session, a second copy of botocore's
    models and endpoint data, at every cold start. One per process, for the cold start and every
    read after it; its calls fit in the invocation's remaining time like DynamoDB's."""
    from aws_lambda_powertools.utilities.parameters.secrets import SecretsProvider

    client = bounded_by_deadline(aws_session().create_client("secretsmanager", config=CLIENT_CONFIG))
    return SecretsProvider(boto3_client=client)
