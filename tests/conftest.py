"""Shared fixtures: an embedded DynamoDB with the template's tables, settings, function loader."""

from __future__ import annotations

import functools
import importlib.util
import os
import sys
import uuid
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import pytest

# Fake credentials before anything creates a boto3 client: no test may reach AWS.
os.environ.update(
    AWS_ACCESS_KEY_ID="testing",
    AWS_SECRET_ACCESS_KEY="testing",
    AWS_SESSION_TOKEN="testing",
    AWS_DEFAULT_REGION="us-east-1",
    AWS_REGION="us-east-1",
    POWERTOOLS_METRICS_NAMESPACE="HalumHut/Payments",
    POWERTOOLS_SERVICE_NAME="payments",
    POWERTOOLS_DEV="false",
)
for leaked in ("AWS_PROFILE", "AWS_ENDPOINT_URL"):
    os.environ.pop(leaked, None)

from support import JWT_SECRET, PAYMENT_WEBHOOK_SECRET, ROOT, STRIPE_WEBHOOK_SECRET, TABLE_SETTINGS  # noqa: E402

from halum_payments import config  # noqa: E402
from halum_payments.config import Settings  # noqa: E402
from local.dynamodb import EmbeddedDynamoDB  # noqa: E402
from local.template import Template  # noqa: E402


@pytest.fixture(scope="session")
def dynamodb_server() -> Iterator[EmbeddedDynamoDB]:
    server = EmbeddedDynamoDB()
    endpoint = server.start()
    os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = endpoint
    os.environ["AWS_ENDPOINT_URL_EVENTBRIDGE"] = endpoint  # moto's EventBridge (PublishEventsFunction)
    yield server
    server.stop()


@pytest.fixture
def dynamodb(dynamodb_server: EmbeddedDynamoDB) -> Any:
    from halum_payments.repositories.dynamo import dynamodb_client

    return dynamodb_client()


@pytest.fixture
def tables(dynamodb_server: EmbeddedDynamoDB, dynamodb: Any) -> dict[str, str]:
    """Fresh tables, created from template.yaml itself, for every test."""
    dynamodb_server.reset()
    template = Template()
    template.create_event_buses(_events_client(dynamodb_server.endpoint))
    return template.create_tables(dynamodb, prefix=f"t{uuid.uuid4().hex[:8]}-")


@functools.cache
def _events_client(endpoint: str) -> Any:
    import boto3

    return boto3.client("events", endpoint_url=endpoint)


@pytest.fixture
def base_env(tables: dict[str, str]) -> dict[str, str]:
    env = {setting: tables[logical_id] for logical_id, setting in TABLE_SETTINGS.items()}
    env.update(
        JWT_SECRET=JWT_SECRET,
        STRIPE_WEBHOOK_SECRET=STRIPE_WEBHOOK_SECRET,
        PAYMENT_WEBHOOK_SECRET=PAYMENT_WEBHOOK_SECRET,
        EVENT_BUS_NAME="EventBus",  # the bus `tables` creates, as the template's `!Ref EventBus` resolves locally
    )
    return env


@pytest.fixture
def settings(base_env: dict[str, str]) -> Settings:
    return Settings.from_env(base_env)


@pytest.fixture
def load_function(base_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Callable[..., ModuleType]:
    """Import functions/<name>/app.py fresh, as a cold start with the test's environment."""

    def load(name: str, **env: str) -> ModuleType:
        for key, value in {**base_env, **env}.items():
            monkeypatch.setenv(key, value)
        monkeypatch.setattr(config, "_settings", None)
        path = ROOT / "functions" / name / "app.py"
        module_name = f"function_{name}_{uuid.uuid4().hex[:6]}"
        spec = importlib.util.spec_from_file_location(module_name, path)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
        return module

    return load
