"""Webhook signatures computed here from their definitions (standard library only), so that the tests
never check the verifiers against themselves or against stripe-python's own signer."""

from __future__ import annotations

import hashlib
import hmac
import time


def gateway_signature(body: bytes, secret: str) -> str:
    """The generic gateway's `X-Webhook-Signature`: lowercase hex HMAC-SHA256 of the raw body."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def stripe_signature(body: bytes, secret: str, timestamp: int | None = None) -> str:
    """Stripe's `Stripe-Signature` header: `t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<body>">`."""
    stamp = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={stamp},v1={mac}"
