"""The error bodies DRF clients read: `{"detail": "..."}`, plus field-keyed messages on a 400 and
simplejwt's `code`/`messages` on a 401 (halum_payments.http.InvalidInput, halum_payments.auth.InvalidToken)."""

from __future__ import annotations

from typing import Any

SIMPLEJWT_KEYS = {"detail", "code", "messages"}


def assert_error_body(status: int, body: Any, where: str = "") -> None:
    assert isinstance(body, dict), where
    assert isinstance(body.get("detail"), str) and body["detail"], where
    extra = {key: value for key, value in body.items() if key != "detail"}
    if status == 401:
        assert set(body) <= SIMPLEJWT_KEYS, where
        return
    if status != 400:
        assert not extra, where
        return
    for name, messages in extra.items():  # each field at fault, or non_field_errors: its messages
        assert isinstance(messages, list) and messages, where
        assert all(isinstance(message, str) and message for message in messages), where
        for message in messages:
            assert (message if name == "non_field_errors" else f"{name}: {message}") in body["detail"], where
