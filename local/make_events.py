"""Writes events/: one Lambda event per function and case, and the manifest of what each must return.

    python -m local.make_events            # (re)write events/<function_dir>/<case>.json + events/expected.json
    python -m local.make_events --check    # exit 1 if events/ is not what this script writes

The files are what `sam local invoke <Function> -e events/<function_dir>/<case>.json` takes, and
what the tests feed to every handler (tests/integration/test_events.py in-process,
tests/build/test_built_functions.py against the `sam build` output), on the demo data of
local/seed.json with the local secrets of local/defaults.py (`LOCAL_ENVIRONMENT`).

Adding a case is one line in CASES. HTTP events are built as API Gateway (payload 2.0) builds
them, with routeKey and pathParameters from the function's route in template.yaml that matches
the path (a path no route matches is an error, so events cannot drift from the template).
Everything that would vary (request ids, times, token ids) is fixed, so regenerating gives the
same bytes. Tokens are signed with LOCAL_JWT_SECRET and expire in 2100.

Signers: a case may declare `signer=`, a function (event, now) -> event that runs when the file
is written AND again in the tests right before the event is invoked (`prepare(name, event)`), so
a signature that expires (Stripe's `Stripe-Signature` is checked against a 5-minute tolerance)
or depends on a key is always fresh when tested. Ready: `signed_cursor` (a genuine page cursor),
`stripe_signed()` and `gateway_signed()` (webhook signatures over the body), e.g.

    Case("stripe_webhook/completed", POST("/orders/api/stripe-webhook/", body={...}), 200, signer=stripe_signed()),
"""

from __future__ import annotations

import argparse
import base64
import copy
import hashlib
import hmac
import json
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

from local import defaults
from local.events import http_event, scheduled_event
from local.routing import Router
from local.template import ROOT, Template

EVENTS_DIR = ROOT / "events"
MANIFEST = EVENTS_DIR / "expected.json"

# The secrets the events are signed with (the local defaults); see `function_environment`.
LOCAL_ENVIRONMENT = {
    "JWT_SECRET": defaults.LOCAL_JWT_SECRET,
    "STRIPE_WEBHOOK_SECRET": defaults.LOCAL_STRIPE_WEBHOOK_SECRET,
    "PAYMENT_WEBHOOK_SECRET": defaults.LOCAL_PAYMENT_WEBHOOK_SECRET,
}

API_HOST = "a1b2c3d4e5.execute-api.us-east-1.amazonaws.com"
FUNCTION_URL_HOST = "f6g7h8i9j0k1l2m3n4o5p6q7r8s9t0u1.lambda-url.us-east-1.on.aws"
FIXED_TIME = 1735732800  # 2025-01-01T12:00:00Z: when the recorded requests "happened"
TOKEN_ISSUED_AT = 1704067200  # 2024-01-01T00:00:00Z
TOKEN_EXPIRES_AT = 4102444800  # 2100-01-01T00:00:00Z: the events never rot

Event = dict[str, Any]
Signer = Callable[[Event, int], Event]  # (event, unix time now) -> event, signed for `now`


# --------------------------------------------------------------------------- requests
def token(user: int | str | None = 1, **claims: Any) -> str:
    """A simplejwt-shaped access token signed with the local key; claim=None drops a claim."""
    import jwt

    payload: dict[str, Any] = {
        "token_type": "access",
        "exp": TOKEN_EXPIRES_AT,
        "iat": TOKEN_ISSUED_AT,
        "jti": "",
        "user_id": None if user is None else str(user),
    }
    payload.update(claims)
    if not payload["jti"]:
        seed = json.dumps(payload, sort_keys=True, default=str)
        payload["jti"] = hashlib.sha256(seed.encode()).hexdigest()[:32]
    payload = {k: v for k, v in payload.items() if v is not None}
    return jwt.encode(payload, defaults.LOCAL_JWT_SECRET, algorithm="HS256")


@dataclass(frozen=True)
class Http:
    """An HTTP request to an API route (or to a Function URL if the function has one)."""

    method: str
    path: str
    query: str = ""
    user: int | None = None  # adds `Authorization: Bearer <token(user)>`
    headers: Mapping[str, str] = field(default_factory=dict)
    body: Any = None  # dict/list -> JSON

    def event(self, template: Template, function_dir: str, name: str) -> Event:
        spec = _function_for(template, function_dir)
        headers = {
            "accept": "application/json",
            "host": API_HOST if spec.routes else FUNCTION_URL_HOST,
            "user-agent": "HalumHut-Web/2.3 (+https://halumhut.example)",
            "x-amzn-trace-id": f"Root=1-6775302c-{_hex(name, 24)}",
            "x-forwarded-for": "203.0.113.24",
            "x-forwarded-port": "443",
            "x-forwarded-proto": "https",
        }
        if self.user is not None:
            headers["authorization"] = f"Bearer {token(self.user)}"
        body = self.body
        if body is not None and not isinstance(body, (str, bytes)):
            body = json.dumps(body, separators=(",", ":"))
            headers["content-type"] = "application/json"
        if body is not None:
            headers["content-length"] = str(len(body.encode() if isinstance(body, str) else body))
        headers.update({k.lower(): v for k, v in self.headers.items()})

        request: dict[str, Any] = {
            "query": self.query,
            "headers": headers,
            "body": body,
            "source_ip": headers["x-forwarded-for"],
            "domain_name": headers["host"],
        }
        if spec.routes:
            route_key, params = _match_route(spec, self.method, self.path, function_dir)
            event = http_event(self.method, self.path, route_key=route_key, path_parameters=params or None, **request)
            event["requestContext"]["apiId"] = headers["host"].split(".")[0]
        elif spec.function_url:
            event = http_event(self.method, self.path, function_url=True, **request)
        else:
            raise ValueError(f"{name}: {spec.logical_id} has neither an API route nor a Function URL")
        context = event["requestContext"]
        context["requestId"] = str(uuid.uuid5(uuid.NAMESPACE_URL, name))
        context["time"] = time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(FIXED_TIME))
        context["timeEpoch"] = FIXED_TIME * 1000
        return event


def GET(path: str, **kwargs: Any) -> Http:
    return Http("GET", path, **kwargs)


def POST(path: str, **kwargs: Any) -> Http:
    return Http("POST", path, **kwargs)


@dataclass(frozen=True)
class Scheduled:
    """An EventBridge scheduled event (for functions with a Schedule event)."""

    rule: str = "halum-hut-payments-schedule"

    def event(self, template: Template, function_dir: str, name: str) -> Event:
        _function_for(template, function_dir)
        event = scheduled_event(self.rule)
        event["id"] = str(uuid.uuid5(uuid.NAMESPACE_URL, name))
        event["time"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(FIXED_TIME))
        return event


@dataclass(frozen=True)
class AuditStream:
    """A DynamoDB stream batch of the audit table, as the event source mapping passes it (one INSERT
    per row, NEW_IMAGE): what PublishEventsFunction receives. `rows` are audit rows as written."""

    rows: tuple[dict[str, Any], ...]

    def event(self, template: Template, function_dir: str, name: str) -> Event:
        from boto3.dynamodb.types import TypeSerializer

        _function_for(template, function_dir)
        serialize = TypeSerializer().serialize
        arn = "arn:aws:dynamodb:us-east-1:123456789012:table/PaymentAuditTable/stream/2025-01-01T00:00:00.000"
        records = []
        for index, row in enumerate(self.rows):
            image = {key: serialize(value) for key, value in row.items()}
            sequence = f"{FIXED_TIME}{index:012d}"
            records.append(
                {
                    "eventID": _hex(f"{name}/{index}", 32),
                    "eventName": "INSERT",
                    "eventVersion": "1.1",
                    "eventSource": "aws:dynamodb",
                    "awsRegion": "us-east-1",
                    "dynamodb": {
                        "ApproximateCreationDateTime": FIXED_TIME,
                        "Keys": {"payment": image["payment"], "at": image["at"]},
                        "NewImage": image,
                        "SequenceNumber": sequence,
                        "SizeBytes": len(json.dumps(image)),
                        "StreamViewType": "NEW_IMAGE",
                    },
                    "eventSourceARN": arn,
                }
            )
        return {"Records": records}


def _hex(name: str, length: int) -> str:
    return hashlib.sha256(name.encode()).hexdigest()[:length]


def _function_for(template: Template, function_dir: str) -> Any:
    for spec in template.functions():
        if spec.code_uri.name == function_dir:
            return spec
    raise ValueError(f"no function in template.yaml has CodeUri functions/{function_dir}/")


def _match_route(spec: Any, method: str, path: str, function_dir: str) -> tuple[str, dict[str, str]]:
    """The route key and path parameters API Gateway gives the request (the local server's router)."""
    router = Router()
    for route in spec.routes:
        router.add_route(route.method, route.path, spec.logical_id)
    match = router.match(method, path)
    if match is None:
        raise ValueError(f"{method} {path} matches no route of {spec.logical_id} (functions/{function_dir})")
    return match.target.route_key, match.path_parameters


# --------------------------------------------------------------------------- signers
def signed_cursor(user: int, after_id: int, ordering: str = "id", forward: bool = True) -> Signer:
    """Puts a genuine page cursor (minted with the key the list function derives from JWT_SECRET)
    into the event's `cursor` query parameter."""

    def sign(event: Event, now: int) -> Event:
        from halum_payments.cursors import Cursor, CursorCodec, derive_key

        codec = CursorCodec(derive_key(LOCAL_ENVIRONMENT["JWT_SECRET"]))
        value = codec.encode(Cursor(user, ordering, None, None, forward, {"id": after_id}))
        return with_query_parameter(event, "cursor", value)

    return sign


def stripe_signed(secret: str = defaults.LOCAL_STRIPE_WEBHOOK_SECRET) -> Signer:
    """A `Stripe-Signature` header for the body, timestamped `now` (Stripe's scheme: v1 is the
    HMAC-SHA256 of "<t>.<body>"). Stripe verification allows 5 minutes, hence re-signing in tests."""

    def sign(event: Event, now: int) -> Event:
        payload = _raw_body(event)
        digest = hmac.new(secret.encode(), f"{now}.".encode() + payload, hashlib.sha256).hexdigest()
        return _with_header(event, "stripe-signature", f"t={now},v1={digest}")

    return sign


def gateway_signed(secret: str = defaults.LOCAL_PAYMENT_WEBHOOK_SECRET, header: str = "x-webhook-signature") -> Signer:
    """The generic gateway's signature: `sha256=` + hex HMAC-SHA256 of the raw body."""

    def sign(event: Event, now: int) -> Event:
        digest = hmac.new(secret.encode(), _raw_body(event), hashlib.sha256).hexdigest()
        return _with_header(event, header, f"sha256={digest}")

    return sign


def _raw_body(event: Event) -> bytes:
    body = event.get("body") or ""
    return base64.b64decode(body) if event.get("isBase64Encoded") else body.encode()


def _with_header(event: Event, name: str, value: str) -> Event:
    event.setdefault("headers", {})[name] = value
    return event


def with_query_parameter(event: Event, name: str, value: str) -> Event:
    params = [(k, v) for k, v in parse_qsl(event.get("rawQueryString") or "", keep_blank_values=True) if k != name]
    params.append((name, value))
    event["rawQueryString"] = urlencode(params)
    event.setdefault("queryStringParameters", {})[name] = value
    return event


# A cursor we did not mint: the payload of a real one, a signature of zeros.
FORGED_CURSOR = (
    "eyJkIjoibiIsImsiOnsiaWQiOjF9LCJtIjpudWxsLCJvIjoiaWQiLCJzIjpudWxsLCJ1IjoxLCJ2IjoxfQ."
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
)

# Payment 1 of local/seed.json: the spec's example, as the API answers it.
PAYMENT_1 = next(payment for payment in json.loads(defaults.DEFAULT_SEED.read_text())["payments"] if payment["id"] == 1)
NOT_FOUND = {"detail": "Not found."}
GATEWAY_EVENT = {
    "event_type": "payment.completed",
    "payment_id": "txn_123456789",
    "order_reference": "1",
    "amount": "1598.00",
    "status": "completed",
    "timestamp": "2023-01-15T15:30:00Z",
}
STRIPE_EVENT = {
    "id": "evt_local_not_ours",
    "object": "event",
    "type": "checkout.session.completed",
    "data": {
        "object": {
            "id": "cs_test_elsewhere",
            "object": "checkout.session",
            "payment_status": "paid",
            "amount_total": 1000,
            "currency": "usd",
            "metadata": {},
        }
    },
}
# The demo's order 2 is paid by ONLINE payment 2 (899.00) under this gateway transaction.
GATEWAY_REFUND = {
    **GATEWAY_EVENT,
    "event_type": "payment.refunded",
    "status": "refunded",
    "payment_id": "txn_987654321",
    "order_reference": "2",
    "amount": "100.00",
}
DISPUTE_EVENT = {
    "id": "evt_local_dispute_not_ours",
    "object": "event",
    "type": "charge.dispute.created",
    "data": {
        "object": {
            "id": "dp_test_elsewhere",
            "object": "dispute",
            "amount": 1000,
            "currency": "usd",
            "charge": "ch_test_elsewhere",
            "payment_intent": "pi_test_elsewhere",
            "status": "needs_response",
        }
    },
}
NO_CREDENTIALS = {"detail": "Authentication credentials were not provided."}
BAD_TOKEN = {"detail": "Given token not valid for any token type"}
TAMPERED_CURSOR = "Invalid cursor: it is malformed or has been altered. Send it exactly as the page gave it (or start again without a cursor)."
ANOTHER_USERS_CURSOR = "Invalid cursor: it was issued to another user."
PAYMENTS = "/orders/api/payments/"


# --------------------------------------------------------------------------- cases
@dataclass(frozen=True)
class Case:
    name: str  # "<function_dir>/<case>": the file events/<function_dir>/<case>.json
    request: Http | Scheduled | AuditStream
    status: int | None = None  # expected statusCode of an HTTP response
    body: Any = None  # expected JSON body, as a subset (dict keys present and equal, lists equal in length)
    result: Any = None  # for non-HTTP functions: expected return value, as a subset
    signer: Signer | None = None

    @property
    def function_dir(self) -> str:
        return self.name.split("/", 1)[0]

    def expectation(self) -> dict[str, Any]:
        expected: dict[str, Any] = {}
        for key in ("status", "body", "result"):
            if getattr(self, key) is not None:
                expected[key] = getattr(self, key)
        return expected


# fmt: off
# Audit rows as the checkout and the Stripe webhook commit them (docs/money.md, the books contract).
AUDIT_AT = "2025-01-01T12:00:00.000000Z"
PLACED_ROW = {"payment": 4, "at": f"{AUDIT_AT}#a1b2c3d4e5f6", "order": 4, "to": "pending", "source": "checkout",
              "reason": "created", "recorded_at": "2025-01-01T12:00:00Z", "order_to": "pending"}
PAID_ROW = {"payment": 4, "at": "2025-01-01T12:05:00.000000Z#b2c3d4e5f6a1", "order": 4, "from": "pending",
            "to": "completed", "source": "stripe", "event_id": "evt_local_completed", "reason": "checkout.session.completed",
            "recorded_at": "2025-01-01T12:05:00Z", "order_to": "confirmed"}
MISMATCH_ROW = {"payment": 4, "at": "2025-01-01T12:06:00.000000Z#c3d4e5f6a1b2", "order": 4, "from": "pending",
                "to": "pending", "source": "stripe", "reason": "amount_mismatch", "recorded_at": "2025-01-01T12:06:00Z",
                "attention": "amount_mismatch", "details": {"reported_amount": "1.00", "reported_currency": "usd"}}

CASES: list[Case] = [
    # ---- GET /orders/api/payments/ (user 1 has payments 1 and 2; payment 3 is user 2's)
    Case("list_payments/ok", GET(PAYMENTS, user=1), 200, {"count": 2, "next": None, "previous": None, "results": [PAYMENT_1, {"id": 2}]}),
    Case("list_payments/ok_without_trailing_slash", GET("/orders/api/payments", user=1), 200, {"count": 2, "results": [{"id": 1}, {"id": 2}]}),
    Case("list_payments/filtered_by_status", GET(PAYMENTS, query="status=completed", user=1), 200, {"count": 1, "results": [{"id": 2, "status": "completed"}]}),
    Case("list_payments/first_page", GET(PAYMENTS, query="page_size=1", user=1), 200, {"count": 2, "previous": None, "results": [{"id": 1}]}),
    Case("list_payments/second_page", GET(PAYMENTS, query="page_size=1", user=1), 200, {"count": 2, "next": None, "results": [{"id": 2}]}, signer=signed_cursor(user=1, after_id=1)),
    Case("list_payments/forged_cursor", GET(PAYMENTS, query=f"page_size=1&cursor={FORGED_CURSOR}", user=1), 400, {"detail": f"cursor: {TAMPERED_CURSOR}", "cursor": [TAMPERED_CURSOR]}),
    Case("list_payments/other_users_cursor", GET(PAYMENTS, query="page_size=1", user=2), 400, {"detail": f"cursor: {ANOTHER_USERS_CURSOR}", "cursor": [ANOTHER_USERS_CURSOR]}, signer=signed_cursor(user=1, after_id=1)),
    Case("list_payments/invalid_page_size", GET(PAYMENTS, query="page_size=0", user=1), 400),
    Case("list_payments/page_number", GET(PAYMENTS, query="page=2", user=1), 400),
    Case("list_payments/unauthenticated", GET(PAYMENTS), 401, NO_CREDENTIALS),
    Case("list_payments/expired_token", GET(PAYMENTS, headers={"authorization": f"Bearer {token(1, exp=TOKEN_ISSUED_AT + 1800)}"}), 401, BAD_TOKEN),
    # ---- GET /orders/api/payments/{id}/
    Case("get_payment/ok", GET(f"{PAYMENTS}1/", user=1), 200, PAYMENT_1),
    Case("get_payment/ok_without_trailing_slash", GET(f"{PAYMENTS}2", user=1), 200, {"id": 2, "status": "completed", "transaction_id": "txn_987654321"}),
    Case("get_payment/not_found", GET(f"{PAYMENTS}999/", user=1), 404, NOT_FOUND),
    Case("get_payment/other_users_payment", GET(f"{PAYMENTS}1/", user=2), 404, NOT_FOUND),
    Case("get_payment/malformed_id", GET(f"{PAYMENTS}abc/", user=1), 404, NOT_FOUND),
    Case("get_payment/unauthenticated", GET(f"{PAYMENTS}1/"), 401, NO_CREDENTIALS),
    Case("get_payment/refresh_token", GET(f"{PAYMENTS}1/", headers={"authorization": f"Bearer {token(1, token_type='refresh')}"}), 401, BAD_TOKEN),

    # ---- POST /orders/api/create-cod/ (user 1's cart: 2 x Rui 799.00 + 1 x Rice 425.50)
    Case("create_cod_order/ok", POST("/orders/api/create-cod/", body={"shipping_address": 1}, user=1), 201, {"order_id": 4, "status": "confirmed", "payment_method": "COD", "payment": {"id": 4, "order": 4, "user": 1, "amount": "2023.50", "method": "COD", "status": "pending", "transaction_id": None}}),
    Case("create_cod_order/foreign_address", POST("/orders/api/create-cod/", body={"shipping_address": 2}, user=1), 400),
    Case("create_cod_order/invalid_body", POST("/orders/api/create-cod/", body={"shipping_address": "one"}, user=1), 400),
    Case("create_cod_order/unauthenticated", POST("/orders/api/create-cod/", body={"shipping_address": 1}), 401, NO_CREDENTIALS),
    # ---- POST /orders/api/create-stripe-order/ (the events run without a Stripe key: 503 after auth)
    Case("create_stripe_order/gateway_not_configured", POST("/orders/api/create-stripe-order/", body={"shipping_address": 1}, user=1), 503, {"detail": "Stripe payment gateway is not configured"}),
    Case("create_stripe_order/unauthenticated", POST("/orders/api/create-stripe-order/", body={"shipping_address": 1}), 401, NO_CREDENTIALS),
    # ---- POST /orders/api/payment-webhook/ (the spec's example confirms order 1)
    Case("payment_webhook/payment_completed", POST("/orders/api/payment-webhook/", body=GATEWAY_EVENT), 200, {"status": "success", "message": "Payment confirmed"}, signer=gateway_signed()),
    Case("payment_webhook/amount_mismatch", POST("/orders/api/payment-webhook/", body={**GATEWAY_EVENT, "amount": "1500.00"}), 422, {"status": "error"}, signer=gateway_signed()),
    Case("payment_webhook/unknown_order", POST("/orders/api/payment-webhook/", body={**GATEWAY_EVENT, "order_reference": "999"}), 404, {"status": "error"}, signer=gateway_signed()),
    Case("payment_webhook/partial_refund", POST("/orders/api/payment-webhook/", body=GATEWAY_REFUND), 200, {"status": "success", "message": "Partial refund recorded"}, signer=gateway_signed()),
    Case("payment_webhook/money_for_a_paid_order", POST("/orders/api/payment-webhook/", body={**GATEWAY_EVENT, "payment_id": "txn_second", "order_reference": "2", "amount": "899.00"}), 409, {"status": "error"}, signer=gateway_signed()),
    Case("payment_webhook/bad_signature", POST("/orders/api/payment-webhook/", body=GATEWAY_EVENT, headers={"x-webhook-signature": "sha256=" + "0" * 64}), 401, {"status": "error"}),
    # ---- POST /orders/api/stripe-webhook/ (Function URL; the demo seed has no Stripe payment)
    Case("stripe_webhook/session_not_ours", POST("/orders/api/stripe-webhook/", body=STRIPE_EVENT), 200, {"status": "success"}, signer=stripe_signed()),
    Case("stripe_webhook/unhandled_type", POST("/orders/api/stripe-webhook/", body={**STRIPE_EVENT, "id": "evt_local_unhandled", "type": "customer.created"}), 200, {"status": "success"}, signer=stripe_signed()),
    Case("stripe_webhook/dispute_not_ours", POST("/orders/api/stripe-webhook/", body=DISPUTE_EVENT), 200, {"status": "success"}, signer=stripe_signed()),
    Case("stripe_webhook/bad_signature", POST("/orders/api/stripe-webhook/", body=STRIPE_EVENT, headers={"stripe-signature": "t=1,v1=" + "0" * 64}), 400, {"status": "error"}),
    # ---- the audit table's stream: each committed row's domain events onto the bus (none for a mismatch)
    Case("publish_events/order_placed_and_paid", AuditStream((PLACED_ROW, PAID_ROW)), result={"batchItemFailures": []}),
    Case("publish_events/mismatch_publishes_nothing", AuditStream((MISMATCH_ROW,)), result={"batchItemFailures": []}),
    # ---- scheduled reconciliation sweep (nothing open in the demo seed)
    Case("reconcile_payments/scheduled", Scheduled(), result={"checked": 0, "finished": True}),
]
# fmt: on


def case(name: str) -> Case | None:
    return _CASES_BY_NAME.get(name)


_CASES_BY_NAME = {c.name: c for c in CASES}
assert len(_CASES_BY_NAME) == len(CASES), "duplicate case names in CASES"


# --------------------------------------------------------------------------- API for the tests
def function_environment(template_variables: Mapping[str, str]) -> dict[str, str]:
    """A function's variables from template.yaml as the events are meant to run with: each secret
    the template passes by id (`<NAME>_SECRET_ID`, read from Secrets Manager in AWS) becomes
    `<NAME>` with its local value, and a secret the function does not declare is blank (unset),
    so a function that lacks a declaration fails here as it would in AWS. Variables the template
    declares empty (for `sam local` to override, e.g. AWS_ENDPOINT_URL_DYNAMODB) are left unset."""
    variables = {k: v for k, v in template_variables.items() if not k.endswith("_SECRET_ID") and v != ""}
    for name, value in LOCAL_ENVIRONMENT.items():
        declared = f"{name}_SECRET_ID" in template_variables or name in template_variables
        variables[name] = value if declared else ""
    return variables


def prepare(name: str, event: Event, now: int | None = None) -> Event:
    """The event as it should be invoked now: a copy, re-signed by its case's signer if it has one."""
    event = copy.deepcopy(event)
    found = case(name)
    if found is not None and found.signer is not None:
        event = found.signer(event, int(time.time()) if now is None else now)
    return event


def event_files(events_dir: Path = EVENTS_DIR) -> dict[str, Path]:
    """Maps "<function_dir>/<case>" to its file, for every event file on disk."""
    return {f"{path.parent.name}/{path.stem}": path for path in sorted(events_dir.glob("*/*.json"))}


def load_manifest(path: Path = MANIFEST) -> dict[str, dict[str, Any]]:
    return json.loads(path.read_text())


def body_mismatch(actual: Any, expected: Any, where: str = "body") -> str | None:
    """None if `actual` contains `expected` (dicts: those keys, equal; lists: same length, each
    element matching; anything else: equal), else where and how they differ."""
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return f"{where}: expected an object, got {actual!r}"
        for key, value in expected.items():
            if key not in actual:
                return f"{where}: no key {key!r} in {sorted(actual)}"
            problem = body_mismatch(actual[key], value, f"{where}.{key}")
            if problem:
                return problem
        return None
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            return f"{where}: expected a list of {len(expected)}, got {actual!r}"
        for index, (a, e) in enumerate(zip(actual, expected, strict=True)):
            problem = body_mismatch(a, e, f"{where}[{index}]")
            if problem:
                return problem
        return None
    if actual != expected or type(actual) is not type(expected):
        return f"{where}: expected {expected!r}, got {actual!r}"
    return None


def check_response(name: str, response: Any, expected: Mapping[str, Any]) -> str | None:
    """None if a handler's return value meets the manifest's expectation, else why not."""
    if "result" in expected:
        problem = body_mismatch(response, expected["result"], "result")
        return f"{name}: {problem}" if problem else None
    if "status" not in expected and "body" not in expected:
        return None  # only that it ran without raising
    if not isinstance(response, dict) or "statusCode" not in response:
        return f"{name}: not an HTTP response: {response!r:.500}"
    if "status" in expected and response["statusCode"] != expected["status"]:
        return f"{name}: status {response['statusCode']}, expected {expected['status']}; body {response.get('body')!r:.500}"
    if "body" in expected:
        try:
            body = json.loads(response.get("body") or "null")
        except ValueError:
            return f"{name}: body is not JSON: {response.get('body')!r:.500}"
        problem = body_mismatch(body, expected["body"])
        if problem:
            return f"{name}: {problem}"
    return None


# --------------------------------------------------------------------------- writing
def render(template: Template | None = None, now: int | None = None) -> dict[Path, str]:
    """Every file this script writes: path -> content."""
    template = template or Template()
    now = int(time.time()) if now is None else now
    files: dict[Path, str] = {}
    for item in CASES:
        event = item.request.event(template, item.function_dir, item.name)
        if item.signer is not None:
            event = item.signer(event, now)
        files[EVENTS_DIR / f"{item.name}.json"] = json.dumps(event, indent=2) + "\n"
    manifest = {item.name: item.expectation() for item in sorted(CASES, key=lambda c: c.name)}
    files[MANIFEST] = json.dumps(manifest, indent=2) + "\n"
    return files


def differences(template: Template | None = None) -> list[str]:
    """How events/ differs from what `render` writes (signed parts compared after re-signing)."""
    now = int(time.time())
    wanted = render(template, now)
    problems = []
    on_disk = set(EVENTS_DIR.glob("*/*.json")) | ({MANIFEST} if MANIFEST.exists() else set())
    for path in sorted(on_disk - set(wanted)):
        problems.append(f"{path.relative_to(ROOT)}: not written by local/make_events.py (add a case to CASES)")
    for path, content in wanted.items():
        relative = path.relative_to(ROOT)
        if not path.exists():
            problems.append(f"{relative}: missing")
            continue
        if path == MANIFEST:
            same = json.loads(path.read_text()) == json.loads(content)
        else:
            name = f"{path.parent.name}/{path.stem}"
            same = prepare(name, json.loads(path.read_text()), now) == json.loads(content)
        if not same:
            problems.append(f"{relative}: differs from its case in local/make_events.py")
    return problems


def write(template: Template | None = None) -> list[Path]:
    files = render(template)
    for stale in set(EVENTS_DIR.glob("*/*.json")) - set(files):
        stale.unlink()
        print(f"removed {stale.relative_to(ROOT)}")
    for path, content in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_text() != content:
            path.write_text(content)
            print(f"wrote {path.relative_to(ROOT)}")
    for folder in EVENTS_DIR.iterdir():
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
    return sorted(files)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.make_events", description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only report whether events/ is up to date")
    args = parser.parse_args(argv)
    layer = ROOT / "layers" / "payments"
    if str(layer) not in sys.path:
        sys.path.insert(0, str(layer))  # signers use halum_payments, as the functions do
    if args.check:
        problems = differences()
        for problem in problems:
            print(problem, file=sys.stderr)
        if problems:
            print("run: python -m local.make_events", file=sys.stderr)
        return 1 if problems else 0
    files = write()
    print(f"{len(files) - 1} events and {MANIFEST.relative_to(ROOT)} up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
