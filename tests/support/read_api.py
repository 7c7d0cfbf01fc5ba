"""Calling a read endpoint as a client would, checking on every call what must hold for any request:
never a 5xx, always a JSON body (errors DRF's: `{"detail": "..."}`, field-keyed on a 400), and a bounded number of
DynamoDB round trips, none of them a Scan."""

from __future__ import annotations

from types import ModuleType
from typing import Any

from support import Reply, auth, call
from support.drf import assert_error_body
from support.dynamo_calls import recorded_calls


class ReadApi:
    def __init__(self, module: ModuleType, client: Any, *, max_round_trips: int) -> None:
        self.module = module
        self.client = client
        self.max_round_trips = max_round_trips

    def get(self, path: str, *, user: int | None = 1, query: str = "", headers: dict[str, str] | None = None) -> Reply:
        request_headers = auth(user) if user is not None else {}
        request_headers.update(headers or {})
        with recorded_calls(self.client) as operations:
            reply = call(self.module, "GET", path, query=query, headers=request_headers)
        reply.operations = list(operations)  # type: ignore[attr-defined]
        where = f"GET {path}?{query} -> {reply!r}"
        assert reply.status < 500, where
        assert reply.headers.get("content-type", "").startswith("application/json"), where
        assert isinstance(reply.json, dict), where
        if reply.status >= 400:
            assert_error_body(reply.status, reply.json, where)
        assert len(operations) <= self.max_round_trips, (where, operations)
        assert set(operations) <= {"GetItem", "Query"}, (where, operations)
        return reply
