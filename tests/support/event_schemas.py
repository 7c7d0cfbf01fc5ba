"""The domain events' JSON Schemas (schemas/events/<detail-type>.v<version>.json): every event a
test sees (unit, integration, e2e) is checked against the schema its detail-type and version name."""

from __future__ import annotations

import functools
import json
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker

from support import ROOT

SCHEMAS = ROOT / "schemas" / "events"
SOURCE = "halum.payments"  # restated from docs/events.md, not imported from the layer


@functools.cache
def validator(detail_type: str, version: int) -> Draft202012Validator:
    path = SCHEMAS / f"{detail_type}.v{version}.json"
    assert path.exists(), f"no schema for {detail_type} version {version} ({path.name})"
    schema = json.loads(path.read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=FormatChecker())


def check(detail_type: str, detail: dict[str, Any]) -> None:
    """Raise if `detail` is not what its schema says."""
    errors = sorted(validator(detail_type, detail.get("version", 0)).iter_errors(detail), key=str)
    assert not errors, f"{detail_type}: " + "; ".join(e.message for e in errors)


def check_envelope(event: dict[str, Any]) -> None:
    """An EventBridge event as a target receives it: id, source, detail-type, time, detail."""
    for key in ("id", "source", "detail-type", "time", "detail"):
        assert key in event, f"event without {key}: {event}"
    assert event["source"] == SOURCE, event
    check(event["detail-type"], event["detail"])
