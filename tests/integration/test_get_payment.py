"""GET /orders/api/payments/{id}/ through the real handler: the caller's own payment, or 404."""

from __future__ import annotations

import time
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import make_token
from support.payment_data import PAYMENT_FIELDS, SPEC_PAYMENT_1, SPEC_PAYMENT_2
from support.read_api import ReadApi
from support.tokens import claims, hs_token

NOT_FOUND = {"detail": "Not found."}


pytestmark = pytest.mark.usefixtures("no_scan")


@pytest.fixture
def api(load_function, store, dynamodb) -> ReadApi:
    return ReadApi(load_function("get_payment"), dynamodb, max_round_trips=1)


def test_own_payment_is_the_spec_example(api, subtests):
    for expected in (SPEC_PAYMENT_1, SPEC_PAYMENT_2):
        for path in (f"/orders/api/payments/{expected['id']}/", f"/orders/api/payments/{expected['id']}"):
            with subtests.test(path=path):
                reply = api.get(path, user=1)
                assert reply.status == 200, reply
                assert reply.json == expected
                assert set(reply.json) == PAYMENT_FIELDS
                assert all(type(reply.json[k]) is int for k in ("id", "order", "user"))  # not bools, not strings
                assert reply.operations == ["GetItem"]
    with subtests.test("user_id claim as an int"):
        reply = api.get(
            "/orders/api/payments/3/", user=None, headers={"authorization": f"Bearer {hs_token(claims(user_id=2))}"}
        )
        assert (reply.status, reply.json["id"], reply.json["user"]) == (200, 3, 2)


OTHERS_OR_MISSING = [(2, "1"), (2, "2"), (1, "3"), (3, "1"), (1, "4"), (1, "999999")]  # user, id


def test_another_users_or_a_missing_payment_is_404(api, subtests):
    for user, payment_id in OTHERS_OR_MISSING:
        for path in (f"/orders/api/payments/{payment_id}/", f"/orders/api/payments/{payment_id}"):
            with subtests.test(user=user, path=path):
                reply = api.get(path, user=user)
                assert (reply.status, reply.json) == (404, NOT_FOUND), reply
                assert reply.operations == ["GetItem"]


MALFORMED = [
    "abc",
    "-1",
    "1.5",
    "0",
    "00",
    "1e3",
    "0x1",
    "+1",
    "%201",
    "1%20",
    "%EF%BC%91",
    "1;2",
    "1,2",
    "9223372036854775808",
    "1" * 19,
    "1" * 40,
    "null",
    "true",
    "[1]",
]


def test_a_malformed_id_is_404_not_400_nor_500(api, subtests):
    for raw in MALFORMED:
        for path in (f"/orders/api/payments/{raw}/", f"/orders/api/payments/{raw}"):
            with subtests.test(path=path):
                reply = api.get(path)
                assert (reply.status, reply.json) == (404, NOT_FOUND), reply
                assert reply.operations == [], "a malformed id costs no read"


def test_paths_that_are_not_a_payment_are_404_json(api, subtests):
    for path in [
        "/orders/api/payments/1/extra/",
        "/orders/api/payments//",
        "/orders/api/payment/1/",
        "/orders/api/payments/1//",
        "/orders/api/payments/1/2",
    ]:
        with subtests.test(path=path):
            reply = api.get(path)
            assert (reply.status, reply.json) == (404, NOT_FOUND), reply


def test_without_valid_credentials_it_is_401_before_anything_else(api, subtests):
    bad_headers = {
        "no header": {},
        "garbage": {"authorization": "Bearer garbage"},
        "basic": {"authorization": "Basic dXNlcjpwYXNz"},
        "refresh token": {"authorization": f"Bearer {make_token(1, token_type='refresh')}"},
        "expired": {"authorization": f"Bearer {make_token(1, exp=int(time.time()) - 1)}"},
    }
    for name, headers in bad_headers.items():
        for raw in ("1", "abc", "3", "999"):  # own, malformed, someone else's, missing
            with subtests.test(credentials=name, id=raw):
                reply = api.get(f"/orders/api/payments/{raw}/", user=None, headers=headers)
                assert reply.status == 401, reply
                assert reply.headers["www-authenticate"].startswith("Bearer")
                assert reply.operations == []
                assert "1598" not in reply.text


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(segment=st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=45))
def test_no_id_gets_a_5xx_or_a_non_json_body(api, segment):
    reply = api.get(f"/orders/api/payments/{quote(segment, safe='')}/")  # ReadApi asserts < 500, JSON, {"detail"}
    assert reply.status in (200, 404), reply
    if reply.status == 200:
        assert reply.json["user"] == 1
