"""GET /orders/api/payments/ through the real handler: DRF's page shape, cursor paging both ways,
filters, orderings, and every way a caller can get it wrong (a 400, never a 5xx nor someone
else's data)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import Reply, auth, call, make_token
from support.payment_data import (
    ISO_Z,
    METHODS,
    ORDERINGS,
    PAYMENT_FIELDS,
    SPEC_LIST_ANSWER,
    STATUSES,
    apply_seed,
    bulk_seed,
    expected_ids,
    link_query,
    split_link,
    volume_seed,
)
from support.read_api import ReadApi
from support.tokens import claims, closed_port_url, rsa_key

from halum_payments.cursors import Cursor, CursorCodec, derive_key
from local.events import LambdaContext, http_event

LIST = "/orders/api/payments/"


def invalid_cursor(message: str) -> dict[str, Any]:
    """A refused cursor as DRF keys it: under `cursor`, saying why."""
    return {"detail": f"cursor: {message}", "cursor": [message]}


TAMPERED = invalid_cursor(
    "Invalid cursor: it is malformed or has been altered. Send it exactly as the page gave it "
    "(or start again without a cursor)."
)
ANOTHER_USERS = invalid_cursor("Invalid cursor: it was issued to another user.")


def another_listing(listing: str) -> dict[str, Any]:
    return invalid_cursor(
        f"Invalid cursor: it was issued for {listing}. Send it with the same ordering and filters, "
        "or start again without a cursor."
    )


pytestmark = pytest.mark.usefixtures("no_scan")


@pytest.fixture
def default_api(load_function, store, dynamodb) -> ReadApi:
    return ReadApi(load_function("list_payments"), dynamodb, max_round_trips=2)


@pytest.fixture
def volume() -> dict[str, Any]:
    return volume_seed()


@pytest.fixture
def api(load_function, tables, dynamodb, tmp_path, volume) -> ReadApi:
    apply_seed(volume, tmp_path, dynamodb, tables)
    return ReadApi(load_function("list_payments"), dynamodb, max_round_trips=2)


def query(**params: Any) -> str:
    return urlencode({k: v for k, v in params.items() if v is not None})


def ids(reply: Reply) -> list[int]:
    return [row["id"] for row in reply.json["results"]]


# ------------------------------------------------------------------ the spec's example


def test_default_seed_serves_the_spec_example(default_api):
    for path in (LIST, LIST.rstrip("/")):
        reply = default_api.get(path, user=1)
        assert reply.status == 200, reply
        assert reply.json == SPEC_LIST_ANSWER
        for row in reply.json["results"]:
            assert set(row) == PAYMENT_FIELDS
            assert all(type(row[k]) is int for k in ("id", "order", "user"))
        assert type(reply.json["count"]) is int
        assert len(reply.operations) <= 2


def test_each_user_sees_only_their_own_payments(default_api):
    user2 = default_api.get(LIST, user=2)
    assert (user2.status, user2.json["count"], ids(user2)) == (200, 1, [3])
    assert all(row["user"] == 2 for row in user2.json["results"])
    nobody = default_api.get(LIST, user=77)
    assert nobody.json == {
        "count": 0,
        "next": None,
        "previous": None,
        "next_cursor": None,
        "previous_cursor": None,
        "results": [],
    }


# ------------------------------------------------------------------ filters and orderings

FILTERS = (
    [(None, None)]
    + [(s, None) for s in STATUSES]
    + [(None, m) for m in METHODS]
    + [(s, m) for s in STATUSES for m in METHODS]
)


def test_every_ordering_and_filter_returns_exactly_the_callers_rows(api, volume, subtests):
    """Every filter combination (each its own index) once, the orderings cycled across them so
    every index is read both by id and by created_at; every ordering (and the default) unfiltered."""
    records = {p["id"]: p for p in volume["payments"]}
    cases = [(ordering, None, None) for ordering in [None, *ORDERINGS]]
    cases += [
        (ORDERINGS[i % 4], status, method)
        for i, (status, method) in enumerate(FILTERS)
        if (status, method) != (None, None)
    ]
    cases += [(ordering, "refunded", None) for ordering in ORDERINGS] + [
        (ordering, None, "ONLINE") for ordering in ORDERINGS
    ]
    for ordering, status, method in cases:
        with subtests.test(ordering=ordering, status=status, method=method):
            reply = api.get(LIST, user=1, query=query(ordering=ordering, status=status, method=method, page_size=1000))
            assert reply.status == 200, reply
            expected = expected_ids(volume, 1, ordering or "id", status, method)
            assert ids(reply) == expected
            assert reply.json["count"] == len(expected)
            assert (reply.json["next"], reply.json["previous"]) == (None, None)
            for row in reply.json["results"]:
                assert row == records[row["id"]]  # field for field, as seeded
                assert re.match(ISO_Z, row["created_at"]) and re.match(ISO_Z, row["updated_at"])
                assert re.fullmatch(r"\d+\.\d{2}", row["amount"])


def test_the_seed_covers_what_the_filters_need(volume):
    """Guards the test data itself: user 1 has every status x method pair, created_at is not id order."""
    mine = [p for p in volume["payments"] if p["user"] == 1]
    assert len(mine) == 25
    assert {(p["status"], p["method"]) for p in mine} == {(s, m) for s in STATUSES for m in METHODS}
    assert expected_ids(volume, 1, "created_at") != expected_ids(volume, 1, "id")
    assert len({p["created_at"] for p in volume["payments"]}) == len(volume["payments"])


# ------------------------------------------------------------------ paging both ways


def walk(api: ReadApi, user: int, start: str | Reply, direction: str, path: str = LIST) -> Iterator[Reply]:
    """Yields pages following `direction` ("next" or "previous") links until null, from a first
    query string or from a page already fetched."""
    reply = api.get(path, user=user, query=start) if isinstance(start, str) else start
    while True:
        assert reply.status == 200, reply
        yield reply
        link = reply.json[direction]
        if link is None:
            return
        link_path, link_query_string = link_query(link)
        reply = api.get(link_path, user=user, query=link_query_string)


# Every ordering unfiltered (25 rows, 9 pages), and each kind of filter index once (orderings cycled).
PAGING_CASES = [(ordering, None, None, 3) for ordering in ORDERINGS] + [
    ("-created_at", "completed", None, 3),
    ("id", None, "stripe", 3),
    ("created_at", "pending", "COD", 1),
    ("-id", None, "ONLINE", 3),
]


def test_paging_forward_then_backward_reconstructs_the_list(api, volume, subtests):
    for ordering, status, method, size in PAGING_CASES:
        with subtests.test(ordering=ordering, status=status, method=method, page_size=size):
            expected = expected_ids(volume, 1, ordering, status, method)
            assert len(expected) > size, "the case must span pages"
            forward = list(walk(api, 1, query(ordering=ordering, status=status, method=method, page_size=size), "next"))
            assert forward[0].json["previous"] is None
            assert forward[-1].json["next"] is None
            assert [i for page in forward for i in ids(page)] == expected  # no duplicate, no gap
            assert all(len(ids(page)) == size for page in forward[:-1]) and 1 <= len(ids(forward[-1])) <= size
            assert all(page.json["next"] is not None for page in forward[:-1])
            assert all(page.json["previous"] is not None for page in forward[1:])
            assert all(page.json["count"] == len(expected) for page in forward)

            # Back from the last page, following `previous` to the first.
            backward = list(walk(api, 1, forward[-1], "previous"))
            assert [ids(page) for page in backward] == [ids(page) for page in reversed(forward)]
            assert [i for page in reversed(backward) for i in ids(page)] == expected
            assert backward[-1].json["previous"] is None
            assert all(page.json["next"] is not None for page in backward[1:])
            assert all(page.json["count"] == len(expected) for page in backward)


def test_page_boundaries_leave_no_empty_or_missing_page(api, volume, subtests):
    """25 rows: 5 and 25 divide them exactly, and the last page must still say next: null."""
    expected = expected_ids(volume, 1, "-created_at")
    for page_size in (2, 5, 24, 25, 26):
        with subtests.test(page_size=page_size):
            pages = list(walk(api, 1, query(ordering="-created_at", page_size=page_size), "next"))
            assert [i for page in pages for i in ids(page)] == expected
            assert all(ids(page) for page in pages), "no empty trailing page"
            assert len(pages) == -(-25 // page_size)


def test_next_and_previous_are_absolute_urls_of_this_request(api, volume, subtests):
    with subtests.test("same host, scheme and path; other parameters kept"):
        page1 = api.get(LIST, user=1, query=query(status="completed", ordering="-created_at", page_size=2))
        scheme, host, path, params = split_link(page1.json["next"])
        assert (scheme, host, path) == ("https", "api.example.com", LIST)
        assert {k: v for k, v in params.items() if k != "cursor"} == {
            "status": "completed",
            "ordering": "-created_at",
            "page_size": "2",
        }
        assert params["cursor"]
        page2 = api.get(path, user=1, query=link_query(page1.json["next"])[1])
        scheme, host, path, params = split_link(page2.json["previous"])
        assert (scheme, host, path) == ("https", "api.example.com", LIST)
        assert {k: v for k, v in params.items() if k != "cursor"} == {
            "status": "completed",
            "ordering": "-created_at",
            "page_size": "2",
        }

    with subtests.test("another host, no trailing slash"):
        bare = api.get(LIST.rstrip("/"), user=1, query="page_size=2", headers={"host": "payments.halumhut.example"})
        assert bare.json["next"].startswith("https://payments.halumhut.example/orders/api/payments?")

    with subtests.test("a named stage stays in the path"):
        host = "abc123.execute-api.us-east-1.amazonaws.com"
        event = http_event(
            "GET",
            "/prod" + LIST,
            query="page_size=2",
            stage="prod",
            domain_name=host,
            headers={"host": host, "x-forwarded-proto": "https", **auth(1)},
        )
        staged = Reply(api.module.lambda_handler(event, LambdaContext("test")))
        assert staged.status == 200, staged
        assert staged.json["next"].startswith(f"https://{host}/prod/orders/api/payments/?")

    with subtests.test("page_size may change between pages"):
        page1 = api.get(LIST, user=1, query=query(page_size=4, ordering="created_at"))
        path, next_query = link_query(page1.json["next"])
        page2 = api.get(path, user=1, query=next_query.replace("page_size=4", "page_size=10"))
        assert page2.status == 200, page2
        assert ids(page1) + ids(page2) == expected_ids(volume, 1, "created_at")[:14]


def test_default_page_size_is_100_and_1000_is_allowed(load_function, tables, dynamodb, tmp_path):
    apply_seed(bulk_seed(105), tmp_path, dynamodb, tables)
    api = ReadApi(load_function("list_payments"), dynamodb, max_round_trips=2)
    default = api.get(LIST, user=1)
    assert (len(ids(default)), default.json["count"]) == (100, 105)
    assert ids(default) == list(range(1, 101))
    path, rest_query = link_query(default.json["next"])
    rest = api.get(path, user=1, query=rest_query)
    assert ids(rest) == list(range(101, 106)) and rest.json["next"] is None
    everything = api.get(LIST, user=1, query="page_size=1000")
    assert ids(everything) == list(range(1, 106)) and everything.json["next"] is None
    one = api.get(LIST, user=1, query="page_size=1")
    assert ids(one) == [1] and one.json["next"] is not None


def test_a_query_cut_short_by_dynamodbs_size_cap_still_links_to_the_rest(api, volume, monkeypatch):
    """DynamoDB ends a Query at 1 MB whatever the Limit (big items, page_size=1000): the page may be
    short, but `next` must lead on, never end the list early. The embedded server runs in this
    process, so its cap is lowered to a few KB to reach it with 25 rows."""
    import moto.dynamodb.models.table as moto_table

    monkeypatch.setattr(moto_table, "RESULT_SIZE_LIMIT", 4000)
    for ordering in ("id", "-created_at"):
        pages = list(walk(api, 1, query(ordering=ordering, page_size=25), "next"))
        assert [i for page in pages for i in ids(page)] == expected_ids(volume, 1, ordering)


def test_rows_gone_past_the_cursor_give_an_empty_page_with_a_way_back(api, volume, dynamodb, tables):
    page1 = api.get(LIST, user=1, query="page_size=20")
    for payment_id in expected_ids(volume, 1)[20:]:
        dynamodb.delete_item(TableName=tables["PaymentsTable"], Key={"user": {"N": "1"}, "id": {"N": str(payment_id)}})
    path, next_query = link_query(page1.json["next"])
    page2 = api.get(path, user=1, query=next_query)
    assert (page2.status, page2.json["results"], page2.json["next"]) == (200, [], None)
    scheme, host, back_path, params = split_link(page2.json["previous"])
    assert (scheme, host, back_path) == ("https", "api.example.com", LIST)
    assert "cursor" not in params and params["page_size"] == "20"


# ------------------------------------------------------------------ what a caller can get wrong

BAD_QUERIES = {
    "page_size=0": "page_size",
    "page_size=-1": "page_size",
    "page_size=1001": "page_size",
    "page_size=abc": "page_size",
    "page_size=1.5": "page_size",
    "page_size=1e2": "page_size",
    "page_size=": "page_size",
    "page_size=99999999999999999999999": "page_size",
    "ordering=amount": "ordering",
    "ordering=ID": "ordering",
    "ordering=-": "ordering",
    "ordering=id,-created_at": "ordering",
    "ordering=": "ordering",
    "status=PENDING": "status",
    "status=paid": "status",
    "status=": "status",
    "method=cod": "method",
    "method=card": "method",
    "method=": "method",
}


def test_bad_parameters_are_400_naming_the_parameter(default_api, subtests):
    for bad, parameter in BAD_QUERIES.items():
        with subtests.test(query=bad):
            reply = default_api.get(LIST, user=1, query=bad)
            assert reply.status == 400, reply
            assert parameter in reply.json["detail"]
            assert reply.json[parameter], reply  # keyed by the parameter, as DRF keys a field's errors
            assert reply.operations == []


def test_page_numbers_are_refused_pointing_to_next(default_api, subtests):
    for page_query in ("page=2", "page=1", "page=1&page_size=3", "page=last"):
        with subtests.test(query=page_query):
            reply = default_api.get(LIST, user=1, query=page_query)
            assert reply.status == 400, reply
            assert "next" in reply.json["detail"]
            assert reply.json["page"] == [
                "Page numbers are not supported: follow the 'next' and 'previous' links instead."
            ]


def test_each_link_has_its_cursor_as_a_typed_field_and_paging_by_it_is_paging_by_the_links(api, volume, subtests):
    """`next_cursor`/`previous_cursor` are the `cursor` of `next`/`previous` (null when the link is; ""
    when `previous` is the first page, which has no cursor), so a generated client pages with its
    own `cursor` parameter and the same query, and sees exactly the pages the links lead to."""
    for ordering, status, method, page_size in PAGING_CASES:
        with subtests.test(ordering=ordering, status=status, method=method):
            start = query(ordering=ordering, status=status, method=method, page_size=page_size)
            by_links = list(walk(api, 1, start, "next"))
            for page in by_links:
                for link, field in (("next", "next_cursor"), ("previous", "previous_cursor")):
                    url = page.json[link]
                    expected = None if url is None else split_link(url)[3].get("cursor", "")
                    assert page.json[field] == expected, (link, page.json)
            by_cursors, page = [by_links[0]], by_links[0]
            while page.json["next_cursor"] is not None:
                page = api.get(LIST, user=1, query=start + "&" + query(cursor=page.json["next_cursor"]))
                by_cursors.append(page)
            assert [page.json for page in by_cursors] == [page.json for page in by_links]
            back, page = [], by_cursors[-1]
            while page.json["previous_cursor"] is not None:
                page = api.get(LIST, user=1, query=start + "&" + query(cursor=page.json["previous_cursor"]))
                back.append(ids(page))
            assert back == [ids(page) for page in reversed(by_links[:-1])]


def _cursor_of(reply: Reply) -> str:
    return split_link(reply.json["next"])[3]["cursor"]


def test_forged_truncated_and_garbage_cursors_are_400(api, subtests):
    page1 = api.get(LIST, user=1, query="page_size=3")
    genuine = _cursor_of(page1)
    flipped = genuine[:10] + ("A" if genuine[10] != "A" else "B") + genuine[11:]
    forged = CursorCodec(derive_key("guessed-secret")).encode(Cursor(1, "id", None, None, True, {"id": 3}))
    for name, cursor in {
        "truncated": genuine[:-1],
        "one character changed": flipped,
        "signed with another key": forged,
        "garbage": "garbage",
        "two dots": genuine + ".x",
    }.items():
        with subtests.test(cursor=name):
            reply = api.get(LIST, user=1, query=query(page_size=3, cursor=cursor))
            assert (reply.status, reply.json) == (400, TAMPERED), reply
            assert "Query" not in reply.operations
    with subtests.test(cursor="too long"):  # the documented maxLength, as any query parameter's
        reply = api.get(LIST, user=1, query=query(page_size=3, cursor=genuine * 5))
        assert (reply.status, reply.json) == (400, invalid_cursor("Ensure this field has no more than 512 characters."))


def test_a_cursor_works_only_for_its_user_ordering_and_filters(api, volume, subtests):
    page1 = api.get(LIST, user=1, query="page_size=3&ordering=id")
    path, next_query = link_query(page1.json["next"])
    page2 = api.get(path, user=1, query=next_query)

    for name, link in (("next", page1.json["next"]), ("previous", page2.json["previous"])):
        with subtests.test(f"user 2 replays user 1's {name} link"):
            path, replay = link_query(link)
            reply = api.get(path, user=2, query=replay)
            assert (reply.status, reply.json) == (400, ANOTHER_USERS), reply
            assert "Query" not in reply.operations
    with subtests.test("user 2 never sees user 1's rows"):
        assert set(expected_ids(volume, 1)).isdisjoint(ids(api.get(LIST, user=2, query="page_size=1000")))

    cursor = _cursor_of(page1)
    for change in (
        {"ordering": "-id"},
        {"ordering": "created_at"},
        {"status": "pending"},
        {"method": "COD"},
        {"status": "pending", "method": "COD"},
    ):
        with subtests.test(replayed_with=change):
            reply = api.get(LIST, user=1, query=query(**{"page_size": 3, "ordering": "id", **change, "cursor": cursor}))
            assert (reply.status, reply.json) == (400, another_listing("ordering=id, no status, no method")), reply
            assert "Query" not in reply.operations
    with subtests.test("a filtered cursor without its filter"):
        filtered = _cursor_of(api.get(LIST, user=1, query="page_size=2&ordering=-created_at&status=completed"))
        reply = api.get(LIST, user=1, query=query(page_size=2, cursor=filtered))
        expected = another_listing("ordering=-created_at, status=completed, no method")
        assert (reply.status, reply.json) == (400, expected), reply
    with subtests.test("another page size is the same listing"):
        reply = api.get(LIST, user=1, query=query(page_size=5, ordering="id", cursor=cursor))
        assert (reply.status, ids(reply)) == (200, expected_ids(volume, 1, "id")[3:8]), reply


def test_without_valid_credentials_it_is_401_before_any_validation(default_api, subtests):
    for headers in (
        {},
        {"authorization": "Bearer nope"},
        {"authorization": f"Bearer {make_token(1, token_type='refresh')}"},
    ):
        for bad in ("", "page_size=abc", "page=2", "cursor=garbage", "ordering=amount"):
            with subtests.test(headers=headers, query=bad):
                reply = default_api.get(LIST, user=None, query=bad, headers=headers)
                assert reply.status == 401, reply
                assert reply.headers["www-authenticate"].startswith("Bearer")
                assert reply.operations == []


def test_identity_provider_outage_with_a_bad_query_is_a_json_503(load_function, tables):
    """Public-key mode, JWKS unreachable, and a query that fails validation: still a clean 503."""
    function = load_function(
        "list_payments", JWT_ALGORITHMS="RS256", JWT_JWKS_URL=closed_port_url(), JWT_SECRET="", CURSOR_SECRET="c" * 40
    )
    token = rsa_key().sign(claims())
    for bad in ("", "page_size=abc"):
        reply = call(function, "GET", LIST, query=bad, headers={"authorization": f"Bearer {token}"})
        assert reply.status == 503, reply
        assert reply.json == {"detail": "Temporarily unavailable, please retry."}


PARAMETERS = st.sampled_from(["ordering", "status", "method", "page_size", "cursor", "page", "limit", "offset"])
VALUES = st.one_of(
    st.sampled_from(
        [
            "id",
            "-id",
            "created_at",
            "-created_at",
            "pending",
            "COD",
            "stripe",
            "0",
            "1",
            "1000",
            "1001",
            "-1",
            "1.5",
            "",
            "null",
            "true",
            "[]",
            "%",
            "a.b",
            "A" * 600,
        ]
    ),
    st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(params=st.lists(st.tuples(PARAMETERS, VALUES), max_size=4))
def test_no_query_string_gets_a_5xx_or_a_non_json_body(default_api, params):
    reply = default_api.get(LIST, user=1, query=urlencode(params))  # ReadApi asserts < 500, JSON, {"detail"}
    assert reply.status in (200, 400), reply
    if reply.status == 200:
        assert all(row["user"] == 1 for row in reply.json["results"])
