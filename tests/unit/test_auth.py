"""Who may call the API: simplejwt access tokens in, everything else out (401 + Bearer challenge).

Driven through a function built from the layer exactly as the real ones are (see
support/auth_app.py), so each case is what a caller sees: status, JSON body, WWW-Authenticate.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import jwt
import pytest
from support import JWT_SECRET, call, make_token
from support.auth_app import settings_from, whoami_function
from support.tokens import (
    claims,
    closed_port_url,
    ec_key,
    hmac_token,
    hs_token,
    jwks_server,
    rsa_key,
    tamper_payload,
    unsigned_token,
)

from halum_payments.auth import MISSING

pytestmark = pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")  # the HS512 case


@pytest.fixture(scope="module")
def keys() -> SimpleNamespace:
    return SimpleNamespace(rsa=rsa_key("rsa-1"), other_rsa=rsa_key("rsa-1"), ec=ec_key("ec-1"))


@pytest.fixture(scope="module")
def hs_function() -> Any:
    return whoami_function(settings_from())


def whoami(function: Any, authorization: str | None, query: str = "") -> Any:
    headers = {} if authorization is None else {"authorization": authorization}
    return call(function, "GET", "/whoami/", query=query, headers=headers)


def assert_unauthorized(reply: Any) -> None:
    """A 401 as DRF + simplejwt answer it: `{"detail"}` alone (no credentials), or with `code` (and, for a
    token that is not a valid access token, `messages`), and a Bearer challenge; never the user."""
    assert reply.status == 401, reply
    assert reply.headers["content-type"] == "application/json"
    body = reply.json
    assert isinstance(body, dict) and isinstance(body.get("detail"), str) and body["detail"], reply
    if body == NOT_PROVIDED:
        assert "invalid_token" not in reply.headers["www-authenticate"]
    else:
        assert body["code"] in ("token_not_valid", "bad_authorization_header"), reply
        assert set(body) <= {"detail", "code", "messages"}, reply
        if "messages" in body:
            (message,) = body["messages"]
            assert (message["token_class"], message["token_type"]) == ("AccessToken", "access")
            assert message["message"] in TOKEN_MESSAGES, reply
        assert 'error="invalid_token"' in reply.headers["www-authenticate"]
    assert reply.headers["www-authenticate"].startswith('Bearer realm="api"')
    assert '"user"' not in reply.text


def bearer(token: str) -> str:
    return f"Bearer {token}"


def token_not_valid(message: str) -> dict[str, Any]:
    """simplejwt's InvalidToken for an access token that fails `message`."""
    return {
        "detail": "Given token not valid for any token type",
        "code": "token_not_valid",
        "messages": [{"token_class": "AccessToken", "token_type": "access", "message": message}],
    }


NOT_PROVIDED = {"detail": MISSING}
TWO_VALUES = {
    "detail": "Authorization header must contain two space-delimited values",
    "code": "bad_authorization_header",
}
NO_USER = {"detail": "Token contained no recognizable user identification", "code": "token_not_valid"}
TOKEN_MESSAGES = {
    "Token is expired",
    "Token is invalid",
    "Token has wrong type",
    "Token has no type",
    "Token has no 'exp' claim",
}
EXPIRED, INVALID, WRONG_TYPE = (
    token_not_valid(m) for m in ("Token is expired", "Token is invalid", "Token has wrong type")
)
NOW = int(time.time())

# name -> (the Authorization header from the module's keys (None: no header), the body, the reason logged)
HOSTILE: dict[str, tuple[Callable[[SimpleNamespace], str | None], dict[str, Any], str | None]] = {
    "missing header": (lambda k: None, NOT_PROVIDED, None),
    "empty header": (lambda k: "", NOT_PROVIDED, None),
    "basic scheme": (lambda k: "Basic dXNlcjpwYXNzd29yZA==", NOT_PROVIDED, None),
    "token scheme with a valid token": (lambda k: f"Token {make_token(1)}", NOT_PROVIDED, None),
    "JWT scheme with a valid token": (lambda k: f"JWT {make_token(1)}", NOT_PROVIDED, None),
    "token without scheme": (lambda k: make_token(1), NOT_PROVIDED, None),
    "Bearer alone": (lambda k: "Bearer", TWO_VALUES, "two space-delimited"),
    "Bearer and a space": (lambda k: "Bearer ", TWO_VALUES, "two space-delimited"),
    "Bearer with two values": (lambda k: f"Bearer {make_token(1)} extra", TWO_VALUES, "two space-delimited"),
    "garbage": (lambda k: "Bearer not-a-jwt", INVALID, "malformed"),
    "three garbage segments": (lambda k: "Bearer aaa.bbb.ccc", INVALID, "malformed"),
    "four segments": (lambda k: bearer(make_token(1) + ".extra"), INVALID, "malformed"),
    "signature stripped": (lambda k: bearer(make_token(1).rsplit(".", 1)[0] + "."), INVALID, "bad signature"),
    "alg none, no signature": (lambda k: bearer(unsigned_token(claims())), INVALID, "algorithm not allowed"),
    "alg None, no signature": (
        lambda k: bearer(unsigned_token(claims(), alg="None")),
        INVALID,
        "algorithm not allowed",
    ),
    "alg NONE with a signature": (
        lambda k: bearer(unsigned_token(claims(), alg="NONE", signature=make_token(1).rsplit(".", 1)[1])),
        INVALID,
        "algorithm not allowed",
    ),
    "HS512 with the right secret": (
        lambda k: bearer(make_token(1, algorithm="HS512")),
        INVALID,
        "algorithm not allowed",
    ),
    "HS384 with the right secret": (
        lambda k: bearer(make_token(1, algorithm="HS384")),
        INVALID,
        "algorithm not allowed",
    ),
    "RS256 (HS/RS confusion)": (lambda k: bearer(k.rsa.sign(claims())), INVALID, "algorithm not allowed"),
    "ES256": (lambda k: bearer(k.ec.sign(claims())), INVALID, "algorithm not allowed"),
    "wrong key": (lambda k: bearer(make_token(1, secret="another-secret-" + "q" * 32)), INVALID, "bad signature"),
    "payload swapped to another user": (
        lambda k: bearer(tamper_payload(make_token(1), user_id="2")),
        INVALID,
        "bad signature",
    ),
    "expired": (
        lambda k: bearer(make_token(1, exp=int(time.time()) - 5, iat=int(time.time()) - 1805)),
        EXPIRED,
        "expired",
    ),
    "not yet valid (nbf)": (lambda k: bearer(make_token(1, nbf=int(time.time()) + 600)), INVALID, "not yet valid"),
    "missing exp": (
        lambda k: bearer(make_token(1, exp=None)),
        token_not_valid("Token has no 'exp' claim"),
        "missing exp",
    ),
    "exp not a number": (lambda k: bearer(make_token(1, exp="tomorrow")), INVALID, "malformed"),
    # PyJWT reads exp with int(): digits in a string pass its check, and once made a 500 here.
    "exp a string of digits": (lambda k: bearer(make_token(1, exp=str(NOW + 600))), INVALID, "not a number (str)"),
    "exp true": (lambda k: bearer(make_token(1, exp=True)), EXPIRED, "expired"),
    "expired and no token_type": (
        lambda k: bearer(make_token(1, exp=NOW - 5, token_type=None)),
        EXPIRED,
        "expired",
    ),  # simplejwt's order: the expiry first
    "no exp and not yet valid": (lambda k: bearer(make_token(1, exp=None, nbf=NOW + 600)), INVALID, "not yet valid"),
    # Validly signed, but past any float: once a 500 (OverflowError) instead of a refusal.
    "exp of 10**309": (lambda k: bearer(make_token(1, exp=10**309)), INVALID, "beyond the year 9999"),
    "exp of 10**309 and iat too": (lambda k: bearer(make_token(1, exp=10**309, iat=10**309)), INVALID, "not yet valid"),
    "exp past year 9999": (lambda k: bearer(make_token(1, exp=1e300)), INVALID, "beyond the year 9999"),
    "refresh token": (lambda k: bearer(make_token(1, token_type="refresh")), WRONG_TYPE, "wrong token type"),
    "missing token_type": (
        lambda k: bearer(make_token(1, token_type=None)),
        token_not_valid("Token has no type"),
        "missing token_type",
    ),
    "token_type Access (case)": (lambda k: bearer(make_token(1, token_type="Access")), WRONG_TYPE, "wrong token type"),
    "missing user_id": (lambda k: bearer(hs_token(claims(user_id=None))), NO_USER, "missing user_id"),
    "oversized token": (lambda k: bearer(make_token(1, padding="p" * 5000)), INVALID, "oversized"),
}

BAD_USER_IDS = [
    "abc",
    True,
    False,
    -1,
    "-1",
    0,
    "0",
    1.5,
    "1.5",
    "",
    " 1",
    "1e3",
    "\u0661",  # ARABIC-INDIC DIGIT ONE: str.isdigit() says yes
    [1],
    {"id": 1},
    10**18,
    "9" * 19,
]


@pytest.mark.parametrize("case", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_or_missing_credentials_are_401_as_simplejwt_answers(hs_function, keys, case, caplog):
    build, body, reason = case
    header = build(keys)
    caplog.set_level(logging.INFO)
    reply = whoami(hs_function, header)
    assert_unauthorized(reply)
    assert reply.json == body
    (record,) = [record for record in caplog.records if record.getMessage() == "request refused"]
    if reason is not None:  # the log line says precisely what failed...
        assert reason in record.reason, record.reason
    logged = str(vars(record))
    token = (header or "").removeprefix("Bearer ").strip()
    # ...and never carries the token, nor any of its parts
    assert all(part not in logged for part in token.split(".") if len(part) > 8), logged


@pytest.mark.parametrize("user_id", BAD_USER_IDS, ids=repr)
def test_a_user_id_that_is_not_a_positive_integer_is_401_without_a_recognizable_user(hs_function, user_id, caplog):
    caplog.set_level(logging.INFO)
    reply = whoami(hs_function, bearer(hs_token(claims(user_id=user_id))))
    assert_unauthorized(reply)
    assert reply.json == NO_USER
    (record,) = [record for record in caplog.records if record.getMessage() == "request refused"]
    assert "user_id claim" in record.reason


def test_missing_credentials_read_as_drf_does(hs_function):
    reply = whoami(hs_function, None)
    assert_unauthorized(reply)
    assert reply.json == {"detail": MISSING}
    assert "invalid_token" not in reply.headers["www-authenticate"]


def test_an_invalid_token_is_flagged_in_the_challenge(hs_function):
    reply = whoami(hs_function, bearer(make_token(1, token_type="refresh")))
    assert_unauthorized(reply)
    assert 'error="invalid_token"' in reply.headers["www-authenticate"]


def test_a_token_refused_twice_is_refused_for_the_same_reason(hs_function):
    """Refusals are not remembered: the second answer is worked out again, and is the same."""
    token = bearer(make_token(1, exp=NOW - 5, iat=NOW - 1805))
    assert whoami(hs_function, token).json == whoami(hs_function, token).json == EXPIRED


@pytest.mark.parametrize(
    ("user_id", "expected"),
    [("42", 42), (42, 42), ("1", 1), (999999999999999999, 999999999999999999)],
    ids=["string", "int", "one", "largest"],
)
def test_simplejwt_access_token_is_accepted_with_user_id_as_string_or_int(hs_function, user_id, expected):
    reply = whoami(hs_function, bearer(hs_token(claims(user_id=user_id))))
    assert reply.status == 200, reply
    assert reply.json["user"] == expected


def test_a_token_of_ordinary_size_with_extra_claims_is_accepted(hs_function):
    reply = whoami(hs_function, bearer(make_token(7, name="N" * 1500, email="n@example.com")))
    assert (reply.status, reply.json["user"]) == (200, 7)


def test_authentication_is_checked_before_the_query_is_validated(hs_function):
    assert_unauthorized(whoami(hs_function, None, query="n=abc"))
    assert_unauthorized(whoami(hs_function, bearer(make_token(1, token_type="refresh")), query="n=99"))
    reply = whoami(hs_function, bearer(make_token(1)), query="n=99")
    assert (reply.status, reply.json) == (
        400,
        {
            "detail": "n: Ensure this value is less than or equal to 10.",
            "n": ["Ensure this value is less than or equal to 10."],
        },
    )


# ------------------------------------------------------------------ issuer / audience

ISSUER = "https://auth.halumhut.example/"
AUDIENCE = "halum-payments"


@pytest.fixture(scope="module")
def iss_aud_function() -> Any:
    return whoami_function(settings_from(JWT_ISSUER=ISSUER, JWT_AUDIENCE=AUDIENCE))


@pytest.mark.parametrize(
    ("extra", "accepted"),
    [
        ({"iss": ISSUER, "aud": AUDIENCE}, True),
        ({"iss": ISSUER, "aud": [AUDIENCE, "other-api"]}, True),
        ({"iss": "https://evil.example/", "aud": AUDIENCE}, False),
        ({"iss": ISSUER.rstrip("/"), "aud": AUDIENCE}, False),
        ({"aud": AUDIENCE}, False),
        ({"iss": ISSUER, "aud": "other-api"}, False),
        ({"iss": ISSUER, "aud": []}, False),
        ({"iss": ISSUER}, False),
    ],
    ids=[
        "right",
        "audience in a list",
        "wrong issuer",
        "issuer differs by a slash",
        "missing issuer",
        "wrong audience",
        "empty audience",
        "missing audience",
    ],
)
def test_issuer_and_audience_are_checked_when_configured(iss_aud_function, extra, accepted):
    reply = whoami(iss_aud_function, bearer(make_token(5, **extra)))
    if accepted:
        assert (reply.status, reply.json["user"]) == (200, 5)
    else:
        assert_unauthorized(reply)


# ------------------------------------------------------------------ asymmetric mode (JWKS)


@pytest.fixture(scope="module")
def idp(keys):
    with jwks_server() as endpoint:
        yield endpoint


@pytest.fixture
def jwks(idp, keys):
    idp.publish(keys.rsa, keys.ec)
    idp.hits.clear()
    return idp


def jwks_function(url: str, algorithms: str = "RS256", **env: str) -> Any:
    return whoami_function(settings_from(JWT_ALGORITHMS=algorithms, JWT_JWKS_URL=url, JWT_SECRET="", **env))


@pytest.mark.parametrize("algorithms", ["RS256", "ES256", "RS256,ES256"])
def test_jwks_mode_accepts_a_token_signed_by_a_published_key(jwks, keys, algorithms):
    function = jwks_function(jwks.url, algorithms)
    signer = keys.ec if algorithms == "ES256" else keys.rsa
    reply = whoami(function, bearer(signer.sign(claims("11"))))
    assert (reply.status, reply.json["user"]) == (200, 11)


def test_jwks_is_fetched_once_not_per_request(jwks, keys):
    function = jwks_function(jwks.url)
    for user in (1, 2, 3, 4):
        assert whoami(function, bearer(keys.rsa.sign(claims(str(user))))).json["user"] == user
    assert len(jwks.hits) == 1


ASYMMETRIC_HOSTILE: dict[str, Callable[[SimpleNamespace], str]] = {
    "tampered payload": lambda k: tamper_payload(k.rsa.sign(claims()), user_id="2"),
    "signed by an unpublished key with a published kid": lambda k: k.other_rsa.sign(claims()),
    "unknown kid": lambda k: k.rsa.sign(claims(), kid="rotated-away"),
    "no kid": lambda k: jwt.encode(claims(), k.rsa.private, algorithm="RS256"),
    "HS256 keyed with the public key PEM": lambda k: hmac_token(
        claims(), k.rsa.public_pem, {"alg": "HS256", "kid": "rsa-1"}
    ),
    "HS256 keyed with the shared secret": lambda k: hmac_token(
        claims(), JWT_SECRET.encode(), {"alg": "HS256", "kid": "rsa-1"}
    ),
    "alg none": lambda k: unsigned_token(claims()),
    "ES256 when only RS256 is configured": lambda k: k.ec.sign(claims()),
    "expired": lambda k: k.rsa.sign(claims(exp=int(time.time()) - 5)),
    "refresh token": lambda k: k.rsa.sign(claims(token_type="refresh")),
    "missing user_id": lambda k: k.rsa.sign(claims(user_id=None)),
    "garbage": lambda k: "not.a.jwt",
}


@pytest.mark.parametrize("build", ASYMMETRIC_HOSTILE.values(), ids=ASYMMETRIC_HOSTILE.keys())
def test_jwks_mode_rejects(jwks, keys, build):
    assert_unauthorized(whoami(jwks_function(jwks.url), bearer(build(keys))))


def test_jwks_mode_rejects_a_token_whose_alg_does_not_match_its_key(jwks, keys):
    """An ES256 token naming the RSA key's kid, both algorithms configured: refused, not a 500."""
    function = jwks_function(jwks.url, "RS256,ES256")
    assert_unauthorized(whoami(function, bearer(keys.ec.sign(claims(), kid=keys.rsa.kid))))


def test_jwks_mode_sprayed_unknown_kids_do_not_hammer_the_identity_provider(jwks, keys):
    function = jwks_function(jwks.url)
    for n in range(20):
        assert_unauthorized(whoami(function, bearer(keys.rsa.sign(claims(), kid=f"random-{n}"))))
    assert len(jwks.hits) <= 2


def test_jwks_mode_stops_accepting_a_key_removed_from_the_jwks(jwks, keys, monkeypatch):
    """Revoking a leaked signing key at the identity provider must take effect once the JWKS cache
    expires (15 minutes), not only when the Lambda container is recycled."""
    clock = SimpleNamespace(now=time.monotonic())
    fake_time = SimpleNamespace(monotonic=lambda: clock.now, time=time.time)
    for module in (jwt.api_jwk, jwt.jwk_set_cache, jwt.jwks_client):
        monkeypatch.setattr(module, "time", fake_time)

    function = jwks_function(jwks.url)
    assert whoami(function, bearer(keys.rsa.sign(claims("3")))).status == 200
    jwks.publish(keys.ec)  # rsa-1 revoked
    clock.now += 16 * 60
    assert_unauthorized(whoami(function, bearer(keys.rsa.sign(claims("3")))))


@pytest.mark.parametrize(
    "breakage",
    ["unreachable", "http 500", "not json", "not an object", "no keys"],
)
@pytest.mark.parametrize("query", ["", "n=abc"], ids=["valid query", "invalid query"])
def test_jwks_endpoint_failure_is_a_retryable_503_never_a_crash(jwks, keys, breakage, query):
    """The identity provider's outage is not the caller's fault (not 401) nor a bug of ours (not 500)."""
    url = closed_port_url() if breakage == "unreachable" else jwks.url
    jwks.status, jwks.body = {
        "unreachable": (200, jwks.body),
        "http 500": (500, b'{"error": "down"}'),
        "not json": (200, b"<html>maintenance</html>"),
        "not an object": (200, b"[]"),
        "no keys": (200, json.dumps({"keys": []}).encode()),
    }[breakage]
    reply = whoami(jwks_function(url), bearer(keys.rsa.sign(claims())), query=query)
    assert reply.status == 503, reply
    assert reply.json == {"detail": "Temporarily unavailable, please retry."}
    assert reply.headers.get("retry-after")


def test_a_remembered_token_is_verified_again_once_it_expires(monkeypatch):
    """Verified tokens are remembered per process (a client repeats its token on every request);
    the memory never outlives the token: past its `exp` it goes back to PyJWT, which refuses an
    expired token (the "expired" case above). The memory's clock is injected: no sleeping."""
    issued = int(time.time())  # not the module's NOW: the suite may run long after its import
    now = [float(issued)]
    settings = settings_from()
    function = whoami_function(settings, clock=lambda: now[0])
    token = make_token(9, exp=issued + 120)
    decoded = 0
    real_decode = jwt.decode

    def counting_decode(*args: Any, **kwargs: Any) -> Any:
        nonlocal decoded
        decoded += 1
        return real_decode(*args, **kwargs)

    monkeypatch.setattr(jwt, "decode", counting_decode)
    assert whoami(function, bearer(token)).json["user"] == 9
    now[0] = issued + 119
    assert whoami(function, bearer(token)).json["user"] == 9
    assert decoded == 1  # remembered
    now[0] = issued + 120 + settings.jwt_leeway_seconds
    assert whoami(function, bearer(token)).json["user"] == 9  # PyJWT's real clock: not yet expired
    assert decoded == 2  # verified again: the memory ended with the token


def test_a_remembered_token_does_not_vouch_for_a_tampered_copy(hs_function):
    token = make_token(5)
    assert whoami(hs_function, bearer(token)).json["user"] == 5
    assert_unauthorized(whoami(hs_function, bearer(tamper_payload(token, user_id="6"))))
    assert_unauthorized(whoami(hs_function, bearer(token[:-2] + ("AA" if token[-2:] != "AA" else "BB"))))
