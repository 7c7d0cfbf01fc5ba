"""The one place a record the shop writes is checked against its contract (records.py) as it is read.

A record that breaks it is never read by guessing: the error log names the table, the key and what is
wrong (field paths and pydantic's error types, never the values: an address is personal data), the
metric RecordContractBroken counts it with the table as a dimension (each table has its alarm:
docs/runbook.md#recordcontractbroken), and UnreadableRecord says to logic which record it was.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import ValidationError

from ..errors import UnreadableRecord
from ..observability import count_by, logger
from ..records import CONTRACTS, Record
from .dynamo import as_document, from_attr

R = TypeVar("R", bound=Record)
METRIC = "RecordContractBroken"


def read(model: type[R], table: str, key: str, item: Mapping[str, Any]) -> R:
    """The record `item` of the logical table `table` (template.yaml's name), validated against its
    contract `model`. `key` is the name of the table's key attribute (for the log line and the error)."""
    try:
        return model.model_validate(as_document(item))
    except ValidationError as broken:
        raise _broken(table, {key: _key_value(item.get(key))}, item, broken) from None


def _key_value(value: Any) -> Any:
    """The key as DynamoDB holds it (`"7"` of `{"N": "7"}`), whatever its type."""
    return next(iter(value.values())) if isinstance(value, Mapping) and value else value


def _broken(table: str, key: Mapping[str, Any], item: Mapping[str, Any], broken: ValidationError) -> UnreadableRecord:
    problems = [
        {"field": ".".join(str(part) for part in error["loc"]) or "(record)", "error": error["type"]}
        for error in broken.errors(include_input=False, include_url=False)
    ]
    logger.error(
        "a record breaks its contract",
        extra={"table": table, "key": dict(key), "contract": f"{CONTRACTS[table][0]}.v1", "problems": problems},
    )
    count_by(METRIC, "table", table)
    return UnreadableRecord(table, key, _owner(item))


def _owner(item: Mapping[str, Any]) -> int | None:
    """The record's `user`, if that attribute at least is a whole number."""
    value = item.get("user")
    user = from_attr(value) if isinstance(value, Mapping) and "N" in value else None
    return int(user) if user is not None and user == user.to_integral_value() else None
