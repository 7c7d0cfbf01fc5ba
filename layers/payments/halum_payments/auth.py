"""Bearer JWT -> user id, compatible with djangorestframework-simplejwt access tokens."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import jwt

from .config import Settings
from .errors import ConfigError, NotAuthenticated, TransientFault

MAX_TOKEN_LENGTH = 4096  # simplejwt tokens are ~250 bytes; anything huge is an attack or a mistake
MISSING = "Authentication credentials were not provided."
INVALID = "Given token not valid for any token type"
# Verified tokens, by their exact text, for this process: a client sends the same access token
# with every request until it expires, and verifying it (parse, HMAC, claims) is a third of a
# warm request. An entry lives until the token's own expiry (what verification checks) and at most
# VERIFIED_CACHE_SECONDS, so a JWKS key withdrawn at the identity provider stops working at most
# that much later than it would without this memory.
VERIFIED_CACHE_SIZE = 256
LAST_NUMERIC_DATE = 253402300800  # 10000-01-01T00:00:00Z: datetime's limit, and any issuer's
VERIFIED_CACHE_SECONDS = 300


class Authenticator:
    """Verifies access tokens. Built once per cold start; verification is pure CPU."""

    def __init__(self, settings: Settings) -> None:
        self._algorithms = list(settings.jwt_algorithms)
        self._issuer = settings.jwt_issuer
        self._audience = settings.jwt_audience
        self._leeway = settings.jwt_leeway_seconds
        self._jwks_client: Any = None
        self._secret: str | None = None
        self._verified: dict[str, tuple[int, float]] = {}  # token -> (user id, valid until)
        if settings.jwt_is_asymmetric:
            if not settings.jwt_jwks_url:
                raise ConfigError("JWT_JWKS_URL is required for public-key JWT_ALGORITHMS")
            self._jwks_url: str | None = settings.jwt_jwks_url
        else:
            if settings.jwt_secret is None or not settings.jwt_secret.get_secret_value():
                raise ConfigError("JWT_SECRET is required to verify access tokens")
            self._secret = settings.jwt_secret.get_secret_value()
            self._jwks_url = None

    def user_id(self, headers: Mapping[str, str]) -> int:
        token = bearer_token(headers)
        now = time.time()
        verified = self._verified.get(token)
        if verified is not None and now < verified[1]:
            return verified[0]
        claims = self._decode(token)
        if claims.get("token_type") != "access":
            raise NotAuthenticated(INVALID, invalid_token=True)
        user_id = parse_user_id(claims.get("user_id"))
        # PyJWT refuses a token once `exp <= now - leeway`; `exp` is required and numeric, but may be
        # any number: one past the last representable date (10**309 would overflow a float) is no
        # expiry a token issuer writes.
        expires = claims["exp"]
        if not expires < LAST_NUMERIC_DATE:
            raise NotAuthenticated(INVALID, invalid_token=True)
        valid_until = min(float(expires) + self._leeway, now + VERIFIED_CACHE_SECONDS)
        if len(self._verified) >= VERIFIED_CACHE_SIZE:
            self._verified.clear()  # simple and safe: the next requests re-verify their tokens
        self._verified[token] = (user_id, valid_until)
        return user_id

    def _decode(self, token: str) -> dict[str, Any]:
        # In JWKS mode the key is a PyJWK: it verifies only with its own algorithm, so a token
        # cannot pick an algorithm its key was not published for (an ES256 header on an RSA kid).
        key: Any = self._secret if self._secret is not None else self._signing_key(token)
        try:
            return jwt.decode(
                token,
                key,
                algorithms=self._algorithms,
                issuer=self._issuer,
                audience=self._audience,
                leeway=self._leeway,
                options={"require": ["exp", "user_id", "token_type"], "verify_sub": False, "verify_jti": False},
            )
        except jwt.PyJWTError:
            raise NotAuthenticated(INVALID, invalid_token=True) from None

    def _signing_key(self, token: str) -> jwt.PyJWK:
        if self._jwks_client is None:
            # No per-kid cache (cache_keys): it never expires, so a key revoked at the identity
            # provider would stay valid until the container is recycled. The JWK set cache
            # (lifespan) already keeps requests off the network.
            self._jwks_client = jwt.PyJWKClient(self._jwks_url or "", cache_keys=False, lifespan=900, timeout=3)
        client = self._jwks_client
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.PyJWTError:
            raise NotAuthenticated(INVALID, invalid_token=True) from None
        if not isinstance(kid, str) or not kid:
            raise NotAuthenticated(INVALID, invalid_token=True)
        try:
            client.get_signing_keys()  # cached; a failure here is the identity provider's, not the caller's
        except (jwt.PyJWTError, ValueError) as exc:  # unreachable, HTTP error, not JSON, no usable keys
            raise TransientFault(f"JWKS endpoint unusable: {exc}") from exc
        try:
            return client.get_signing_key(kid)
        except jwt.PyJWKClientConnectionError as exc:
            raise TransientFault(f"JWKS endpoint unreachable: {exc}") from exc
        except (jwt.PyJWTError, ValueError):
            raise NotAuthenticated(INVALID, invalid_token=True) from None


def bearer_token(headers: Mapping[str, str]) -> str:
    header = _header(headers, "authorization")
    if not header:
        raise NotAuthenticated(MISSING)
    parts = header.split()
    if not parts or parts[0].lower() != "bearer":
        raise NotAuthenticated(MISSING)  # another scheme: not ours to judge, as DRF does
    if len(parts) != 2:
        raise NotAuthenticated("Authorization header must contain two space-delimited values", invalid_token=True)
    if len(parts[1]) > MAX_TOKEN_LENGTH:
        raise NotAuthenticated(INVALID, invalid_token=True)
    return parts[1]


def parse_user_id(value: Any) -> int:
    if isinstance(value, bool):
        raise NotAuthenticated(INVALID, invalid_token=True)
    if isinstance(value, int):
        user_id = value
    elif isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 18:
        user_id = int(value)
    else:
        raise NotAuthenticated(INVALID, invalid_token=True)
    if not 0 < user_id < 10**18:
        raise NotAuthenticated(INVALID, invalid_token=True)
    return user_id


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:  # API Gateway lower-cases; direct invocations may not
        value = next((v for k, v in headers.items() if k.lower() == name), None)
    return value
