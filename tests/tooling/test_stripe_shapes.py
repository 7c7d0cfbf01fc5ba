"""The Stripe sandbox's objects against Stripe's published shapes.

Two sources, each checking what the other cannot:
- which fields Stripe sends in every Checkout Session, Charge, Refund and Event: the field names of
  Stripe's own fixtures (tests/tooling/stripe_fixture_fields.json, vendored from stripe/openapi; its
  `_source` says where and which version). The sandbox sends exactly these: none missing, none invented.
- what each field holds: stripe-python 16's typed resources (`stripe.checkout.Session`, `stripe.Charge`,
  ... class annotations, for the API version it pins, which the sandbox announces). A field annotated
  without `Optional` is never null; a value has the annotated type; nested objects have only fields
  their class declares and every field it declares as always present. A field the vendored list names
  must exist in the installed stripe-python (the two sources agree about the version).

The objects checked are the sandbox's real answers and events, over HTTP: created, retrieved (with its
PaymentIntent expanded), expired, paid, paid with a delayed method (confirmed and declined), cancelled,
refunded in two parts, disputed (won and lost), and the event log as List Events and Retrieve Event
answer it.
"""

from __future__ import annotations

import json
import types
import typing
from pathlib import Path
from typing import Any, ForwardRef, Literal, Union
from urllib.parse import urlencode

import pytest
import stripe
from stripe._stripe_object import StripeObject
from support.stripe_http import create, request

from local.stripe_sandbox import API_VERSION, StripeSandbox

FIELDS: dict[str, Any] = json.loads((Path(__file__).parent / "stripe_fixture_fields.json").read_text())
RESOURCES: dict[str, type[StripeObject]] = {
    "checkout.session": stripe.checkout.Session,
    "charge": stripe.Charge,
    "refund": stripe.Refund,
    "event": stripe.Event,
    "dispute": stripe.Dispute,
    "payment_intent": stripe.PaymentIntent,
}
# Forward references stripe-python leaves unresolved (imported for type checking only).
FORWARD: dict[str, type[StripeObject]] = {"Refund": stripe.Refund, "PaymentIntent": stripe.PaymentIntent}


def annotations(cls: type) -> dict[str, Any]:
    return {
        name: annotation
        for name, annotation in vars(cls).get("__annotations__", {}).items()
        if not name.isupper() and not name.startswith("_") and typing.get_origin(annotation) is not typing.ClassVar
    }


def optional(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (Union, types.UnionType) and type(None) in typing.get_args(annotation)


def mismatches(value: Any, annotation: Any, path: str) -> list[str]:
    """How `value` differs from stripe-python's `annotation` (empty: it fits)."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is Any:
        return []
    if isinstance(annotation, ForwardRef):  # an expandable resource: its id, or the object when expanded
        target = FORWARD.get(annotation.__forward_arg__)
        if isinstance(value, dict) and target is not None:
            return shape(value, target, path)
        return [] if isinstance(value, (str, dict)) else [f"{path}: {value!r} is not an id or an object"]
    if origin in (Union, types.UnionType):
        if value is None:
            return [] if type(None) in args else [f"{path}: null, but Stripe always sends a value"]
        branches = [mismatches(value, arg, path) for arg in args if arg is not type(None)]
        return [] if any(not branch for branch in branches) else min(branches, key=len)
    if origin is Literal:
        return [] if value in args else [f"{path}: {value!r} is not one of {args}"]
    if annotation is bool:
        return [] if isinstance(value, bool) else [f"{path}: {value!r} is not a boolean"]
    if annotation is int:
        return [] if isinstance(value, int) and not isinstance(value, bool) else [f"{path}: {value!r} is not an int"]
    if annotation is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return [] if ok else [f"{path}: {value!r} is not a number"]
    if annotation is str:
        return [] if isinstance(value, str) else [f"{path}: {value!r} is not a string"]
    if origin in (list, typing.List):  # noqa: UP006 - stripe-python annotates with typing.List
        if not isinstance(value, list):
            return [f"{path}: {value!r} is not a list"]
        return [problem for i, item in enumerate(value) for problem in mismatches(item, args[0], f"{path}[{i}]")]
    if origin in (dict, typing.Dict):  # noqa: UP006
        if not isinstance(value, dict):
            return [f"{path}: {value!r} is not an object"]
        return [problem for k, v in value.items() for problem in mismatches(v, args[1], f"{path}.{k}")]
    if origin is not None and isinstance(origin, type) and origin.__name__ == "ListObject":
        if not isinstance(value, dict) or value.get("object") != "list" or not isinstance(value.get("data"), list):
            return [f"{path}: {value!r} is not a list object"]
        return [
            problem for i, item in enumerate(value["data"]) for problem in mismatches(item, args[0], f"{path}[{i}]")
        ]
    if origin is not None and isinstance(origin, type) and origin.__name__ == "UntypedStripeObject":
        if not isinstance(value, dict):
            return [f"{path}: {value!r} is not an object"]
        return [problem for k, v in value.items() for problem in mismatches(v, args[0], f"{path}.{k}")]
    if isinstance(annotation, type) and issubclass(annotation, StripeObject):
        return shape(value, annotation, path) if isinstance(value, dict) else [f"{path}: {value!r} is not an object"]
    raise AssertionError(f"{path}: no rule for the annotation {annotation!r}")


def shape(value: dict[str, Any], cls: type, path: str) -> list[str]:
    declared = annotations(cls)
    problems = [f"{path}.{name}: not a field of {cls.__qualname__}" for name in value if name not in declared]
    problems += [
        f"{path}.{name}: missing (always sent by Stripe)"
        for name, annotation in declared.items()
        if name not in value and not optional(annotation)
    ]
    for name in value.keys() & declared.keys():
        problems += mismatches(value[name], declared[name], f"{path}.{name}")
    return problems


def assert_stripe_shaped(obj: dict[str, Any]) -> None:
    resource = obj["object"]
    assert resource in RESOURCES, f"{resource!r} is not an object the sandbox sends"
    expected = set(FIELDS[resource])
    assert set(obj) == expected, (
        f"{resource}: missing {sorted(expected - set(obj))}, not sent by Stripe {sorted(set(obj) - expected)}"
    )
    problems = shape(obj, RESOURCES[resource], resource)
    assert not problems, "\n".join(problems)
    for value in obj.values():
        if isinstance(value, dict) and value.get("object") == "list":
            for item in value["data"]:
                assert_stripe_shaped(item)
    if resource == "event":
        assert_stripe_shaped(obj["data"]["object"])


def press(box: StripeSandbox, session: dict[str, Any], action: str, form: dict[str, str] | None = None) -> None:
    assert request(box, "POST", f"/checkout/{session['id']}/{action}", form or {}, key=None).status == 303


def lifecycle(box: StripeSandbox) -> list[dict[str, Any]]:
    """Every object the sandbox answers or sends along the paths our service takes."""
    answers = []
    created = create(box)
    answers.append(created)
    answers.append(request(box, "GET", f"/v1/checkout/sessions/{created['id']}").json())
    answers.append(request(box, "POST", f"/v1/checkout/sessions/{created['id']}/expire", {}).json())
    paid = create(box, customer_email="buyer@example.com")
    press(box, paid, "pay")
    press(box, paid, "refund", {"amount": "98"})
    press(box, paid, "refund")
    answers.append(request(box, "GET", f"/v1/checkout/sessions/{paid['id']}").json())
    expand = [("expand[0]", "payment_intent")]
    answers.append(request(box, "GET", f"/v1/checkout/sessions/{paid['id']}?{urlencode(expand)}").json())
    for outcome in ("confirm", "decline", None):
        delayed = create(box)
        press(box, delayed, "pay-delayed")
        if outcome:
            press(box, delayed, outcome)
        answers.append(request(box, "GET", f"/v1/checkout/sessions/{delayed['id']}?{urlencode(expand)}").json())
    press(box, create(box), "cancel")
    for won in (True, False):
        disputed = create(box)
        press(box, disputed, "pay")
        press(box, disputed, "dispute")
        press(box, disputed, "dispute-won" if won else "dispute-lost")
    events = [delivery.event for delivery in box.deliveries]
    assert {event["type"] for event in events} == {
        "checkout.session.completed",
        "checkout.session.async_payment_succeeded",
        "checkout.session.async_payment_failed",
        "checkout.session.expired",
        "charge.refunded",
        "charge.dispute.created",
        "charge.dispute.funds_withdrawn",
        "charge.dispute.closed",
        "charge.dispute.funds_reinstated",
    }
    listed = request(box, "GET", "/v1/events?limit=100").json()
    assert set(listed) == {"object", "data", "has_more", "url"}
    answers += listed["data"]
    answers.append(request(box, "GET", f"/v1/events/{events[0]['id']}").json())
    intents = {obj["payment_intent"] for obj in box.sessions.values() if obj["payment_intent"]}
    answers += [request(box, "GET", f"/v1/payment_intents/{intent}").json() for intent in sorted(intents)]
    return answers + events + list(box.charges.values()) + list(box.disputes.values())


def test_the_sandboxs_objects_and_events_have_stripes_shapes(sandbox):
    objects = lifecycle(sandbox)
    assert {obj["object"] for obj in objects} == {"checkout.session", "event", "charge", "dispute", "payment_intent"}
    expanded = [obj["payment_intent"] for obj in objects if isinstance(obj.get("payment_intent"), dict)]
    assert sorted(intent["status"] for intent in expanded) == [
        "processing",
        "requires_payment_method",
        "succeeded",
        "succeeded",
    ]
    for obj in objects:
        assert_stripe_shaped(obj)
    delivered = [delivery.event for delivery in sandbox.deliveries]
    refunded = [event["data"]["object"] for event in delivered if event["type"] == "charge.refunded"]
    assert [charge["refunds"]["total_count"] for charge in refunded] == [1, 2]
    assert [refund["amount"] for refund in refunded[-1]["refunds"]["data"]] == [4498 - 98, 98]


def test_the_shape_check_catches_each_kind_of_drift(sandbox):
    """The check itself can fail: a missing, an invented, a null and a mistyped field, at any depth."""
    session = create(sandbox)
    press(sandbox, session, "pay")
    (charge,) = sandbox.charges.values()
    card = charge["payment_method_details"]["card"]
    drifted = {
        "missing": {k: v for k, v in session.items() if k != "automatic_tax"},
        "not sent by Stripe": {**session, "shipping_details": None},
        "null where Stripe always sends a value": {**session, "livemode": None},
        "a string for an integer": {**session, "amount_total": "4498"},
        "an unknown value of a closed enum": {**session, "object": "checkout_session"},
        "nested: not a field": {**session, "custom_text": {**session["custom_text"], "headline": None}},
        "nested: missing": {**session, "total_details": {"amount_discount": 0, "amount_shipping": 0}},
        "deep: null": {
            **charge,
            "payment_method_details": {"type": "card", "card": {**card, "exp_month": None}},
        },
        "deep: mistyped": {**charge, "outcome": {**charge["outcome"], "risk_score": "32"}},
    }
    for kind, obj in drifted.items():
        with pytest.raises(AssertionError):
            assert_stripe_shaped(obj)
            pytest.fail(f"not caught: {kind}")


def test_the_vendored_fields_are_those_of_the_installed_stripe_pythons_api_version():
    assert stripe.api_version == API_VERSION  # what the sandbox announces
    for resource, cls in RESOURCES.items():
        unknown = set(FIELDS[resource]) - set(annotations(cls))
        assert not unknown, f"{resource}: {sorted(unknown)} are not in stripe-python {stripe.VERSION}"
    assert "stripe/openapi" in FIELDS["_source"] and "fixtures3.json" in FIELDS["_source"]
