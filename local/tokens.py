"""Access tokens shaped like the platform's (djangorestframework-simplejwt defaults), for local use.

`python -m local.tokens [USER_ID]` prints a ready-to-paste header signed with `JWT_SECRET` (or the
local default the server prints). Standard library only: HS256 needs nothing more.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import os
import sys
import time
import uuid

from local.defaults import DEMO_USER, LOCAL_JWT_SECRET

DEMO_TTL_SECONDS = 12 * 3600


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def mint(user_id: int | str, secret: str, ttl_seconds: int = DEMO_TTL_SECONDS) -> str:
    """An HS256 access token with simplejwt's claims (`user_id` as a string, as simplejwt writes it)."""
    now = int(time.time())
    header = {"alg": "HS256", "typ": "JWT"}
    claims = {
        "token_type": "access",
        "exp": now + ttl_seconds,
        "iat": now,
        "jti": uuid.uuid4().hex,
        "user_id": str(user_id),
    }
    signing_input = ".".join(_b64url(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims))
    signature = hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64url(signature)}"


def header_line(user_id: int | str, secret: str, ttl_seconds: int = DEMO_TTL_SECONDS) -> str:
    return f"Authorization: Bearer {mint(user_id, secret, ttl_seconds)}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.tokens", description=__doc__.splitlines()[0])
    parser.add_argument("user_id", nargs="?", type=int, default=DEMO_USER, help=f"default {DEMO_USER}")
    parser.add_argument("--ttl", type=int, default=DEMO_TTL_SECONDS, help="lifetime in seconds (default 12 h)")
    args = parser.parse_args(argv)
    if args.user_id < 1 or args.ttl < 1:
        parser.error("user_id and --ttl must be positive")
    secret = os.environ.get("JWT_SECRET", "").strip() or LOCAL_JWT_SECRET
    print(header_line(args.user_id, secret, args.ttl))
    return 0


if __name__ == "__main__":
    sys.exit(main())
