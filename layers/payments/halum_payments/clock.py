"""Timestamps: ISO-8601 UTC with a `Z`, as DRF renders them."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now() -> datetime:
    return datetime.now(UTC)


def format_timestamp(moment: datetime) -> str:
    moment = moment.astimezone(UTC)
    if moment.microsecond:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_timestamp(text: str) -> datetime:
    """Accepts ISO-8601 with `Z` or an offset; a naive time is refused (ambiguous)."""
    moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError(f"timestamp without a timezone: {text!r}")
    return moment.astimezone(UTC)


def sortable(text: str) -> str:
    """A fixed-width UTC form whose string order is time order (for sort keys)."""
    return parse_timestamp(text).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def now_text() -> str:
    return format_timestamp(utc_now())
