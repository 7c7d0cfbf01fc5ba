"""Bearer JWT -> user id, compatible with djangorestframework-simplejwt access tokens.

Refusals answer as simplejwt's `JWTAuthentication` does (rest_framework_simplejwt 5.5: tokens.py,
backends.py, authentication.py, exceptions.py), so the platform's front ends keep working: they
refresh their token when `code` is "token_not_valid". The log gets a specific `reason` (never the
token); the caller gets simplejwt's own words, which name no more than simplejwt's do.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import jwt

from .config import Settings
from .errors import TOKEN_INVALID, ConfigError, InvalidToken, NotAuthenticated, TransientFault
from .secrets import Secret, checked_with

MAX_TOKEN_LENGTH = 4096  # simplejwt tokens are ~250 bytes; anything huge is an attack or a mistake
MISSING = "Authentication credentials were not provided."  # DRF's NotAuthenticated
TWO_VALUES = "Authorization header must contain two space-delimited values"
NO_USER = "Token contained no recognizable user identification"
# simplejwt's per-token-class messages (AccessToken is the only class the platform configures).
EXPIRED = "Token is expired"
NO_EXP = "Token has no 'exp' claim"
NO_TYPE = "Token has no type"
WRONG_TYPE = "Token has wrong type"
# Verified tokens, by their exact text, for this process: a client sends the same access token
# with every request until it expires, and verifying it (parse, HMAC, claims) is a third of a
# warm request. An entry lives until the token's own expiry (what verification checks) and at most
# VERIFIED_CACHE_SECONDS, so a JWKS key withdrawn at the identity provider stops working at most
# that much later than it would without this memory.
VERIFIED_CACHE_SIZE = 256
LAST_NUMERIC_DATE = 253402300800  # 10000-01-01T00:00:00Z: datetime's limit, and any issuer's
VERIFIED_CACHE_SECONDS = 300


# PyJWT's refusals: (simplejwt's message, the reason logged). Most specific class first.
_PYJWT_REFUSALS: tuple[tuple[type[jwt.PyJWTError], str, str], ...] = (
    (jwt.ExpiredSignatureError, EXPIRED, "expired"),
    (jwt.InvalidAlgorithmError, TOKEN_INVALID, "algorithm not allowed"),
    (jwt.InvalidSignatureError, TOKEN_INVALID, "bad signature"),
    (jwt.InvalidAudienceError, TOKEN_INVALID, "wrong audience"),
    (jwt.InvalidIssuerError, TOKEN_INVALID, "wrong issuer"),
    (jwt.ImmatureSignatureError, TOKEN_INVALID, "not yet valid (nbf or iat in the future)"),
    (jwt.InvalidIssuedAtError, TOKEN_INVALID, "iat claim is not a number"),
    (jwt.DecodeError, TOKEN_INVALID, "malformed token or claim"),
)
_MISSING_CLAIMS = {"iss": "wrong issuer (no iss claim)", "aud": "wrong audience (no aud claim)"}


def _refusal(error: jwt.PyJWTError) -> InvalidToken:
    if isinstance(error, jwt.MissingRequiredClaimError):  # PyJWT requires iss/aud when they are configured
        return InvalidToken(_MISSING_CLAIMS.get(error.claim, f"missing {error.claim} claim"))
    for kind, message, reason in _PYJWT_REFUSALS:
        if isinstance(error, kind):
            return InvalidToken(reason, message)
    return InvalidToken(f"invalid token ({type(error).__name__})")


class Authenticator:
    """Verifies access tokens. Built once per cold start; verification is pure CPU."""

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock  # the verified-token memory's clock (PyJWT reads the real one)
        self._algorithms = list(settings.jwt_algorithms)
        self._issuer = settings.jwt_issuer
        self._audience = settings.jwt_audience
        self._leeway = settings.jwt_leeway_seconds
        self._jwks_client: Any = None
        self._secret: Secret | None = None  # HMAC: the key, as rotated (secrets.py)
        self._key: str | None = None  # the key the verified tokens below were verified with
        self._verified: dict[str, tuple[int, float]] = {}  # token -> (user id, valid until)
        if settings.jwt_is_asymmetric:
            if not settings.jwt_jwks_url:
                raise ConfigError("JWT_JWKS_URL is required for public-key JWT_ALGORITHMS")
            self._jwks_url: str | None = settings.jwt_jwks_url
        else:
            self._secret = settings.secret("jwt_secret")
            if self._secret is None:
                raise ConfigError("JWT_SECRET is required to verify access tokens")
            self._jwks_url = None

    def user_id(self, headers: Mapping[str, str]) -> int:
        token = bearer_token(headers)
        now = self._clock()
        self._current_key()  # a rotated key forgets what the old one verified
        verified = self._verified.get(token)
        if verified is not None and now < verified[1]:
            return verified[0]
        claims = self._decode(token)
        # In simplejwt's order, after the signature and PyJWT's time checks: exp present, token type
        # present and "access", then the user claim. PyJWT refuses a token once `exp <= now - leeway`
        # and reads `exp` with int(), which also takes "123" or True: only a JSON number is an expiry
        # here, and one past the last representable date (10**309 would overflow a float) is none an
        # issuer writes.
        expires = claims.get("exp")
        if expires is None:
            raise InvalidToken("missing exp claim", NO_EXP)
        if isinstance(expires, bool) or not isinstance(expires, (int, float)):
            raise InvalidToken(f"exp claim is not a number ({type(expires).__name__})")
        if not expires < LAST_NUMERIC_DATE:
            raise InvalidToken("exp claim beyond the year 9999")
        token_type = claims.get("token_type")
        if token_type is None:
            raise InvalidToken("missing token_type claim", NO_TYPE)
        if token_type != "access":  # noqa: S105 - a token type, not a secret
            raise InvalidToken(f"wrong token type ({str(token_type)[:20]!r})", WRONG_TYPE)
        user_id = parse_user_id(claims.get("user_id"))
        valid_until = min(float(expires) + self._leeway, now + VERIFIED_CACHE_SECONDS)
        if len(self._verified) >= VERIFIED_CACHE_SIZE:
            self._verified.clear()  # simple and safe: the next requests re-verify their tokens
        self._verified[token] = (user_id, valid_until)
        return user_id

    def _current_key(self) -> str | None:
        if self._secret is None:
            return None
        key = self._secret.value()
        if key != self._key:
            self._verified.clear()
            self._key = key
        return key

    def _decode(self, token: str) -> dict[str, Any]:
        try:
            if self._secret is None:
                # In JWKS mode the key is a PyJWK: it verifies only with its own algorithm, so a token
                # cannot pick an algorithm its key was not published for (an ES256 header on an RSA kid).
                return self._verify(token, self._signing_key(token))
            # A token the key refuses may be signed with a key rotated since it was read: read it again.
            return checked_with(self._secret, lambda key: self._verify(token, key), jwt.InvalidSignatureError)
        except jwt.PyJWTError as error:
            raise _refusal(error) from None

    def _verify(self, token: str, key: Any) -> dict[str, Any]:
        return jwt.decode(
            token,
            key,
            algorithms=self._algorithms,
            issuer=self._issuer,
            audience=self._audience,
            leeway=self._leeway,
            # `exp` and `token_type` are required, but checked after decoding (simplejwt's order).
            options={"verify_sub": False, "verify_jti": False},
        )

    def _signing_key(self, token: str) -> jwt.PyJWK:
        if self._jwks_client is None:
            # No per-kid cache (cache_keys): it never expires, so a key revoked at the identity
            # provider would stay valid until the container is recycled. The JWK set cache
            # (lifespan) already keeps requests off the network.
            self._jwks_client = jwt.PyJWKClient(self._jwks_url or "", cache_keys=False, lifespan=900, timeout=3)
        client = self._jwks_client
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.PyJWTError as error:
            raise _refusal(error) from None
        if not isinstance(kid, str) or not kid:
            raise InvalidToken("no kid in the token header")
        try:
            client.get_signing_keys()  # cached; a failure here is the identity provider's, not the caller's
        except (jwt.PyJWTError, ValueError) as exc:  # unreachable, HTTP error, not JSON, no usable keys
            raise TransientFault(f"JWKS endpoint unusable: {exc}") from exc
        try:
            return client.get_signing_key(kid)
        except jwt.PyJWKClientConnectionError as exc:
            raise TransientFault(f"JWKS endpoint unreachable: {exc}") from exc
        except (jwt.PyJWTError, ValueError):
            raise InvalidToken("unknown or unusable signing key (kid)") from None


def bearer_token(headers: Mapping[str, str]) -> str:
    header = _header(headers, "authorization")
    if not header:
        raise NotAuthenticated(MISSING)
    parts = header.split()
    if not parts or parts[0].lower() != "bearer":
        raise NotAuthenticated(MISSING)  # another scheme: not ours to judge, as DRF does
    if len(parts) != 2:
        raise InvalidToken("not two space-delimited values", None, detail=TWO_VALUES, code="bad_authorization_header")
    if len(parts[1]) > MAX_TOKEN_LENGTH:
        raise InvalidToken(f"oversized token ({len(parts[1])} characters)")
    return parts[1]


def parse_user_id(value: Any) -> int:
    """The `user_id` claim: simplejwt 5.3-5.5.0 write an integer primary key as a JSON number, 5.5.1
    and later as a string; both are accepted. Anything else is simplejwt's "no recognizable user"."""
    if value is None:
        raise InvalidToken("missing user_id claim", None, detail=NO_USER)
    if isinstance(value, bool):
        raise InvalidToken("user_id claim is not an integer (boolean)", None, detail=NO_USER)
    if isinstance(value, int):
        user_id = value
    elif isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 18:
        user_id = int(value)
    else:
        raise InvalidToken(f"user_id claim is not an integer ({type(value).__name__})", None, detail=NO_USER)
    if not 0 < user_id < 10**18:
        raise InvalidToken("user_id claim out of range", None, detail=NO_USER)
    return user_id


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:  # API Gateway lower-cases; direct invocations may not
        value = next((v for k, v in headers.items() if k.lower() == name), None)
    return value
