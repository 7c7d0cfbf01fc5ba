"""Opaque, tamper-evident page cursors: base64url(JSON) + "." + base64url(HMAC-SHA256)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any

from .errors import BadRequest
from .secrets import Secret

# Any cursor we did not mint, unchanged, gets this one message (no oracle: malformed, truncated, edited or
# signed with another key all read the same). Cursors do not expire; one we minted is refused only when
# it is used for another user or another listing (halum_payments.logic.listing), saying so.
INVALID_CURSOR = (
    "Invalid cursor: it is malformed or has been altered. Send it exactly as the page gave it "
    "(or start again without a cursor)."
)
MAX_CURSOR_LENGTH = 512


@dataclass(frozen=True, slots=True)
class Cursor:
    user: int
    ordering: str
    status: str | None
    method: str | None
    forward: bool
    anchor: dict[str, Any]  # {"id": int, "created_sort"?: str}: the row to continue after (or before)


def derive_key(secret: str) -> bytes:
    """A key of its own, so a cursor can never double as a token signature."""
    return hmac.new(secret.encode(), b"halum-payments/page-cursor/v1", hashlib.sha256).digest()


class CursorCodec:
    """Signs with a key derived from `key`'s value as it is now when `key` is a `Secret` (rotated,
    secrets.py): a cursor signed before a rotation verifies once the other environments have the new
    value, read again when a cursor does not verify."""

    def __init__(self, key: bytes | Secret) -> None:
        self._secret = key if isinstance(key, Secret) else None
        self._key = key if isinstance(key, bytes) else b""
        self._derived_from: str | None = None

    def encode(self, cursor: Cursor) -> str:
        payload = json.dumps(
            {
                "v": 1,
                "u": cursor.user,
                "o": cursor.ordering,
                "s": cursor.status,
                "m": cursor.method,
                "d": "n" if cursor.forward else "p",
                "k": cursor.anchor,
            },
            separators=(",", ":"),
            sort_keys=True,
        ).encode()
        return f"{_b64(payload)}.{_b64(self._sign(payload))}"

    def decode(self, text: str) -> Cursor:
        """Any cursor we did not mint, unchanged, is a 400 with one message (INVALID_CURSOR)."""
        if len(text) > MAX_CURSOR_LENGTH or text.count(".") != 1:
            raise BadRequest(INVALID_CURSOR)
        body, signature = text.split(".")
        try:
            payload, presented = _unb64(body), _unb64(signature)
        except (binascii.Error, ValueError):
            raise BadRequest(INVALID_CURSOR) from None
        valid = hmac.compare_digest(presented, self._sign(payload))
        if not valid and self._secret is not None and self._secret.reread_after_refusal():
            valid = hmac.compare_digest(presented, self._sign(payload))
        if not valid:
            raise BadRequest(INVALID_CURSOR)
        try:
            data = json.loads(payload)
            anchor = data["k"]
            cursor = Cursor(
                user=int(data["u"]),
                ordering=str(data["o"]),
                status=data["s"],
                method=data["m"],
                forward=data["d"] == "n",
                anchor={
                    "id": int(anchor["id"]),
                    **({"created_sort": str(anchor["created_sort"])} if "created_sort" in anchor else {}),
                },
            )
        except (ValueError, KeyError, TypeError):
            raise BadRequest(INVALID_CURSOR) from None
        if data.get("v") != 1:
            raise BadRequest(INVALID_CURSOR)
        return cursor

    def _sign(self, payload: bytes) -> bytes:
        if self._secret is not None and self._secret.value() != self._derived_from:
            self._derived_from = self._secret.value()
            self._key = derive_key(self._derived_from)
        return hmac.new(self._key, payload, hashlib.sha256).digest()[:18]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    if not text or not text.isascii() or not all(c.isalnum() or c in "-_" for c in text):
        raise ValueError("not base64url")
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if _b64(data) != text:
        # The last character of unpadded base64 carries spare bits that decoding ignores: without
        # this, several spellings of one cursor would pass, and a changed cursor would still verify.
        raise ValueError("not canonical base64url")
    return data
