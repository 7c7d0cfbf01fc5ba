"""schemathesis against `python -m local`, driven by the committed openapi.json.

The server is one of this module's own (its data changes: checkouts succeed, webhooks settle),
with a Stripe stand-in, so checkout reaches "Stripe" instead of answering "not configured", and
known secrets. The hooks: schemathesis' auth hook gives the authenticated operations a bearer token
of the demo user (who has a cart and an address, so checkouts can succeed); the webhook signatures
are computed over the exact bytes sent, right before they are sent, whenever the generated request
carries the header (a request generated without it must be refused).

Checks: no server error; every status, header, content type and body as documented; bearer auth
enforced where documented; a method a path does not document answers 405 with `Allow`. Positive and
negative data, examples, coverage and fuzzing phases, bounded and derandomized: reproducible, and well
under a minute on two cores. The last test checks
that the run got past the credentials on every operation, so that it cannot pass vacuously.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
import schemathesis
from requests.structures import CaseInsensitiveDict
from schemathesis import Case, Response
from schemathesis.checks import CHECKS
from support import ROOT, make_token
from support.local_api import LocalApi, Secrets, local_api
from support.signing import gateway_signature, stripe_signature

pytestmark = pytest.mark.e2e

OPENAPI = ROOT / "openapi.json"
USER = 1  # the demo user: a cart and a shipping address, so checkouts can succeed
SECRETS = Secrets()
MAX_EXAMPLES = 20  # per operation and phase
CHECK_NAMES = (
    "not_a_server_error",
    "status_code_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
    "content_type_conformance",
    "ignored_auth",
    "unsupported_method",  # a method the document does not list for a path: 405 with `Allow`
)
SIGNED_HEADERS = {
    "/orders/api/payment-webhook": "X-Webhook-Signature",
    "/orders/api/stripe-webhook": "Stripe-Signature",
}


class ApiSession(requests.Session):
    """Signs webhook deliveries over the bytes about to be sent (after schemathesis serialized
    them), and counts every answer by (method, path, status)."""

    def __init__(self) -> None:
        super().__init__()
        self.answers: Counter[tuple[str, str, int]] = Counter()

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        path = urlsplit(request.url or "").path
        header = SIGNED_HEADERS.get(path.rstrip("/"))
        if header is not None and header in request.headers:
            body = request.body
            raw = body.encode() if isinstance(body, str) else body if isinstance(body, bytes) else b""
            if header == "Stripe-Signature":
                request.headers[header] = stripe_signature(raw, SECRETS.stripe_webhook)
            else:
                request.headers[header] = gateway_signature(raw, SECRETS.payment_webhook)
        response = super().send(request, **kwargs)
        self.answers[(request.method or "", path, response.status_code)] += 1
        return response


@pytest.fixture(scope="module")
def api() -> Iterator[LocalApi]:
    with local_api(SECRETS) as running:
        yield running


@pytest.fixture(scope="module")
def session() -> Iterator[ApiSession]:
    with ApiSession() as api_session:
        yield api_session


schema = schemathesis.openapi.from_path(OPENAPI)
schema.config.update(request_timeout=30)
schema.config.generation.update(modes=list(schemathesis.GenerationMode), max_examples=MAX_EXAMPLES, deterministic=True)
schema.config.phases.update(phases=["examples", "coverage", "fuzzing"])


@schema.auth().skip_for(operation_id_regex="webhook")
class BearerToken:
    """The demo user's access token, on every operation that documents bearer auth."""

    def get(self, case: Case, context: Any) -> str:
        return make_token(USER, secret=SECRETS.jwt)

    def set(self, case: Case, data: str, context: Any) -> None:
        if case.headers is None:
            case.headers = CaseInsensitiveDict()
        case.headers["Authorization"] = f"Bearer {data}"


def checks() -> list[Any]:
    return [CHECKS.get_one(name) for name in CHECK_NAMES]


def call(api: LocalApi, session: ApiSession, path: str, method: str, **data: Any) -> Response:
    """One request of our own, checked like the generated ones."""
    case = schema[path][method].Case(**data)
    return case.call_and_validate(base_url=api.url, session=session, checks=checks())


def bearer(user: int) -> dict[str, str]:
    return {"Authorization": f"Bearer {make_token(user, secret=SECRETS.jwt)}"}


# These run first, on the seed's data (pytest keeps the file's order).
def test_the_documented_statuses_and_shapes_are_what_the_api_answers(api: LocalApi, session: ApiSession) -> None:
    listed = call(api, session, "/orders/api/payments/", "GET", headers=bearer(1))
    assert listed.status_code == 200
    assert [payment["id"] for payment in listed.json()["results"]] == [1, 2]
    assert set(listed.json()["results"][0]) == set(schema.raw_schema["components"]["schemas"]["Payment"]["properties"])
    detail = call(api, session, "/orders/api/payments/{id}/", "GET", path_parameters={"id": "1"}, headers=bearer(1))
    assert detail.status_code == 200
    assert detail.json() == listed.json()["results"][0]
    cod = call(api, session, "/orders/api/create-cod/", "POST", body={"shipping_address": 2}, headers=bearer(2))
    assert cod.status_code == 201, cod.text  # user 2's cart, to their own address
    assert cod.json()["payment"]["method"] == "COD"


@pytest.mark.parametrize(("page_size", "status"), [(0, 400), (1, 200), (1000, 200), (1001, 400)])
def test_page_size_is_1_to_1000_as_documented(api: LocalApi, session: ApiSession, page_size: int, status: int) -> None:
    documented = {
        parameter["name"]: parameter["schema"]
        for parameter in schema.raw_schema["paths"]["/orders/api/payments/"]["get"]["parameters"]
    }
    assert (documented["page_size"]["minimum"], documented["page_size"]["maximum"]) == (1, 1000)
    reply = call(api, session, "/orders/api/payments/", "GET", query={"page_size": page_size}, headers=bearer(1))
    assert reply.status_code == status, reply.text


@schema.parametrize()
def test_the_api_answers_as_documented(case: Case, api: LocalApi, session: ApiSession) -> None:
    case.call_and_validate(base_url=api.url, session=session, checks=checks())


def test_every_operation_was_exercised_past_its_credentials(session: ApiSession) -> None:
    """Runs after the operations above: each operation answered at least once with something other
    than a refusal of the credentials the hooks supplied (a bearer token's or a signature's 401; a
    Stripe signature is refused with 400, so the Stripe webhook must have answered 2xx)."""
    print("\nschemathesis traffic (method, path, status: count):")
    for (method, path, status), count in sorted(session.answers.items()):
        print(f"  {method:5} {path[:60]:60} {status}: {count}")
    assert session.answers, "run the whole module: this checks the traffic of the tests above"
    missing = []
    for template, item in schema.raw_schema["paths"].items():
        pattern = re.compile("^" + re.sub(r"\\{\w+\\}", "[^/]+", re.escape(template)) + "$")
        for method, operation in item.items():
            stripe = "Stripe-Signature" in {parameter["name"] for parameter in operation.get("parameters", [])}
            statuses = {s for m, p, s in session.answers if m == method.upper() and pattern.match(p)}
            accepted = {s for s in statuses if (200 <= s < 300 if stripe else s != 401)}
            if not accepted:
                missing.append(f"{method.upper()} {template}: {sorted(statuses)}")
    assert not missing, f"the hooks' credentials were never accepted: {missing}"
