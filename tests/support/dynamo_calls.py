"""Watching the DynamoDB client: round trips per request, and a guard that no Scan ever runs.

Both hook botocore's `before-call.dynamodb` events on the process-wide client the layer uses
(`halum_payments.repositories.dynamo.dynamodb_client()`), so they see every call a handler makes.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_ids = itertools.count()


@contextmanager
def recorded_calls(client: Any, event: str = "before-call.dynamodb") -> Iterator[list[str]]:
    """Yields a list that collects the operation name (e.g. "Query") of every call made inside."""
    operations: list[str] = []

    def record(model: Any = None, **_: Any) -> None:
        operations.append(model.name if model is not None else "?")

    unique_id = f"test-recorder-{next(_ids)}"
    client.meta.events.register(event, record, unique_id=unique_id)
    try:
        yield operations
    finally:
        client.meta.events.unregister(event, unique_id=unique_id)


@contextmanager
def scans_forbidden(client: Any) -> Iterator[list[str]]:
    """Records every Scan (our access patterns never need one); the caller asserts it stays empty."""
    with recorded_calls(client, "before-call.dynamodb.Scan") as scans:
        yield scans
