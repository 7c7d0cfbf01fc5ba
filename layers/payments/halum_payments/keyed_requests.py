"""Requests a client may send again under an `Idempotency-Key` header (the checkout endpoints).

Without a key a request simply runs. With one, it runs once per (caller, key) and repeats get the
first answer (`halum_payments.idempotency`). That module, Powertools' idempotency utility and the
boto3 it imports are loaded by the first keyed request, so requests without a key never pay for
them at cold start.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from pydantic import BaseModel

if TYPE_CHECKING:
    from .idempotency import Idempotent

T = TypeVar("T", bound=BaseModel)


class KeyedRequests(Generic[T]):
    """`run(payload)` for each request; `payload` is {"key", "body", "user"}."""

    def __init__(
        self, table: str, run: Callable[[dict[str, Any]], T], output: type[T], *, expires_after_seconds: int
    ) -> None:
        self._table = table
        self._run = run
        self._output = output
        self._expires_after_seconds = expires_after_seconds
        self._idempotent: Idempotent[T] | None = None

    def __call__(self, user: int, idempotency_key: str | None, body: dict[str, Any], lambda_context: Any) -> T:
        payload = {"key": f"{user}:{idempotency_key}", "body": body, "user": user}
        if not idempotency_key:
            return self._run(payload)
        if self._idempotent is None:
            from .idempotency import Idempotent

            self._idempotent = Idempotent(
                self._table,
                self._run,
                self._output,
                expires_after_seconds=self._expires_after_seconds,
                duplicate_metric="DuplicateCheckouts",
            )
        self._idempotent.register_lambda_context(lambda_context)
        return self._idempotent(payload)
