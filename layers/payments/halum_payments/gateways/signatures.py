"""Webhook signature verifiers. Each accepts several secrets so a rotation never drops events."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Sequence
from typing import Any

from ..errors import BadGatewaySignature, BadSignature
from ..secrets import Secret, checked_with, split_values

MAX_SIGNATURE_HEADER = 2048


def verify_gateway_signature(body: bytes, header: str | None, secrets: Sequence[str]) -> None:
    """`header` is the lowercase hex HMAC-SHA256 of the raw body, optionally prefixed `sha256=`."""
    if not header or len(header) > MAX_SIGNATURE_HEADER:
        raise BadGatewaySignature("Missing or invalid webhook signature.")
    presented = header.strip()
    if presented.lower().startswith("sha256="):
        presented = presented[len("sha256=") :]
    # Hex is case-insensitive: the same MAC in uppercase (as e.g. .NET's Convert.ToHexString
    # writes it) is the same MAC.
    presented_bytes = presented.lower().encode("ascii", "replace")
    matched = False
    for secret in secrets:
        expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest().encode()
        # Check every secret (no early exit) so timing does not reveal which one matched.
        matched |= hmac.compare_digest(expected, presented_bytes)
    if not matched:
        raise BadGatewaySignature("Missing or invalid webhook signature.")


def verify_stripe_event(
    body: bytes, header: str | None, secrets: Sequence[str], tolerance: int = 300
) -> dict[str, Any]:
    """Verify with stripe-python's own verifier (constant-time, timestamp tolerance); return the event."""
    import stripe

    if not header or len(header) > MAX_SIGNATURE_HEADER or not header.isascii():
        # Non-ASCII: stripe-python's compare_digest raises TypeError on it (a 500, not a refusal).
        raise BadSignature("Missing or invalid Stripe signature.")
    try:
        payload = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadSignature("Missing or invalid Stripe signature.") from None
    for secret in secrets:
        try:
            stripe.WebhookSignature.verify_header(payload, header, secret, tolerance)
        except stripe.SignatureVerificationError:
            continue
        try:
            event = json.loads(payload)
        except (ValueError, RecursionError):  # JSONDecodeError, or an integer past Python's 4,300-digit limit
            raise BadSignature("Signed payload is not JSON.") from None
        if not _is_stripe_event(event):
            raise BadSignature("Signed payload is not a Stripe event.")
        return event
    raise BadSignature("Missing or invalid Stripe signature.")


def _is_stripe_event(event: Any) -> bool:
    """The shape every Stripe event has and the handlers rely on: a non-empty id (the idempotency
    key), a type, and `data.object` an object."""
    if not isinstance(event, dict):
        return False
    data = event.get("data")
    return (
        isinstance(event.get("id"), str)
        and bool(event["id"])
        and isinstance(event.get("type"), str)
        and isinstance(data, dict)
        and isinstance(data.get("object"), dict)
    )


def verify_gateway_signature_with(secret: Secret, body: bytes, header: str | None) -> None:
    """verify_gateway_signature with the secret's current values (comma-separated during a rotation),
    read again once if they refuse the signature: the gateway may sign with a rotated secret already."""
    checked_with(secret, lambda text: verify_gateway_signature(body, header, split_values(text)), BadSignature)


def verify_stripe_event_with(secret: Secret, body: bytes, header: str | None) -> dict[str, Any]:
    """verify_stripe_event with the secret's current values, read again once if they refuse it."""
    return checked_with(secret, lambda text: verify_stripe_event(body, header, split_values(text)), BadSignature)
