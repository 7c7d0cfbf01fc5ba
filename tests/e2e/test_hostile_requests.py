"""The local server survives 300 hostile requests: never a 5xx, never an internal detail, always JSON.

Requests come from a fixed seed (printed; `HOSTILE_SEED=<n>` replays another): random methods and
paths under /orders/api (traversal, encoded junk, invalid UTF-8 on the wire), huge and malformed
headers, lying framing, random/garbage/huge/deeply nested JSON bodies, wrong content types, forged
tokens (none-alg, wrong key, HS/RS confusion, oversized, expired, refresh...), forged cursors and
forged webhook signatures. Valid tokens are only sent where they cannot change anything (user 1's
on reads, and a user who owns nothing), so afterwards user 1 must still see the spec's example.
"""

from __future__ import annotations

import json
import os
import random
from collections import Counter
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest
from support.hostile import (
    NOBODY_USER,
    SPEC_LIST_EXAMPLE,
    Forger,
    HostileRequests,
    NoReply,
    RawReply,
    build,
    exchange,
    leaks,
)
from support.local_api import LocalApi, local_api

pytestmark = pytest.mark.e2e

SEED = int(os.environ.get("HOSTILE_SEED", "20261126"))
REQUESTS = 300


@pytest.fixture(scope="module")
def api() -> Iterator[LocalApi]:
    with local_api() as running:
        yield running


def get(api: LocalApi, target: str, user: int | None = 1) -> RawReply:
    parts = urlsplit(api.url)
    headers = [("Host", parts.netloc), ("Connection", "close")]
    if user is not None:
        headers.append(("Authorization", f"Bearer {api.token(user)}"))
    return exchange(parts.hostname or "", parts.port or 80, build("GET", target, headers))


def genuine_cursors(api: LocalApi) -> list[str]:
    """Real cursors of user 1's pages (the forged ones are made from these)."""
    first = json.loads(get(api, "/orders/api/payments/?page_size=1").body)
    cursors = []
    for link in (first["next"],):
        query = parse_qs(urlsplit(link).query)
        cursors.extend(query.get("cursor", []))
    assert cursors, first
    return cursors


def problems_with(reply: RawReply, method: str) -> list[str]:
    problems = []
    if reply.status >= 500:
        problems.append(f"status {reply.status}")
    if method.upper() == "HEAD":
        return problems
    try:
        json.loads(reply.body)
    except ValueError:
        problems.append("body is not JSON")
    if found := leaks(reply.body):
        problems.append(f"leaks {found}")
    return problems


def test_300_hostile_requests_then_the_api_still_works(api: LocalApi) -> None:
    print(f"\nhostile requests: seed {SEED} (HOSTILE_SEED={SEED} replays this run)")
    parts = urlsplit(api.url)
    host, port = parts.hostname or "", parts.port or 80
    generator = HostileRequests(
        random.Random(SEED),
        parts.netloc,
        Forger(api.secrets.jwt),
        read_token=api.token(1),
        nobody_token=api.token(NOBODY_USER),
        cursors=genuine_cursors(api),
    )
    failures: list[str] = []
    statuses: Counter[int] = Counter()
    for number in range(REQUESTS):
        request = generator.next()
        try:
            reply = exchange(host, port, request.raw, head=request.method == "HEAD")
        except (NoReply, OSError) as exc:
            failures.append(f"#{number} {request.label}: no answer ({exc})")
            continue
        statuses[reply.status] += 1
        if problems := problems_with(reply, request.method):
            failures.append(f"#{number} {request.label}: {', '.join(problems)}: {reply.body[:300]!r}")
    print(f"statuses: {dict(sorted(statuses.items()))}")
    assert api.process.poll() is None, "the server died:\n" + api.output()[-5000:]
    assert not failures, f"seed {SEED}: {len(failures)} of {REQUESTS} failed:\n" + "\n".join(failures)

    listed = get(api, "/orders/api/payments/", user=1)
    assert listed.status == 200, listed
    assert json.loads(listed.body) == SPEC_LIST_EXAMPLE
    assert get(api, "/orders/api/payments/1/", user=None).status == 401
