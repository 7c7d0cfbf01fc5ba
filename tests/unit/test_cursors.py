"""Page cursors are tamper-evident: only a cursor we minted, byte for byte, is accepted."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import string

import pytest
from support import JWT_SECRET

from halum_payments.cursors import INVALID_CURSOR, MAX_CURSOR_LENGTH, Cursor, CursorCodec, derive_key
from halum_payments.errors import BadRequest
from halum_payments.http import status_of

CODEC = CursorCodec(derive_key(JWT_SECRET))
B64URL = string.ascii_letters + string.digits + "-_"

CURSORS = {
    "id forward": Cursor(1, "id", None, None, True, {"id": 7}),
    "id backward, filtered": Cursor(42, "-id", "completed", "stripe", False, {"id": 123456789}),
    "created_at": Cursor(
        3,
        "-created_at",
        "pending",
        None,
        True,
        {"id": 9, "created_sort": "2024-03-01T05:00:00.250000Z#0000000000000000009"},
    ),
}


def assert_invalid(text: str, codec: CursorCodec = CODEC) -> None:
    with pytest.raises(BadRequest) as caught:
        codec.decode(text)
    assert caught.value.message == INVALID_CURSOR
    assert status_of(caught.value) == 400


@pytest.mark.parametrize("cursor", CURSORS.values(), ids=CURSORS.keys())
def test_round_trip(cursor):
    text = CODEC.encode(cursor)
    assert CODEC.decode(text) == cursor
    assert len(text) <= MAX_CURSOR_LENGTH
    assert all(c in B64URL + "." for c in text), "must survive a query string unescaped"


@pytest.mark.parametrize("cursor", CURSORS.values(), ids=CURSORS.keys())
def test_any_one_character_change_is_rejected(cursor):
    text = CODEC.encode(cursor)
    for position, original in enumerate(text):
        if original == ".":
            replacements = set(B64URL[:8]) | {"=", "-"}
        else:
            index = B64URL.index(original)
            # Neighbours differ in the low bits (the spare bits of a base64 tail), the XOR in the high ones.
            neighbours = {B64URL[(index + step) % 64] for step in (1, -1, 2, 3)} | {
                B64URL[index ^ 32],
                B64URL[index ^ 16],
            }
            replacements = neighbours | {".", "=", "+", "/", " ", "%"}
        for replacement in replacements - {original}:
            assert_invalid(text[:position] + replacement + text[position + 1 :])


@pytest.mark.parametrize("cursor", CURSORS.values(), ids=CURSORS.keys())
def test_truncated_or_extended_cursor_is_rejected(cursor):
    text = CODEC.encode(cursor)
    for end in range(len(text)):
        assert_invalid(text[:end])
    for start in range(1, len(text)):
        assert_invalid(text[start:])
    for extra in ("A", "=", "==", ".", "\n"):
        assert_invalid(text + extra)


@pytest.mark.parametrize(
    "text",
    [
        "",
        ".",
        "..",
        "abc",
        "abc.def",
        "a.b.c",
        "!!!.???",
        "eyJ2IjoxfQ",
        "eyJ2IjoxfQ.",
        "é" * 10 + ".AAAA",
        "x" * (MAX_CURSOR_LENGTH + 1),
        "null",
        "%00.%00",
    ],
    ids=repr,
)
def test_garbage_is_rejected(text):
    assert_invalid(text)


def test_a_cursor_signed_with_another_key_is_rejected():
    forged = CursorCodec(derive_key("another-deployment-secret")).encode(CURSORS["id forward"])
    assert_invalid(forged)


def test_the_cursor_key_is_not_the_token_secret():
    """A cursor signed with the raw JWT secret is refused: cursors and tokens never share a key."""
    assert_invalid(CursorCodec(JWT_SECRET.encode()).encode(CURSORS["id forward"]))


def _mint(payload: bytes) -> str:
    """A correctly signed cursor around any payload (what only a holder of the key could make)."""
    signature = hmac.new(derive_key(JWT_SECRET), payload, hashlib.sha256).digest()[:18]
    b64 = lambda data: base64.urlsafe_b64encode(data).rstrip(b"=").decode()  # noqa: E731
    return f"{b64(payload)}.{b64(signature)}"


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b"\xff\xfe",
        b"null",
        b"[]",
        b"{}",
        json.dumps({"v": 2, "u": 1, "o": "id", "s": None, "m": None, "d": "n", "k": {"id": 1}}).encode(),
        json.dumps({"v": 1, "u": 1, "o": "id", "s": None, "m": None, "d": "n", "k": {"id": "x"}}).encode(),
        json.dumps({"v": 1, "u": 1, "o": "id", "s": None, "m": None, "d": "n", "k": []}).encode(),
    ],
    ids=["not json", "not utf-8", "null", "array", "empty object", "other version", "bad anchor", "anchor list"],
)
def test_a_signed_cursor_of_an_unknown_shape_is_still_only_a_400(payload):
    assert_invalid(_mint(payload))
