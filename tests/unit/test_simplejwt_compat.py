"""Tokens from a real djangorestframework-simplejwt, and the same answers as simplejwt for the same header.

The platform's front ends log in against its Django project (simplejwt) and call this service with the
access token they got; when a call is refused they look at `code` (`token_not_valid`: refresh, retry).
Tokens here are minted by the installed simplejwt (tests/django_simplejwt: a tiny Django settings
module, simplejwt's defaults, the platform's 30-minute access lifetime); the 5.3 shape (`user_id` an
integer) is 5.3.1's `for_user` on the same machinery (see tests/django_simplejwt/__init__.py). The
answers are compared with DRF + simplejwt's own, computed here for the very same header.
"""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest
from django_simplejwt import access_token, reference_answer, refresh_token
from support import JWT_SECRET, call, make_token
from support.auth_app import settings_from, whoami_function
from support.tokens import claims, hs_token, rsa_key, tamper_payload, unsigned_token

EXPIRED_BODY = {
    "detail": "Given token not valid for any token type",
    "code": "token_not_valid",
    "messages": [{"token_class": "AccessToken", "token_type": "access", "message": "Token is expired"}],
}
VERSIONS = {"5.3": int, "5.5": str}  # simplejwt version -> how it writes `user_id`


@pytest.fixture(scope="module")
def function() -> Any:
    return whoami_function(settings_from())


def whoami(function: Any, authorization: str | None, method: str = "GET") -> Any:
    headers = {} if authorization is None else {"authorization": authorization}
    return call(function, method, "/whoami/", headers=headers)


@pytest.mark.parametrize("version", VERSIONS)
def test_an_access_token_from_simplejwt_is_accepted(function, version):
    token = access_token(42, version=version)
    claim = jwt.decode(token, options={"verify_signature": False})["user_id"]
    assert type(claim) is VERSIONS[version]  # the two shapes really are both covered
    reply = whoami(function, f"Bearer {token}")
    assert (reply.status, reply.json["user"]) == (200, 42), reply


@pytest.mark.parametrize("version", VERSIONS)
def test_an_expired_access_token_from_simplejwt_is_refused_with_simplejwts_body(function, version):
    token = access_token(42, version=version, expired=True)
    reply = whoami(function, f"Bearer {token}")
    assert (reply.status, reply.json) == (401, EXPIRED_BODY), reply
    assert reference_answer(f"Bearer {token}")[:2] == (401, EXPIRED_BODY)
    assert reply.headers["www-authenticate"] == 'Bearer realm="api", error="invalid_token"'


def test_a_refresh_token_from_simplejwt_is_refused_as_simplejwt_refuses_it(function):
    token = refresh_token(42)
    reply = whoami(function, f"Bearer {token}")
    status, body, _ = reference_answer(f"Bearer {token}")
    assert (reply.status, reply.json) == (status, body) == (401, {**EXPIRED_BODY, "messages": [
        {"token_class": "AccessToken", "token_type": "access", "message": "Token has wrong type"}]})  # fmt: skip


def _now() -> int:
    return int(time.time())


# Headers whose answer must be simplejwt's, word for word (status and body; our challenge starts with its).
SAME_AS_SIMPLEJWT: dict[str, Any] = {
    "no header": lambda: None,
    "empty header": lambda: "",
    "basic scheme": lambda: "Basic dXNlcjpwYXNzd29yZA==",
    "a token without a scheme": lambda: access_token(1),
    "Bearer alone": lambda: "Bearer",
    "two values": lambda: f"Bearer {access_token(1)} extra",
    "garbage": lambda: "Bearer not-a-jwt",
    "three garbage segments": lambda: "Bearer aaa.bbb.ccc",
    "signature stripped": lambda: "Bearer " + access_token(1).rsplit(".", 1)[0] + ".",
    "alg none": lambda: "Bearer " + unsigned_token(claims()),
    "HS512": lambda: "Bearer " + make_token(1, algorithm="HS512"),
    "RS256": lambda: "Bearer " + rsa_key().sign(claims()),
    "wrong key": lambda: "Bearer " + make_token(1, secret="another-secret-" + "q" * 32),
    "payload swapped": lambda: "Bearer " + tamper_payload(access_token(1), user_id="2"),
    "expired": lambda: "Bearer " + make_token(1, exp=_now() - 5, iat=_now() - 1805),
    "not yet valid": lambda: "Bearer " + make_token(1, nbf=_now() + 600),
    "no exp": lambda: "Bearer " + make_token(1, exp=None),
    "exp not a number": lambda: "Bearer " + make_token(1, exp="tomorrow"),
    "no token_type": lambda: "Bearer " + make_token(1, token_type=None),
    "expired and no token_type": lambda: "Bearer " + make_token(1, exp=_now() - 5, token_type=None),
    "no exp and not yet valid": lambda: "Bearer " + make_token(1, exp=None, nbf=_now() + 600),
    "no exp and no token_type": lambda: "Bearer " + make_token(1, exp=None, token_type=None),
    "refresh without user_id": lambda: "Bearer " + hs_token(claims(token_type="refresh", user_id=None)),
    "token_type Access": lambda: "Bearer " + make_token(1, token_type="Access"),
    "refresh": lambda: "Bearer " + refresh_token(1),
    "no user_id": lambda: "Bearer " + hs_token(claims(user_id=None)),
    "valid": lambda: "Bearer " + access_token(5),
    "valid, 5.3": lambda: "Bearer " + access_token(5, version="5.3"),
}


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
@pytest.mark.parametrize("build", SAME_AS_SIMPLEJWT.values(), ids=SAME_AS_SIMPLEJWT.keys())
def test_the_answer_is_simplejwts_for_the_same_header(function, build):
    header = build()
    status, body, challenge = reference_answer(header)
    reply = whoami(function, header)
    if status == 200:  # simplejwt's stateless user echoes the claim; we answer the integer id
        assert (reply.status, reply.json["user"]) == (200, int(body["user"]))
        return
    assert (reply.status, reply.json) == (status, body), reply
    assert reply.headers["www-authenticate"].startswith(challenge)


@pytest.mark.parametrize("method", ["DELETE", "PUT", "POST"])
@pytest.mark.parametrize("header", ["no header", "valid", "expired", "garbage"])
def test_a_method_the_view_does_not_serve_is_drfs_405_after_authentication(function, header, method):
    """DRF authenticates first (401), then answers 405 `Method "DELETE" not allowed.` with `Allow`."""
    authorization = SAME_AS_SIMPLEJWT[header]()
    status, body, _ = reference_answer(authorization, method=method)
    reply = whoami(function, authorization, method=method)
    assert (reply.status, reply.json) == (status, body), reply
    if status == 405:
        assert reply.headers["allow"] == "GET"  # DRF's view adds HEAD and OPTIONS, which this API does not serve
    assert status == (405 if header == "valid" else 401)  # both orders seen: the comparison is not vacuous


def test_the_fixture_signs_with_the_secret_the_service_verifies_with():
    """Not vacuous: the minted token verifies with the tests' JWT secret, HS256, as the platform's do."""
    header = jwt.get_unverified_header(access_token(1))
    assert header["alg"] == "HS256"
    assert jwt.decode(access_token(1), JWT_SECRET, algorithms=["HS256"])["token_type"] == "access"
