"""Powertools idempotency, for the functions that need it (imported only there: it is not free).

Concurrent duplicates do not fail fast: they wait a little for the first request to finish and
then answer with its stored result, so a double-click or a burst of webhook redeliveries all get
the same answer. Only if the first is still running after the wait is the duplicate refused as
retryable.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyPersistenceLayerError,
    IdempotencyValidationError,
)
from pydantic import BaseModel

from .errors import RequestInProgress, TransientFault, Unprocessable
from .observability import count, logger
from .repositories.dynamo import dynamodb_client

E = TypeVar("E")
T = TypeVar("T", bound=BaseModel)

WAIT_SCHEDULE = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.0)  # ~3.9 s: a Lambda request finishes well within


class Idempotent(Generic[E, T]):
    """`fn(event) -> model` run once per key; later calls with the same key replay its result.

    `payload(event)` is what Powertools hashes: a dict with a "key" (what makes two events "the
    same") and a "body" (what must not change under the same key). The event itself travels beside
    it, per thread: Powertools deep-copies every payload to hash it.
    """

    def __init__(
        self,
        table: str,
        fn: Callable[[E], T],
        output: type[T],
        payload: Callable[[E], dict[str, Any]],
        *,
        expires_after_seconds: int,
        client: Any = None,
        wait_schedule: tuple[float, ...] = WAIT_SCHEDULE,
        duplicate_metric: str | None = "DuplicateDeliveries",
        key_prefix: str | None = None,
    ) -> None:
        from aws_lambda_powertools.utilities.idempotency.serialization.pydantic import PydanticSerializer

        self.config = IdempotencyConfig(
            event_key_jmespath="key",
            payload_validation_jmespath="body",
            expires_after_seconds=expires_after_seconds,
            raise_on_no_idempotency_key=True,
            response_hook=self._replayed,
        )
        self._duplicate_metric = duplicate_metric
        persistence = DynamoDBPersistenceLayer(table_name=table, boto3_client=client or dynamodb_client())
        self._fn = fn
        self._payload = payload
        self._current = threading.local()
        self._wait_schedule = wait_schedule
        # Powertools names its records after the Lambda function and the decorated function's module
        # and qualified name (this method's: the same in every environment of a function, where the
        # handler's module name is not), unless `key_prefix` names them: then every function using
        # that prefix shares the records (a Stripe event applied by the webhook is not applied
        # again by the reconciliation sweep, nor the other way round).
        self._run = idempotent_function(
            data_keyword_argument="payload",
            persistence_store=persistence,
            config=self.config,
            output_serializer=PydanticSerializer(output),
            key_prefix=key_prefix,
        )(self._apply)

    def _apply(self, payload: dict[str, Any]) -> T:
        return self._fn(self._current.event)

    def _replayed(self, response: Any, idempotent_data: Any) -> Any:
        # Called by Powertools only when it answers with a stored result: a duplicate.
        if self._duplicate_metric:
            count(self._duplicate_metric)
        logger.info("duplicate request answered with the stored result")
        return response

    def register_lambda_context(self, context: Any) -> None:
        self.config.register_lambda_context(context)

    def __call__(self, event: E) -> T:
        self._current.event, payload = event, self._payload(event)
        for delay in (*self._wait_schedule, None):
            try:
                return self._run(payload=payload)
            except IdempotencyAlreadyInProgressError:
                if delay is None:
                    raise RequestInProgress() from None
                time.sleep(delay)
            except IdempotencyValidationError:
                raise Unprocessable("This event was already received with a different body.") from None
            except IdempotencyPersistenceLayerError as exc:
                raise TransientFault("idempotency store unavailable") from exc
        raise RequestInProgress()  # pragma: no cover - the loop always returns or raises
