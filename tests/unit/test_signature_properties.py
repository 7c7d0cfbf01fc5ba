"""Property tests of the webhook signature verifiers: the right signature over the exact bytes is
accepted (in every form the senders use), and any one-byte change of the body or of the signature
header is refused. Signatures are computed here from their definitions (tests/support/signing.py),
not with the verifiers' own code."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from support.signing import gateway_signature, stripe_signature

from halum_payments.errors import BadSignature
from halum_payments.gateways.signatures import MAX_SIGNATURE_HEADER, verify_gateway_signature, verify_stripe_event
from halum_payments.http import status_of

TOLERANCE = 300
SLACK = 30  # seconds kept from the tolerance's edges: the verifier reads the clock itself

properties = settings(deadline=None, max_examples=100, suppress_health_check=[HealthCheck.too_slow])

bodies = st.binary(min_size=0, max_size=2048)
secrets = st.text(min_size=1, max_size=64).filter(lambda s: s.strip() == s and s != "")
# A replacement for one character of a header: printable ASCII, and some that are not.
replacements = st.characters(min_codepoint=0x20, max_codepoint=0x7E) | st.sampled_from(["\u00e9", "\u0131", "\x00"])


def changed_byte(data: bytes, index: int, value: int) -> bytes:
    return data[:index] + bytes([value]) + data[index + 1 :]


def changed_char(text: str, index: int, char: str) -> str:
    return text[:index] + char + text[index + 1 :]


def same_hex_digit(old: str, new: str) -> bool:
    """Hex is case-insensitive: `a` for `A` is the same signature, not a change of it."""
    return old.lower() == new.lower() and old.lower() in "abcdef"


def refused_gateway(body: bytes, header: str | None, keys: list[str]) -> bool:
    try:
        verify_gateway_signature(body, header, keys)
    except BadSignature as exc:
        assert status_of(exc) == 401  # the gateway's contract
        return True
    return False


# ---------------------------------------------------------------------------- generic gateway
@properties
@given(body=bodies, secret=secrets, form=st.sampled_from(["plain", "sha256=", "SHA256=", "uppercase", "padded"]))
def test_gateway_accepts_the_right_signature_in_every_form(body: bytes, secret: str, form: str) -> None:
    signature = gateway_signature(body, secret)
    header = {
        "plain": signature,
        "sha256=": f"sha256={signature}",
        "SHA256=": f"SHA256={signature}",
        "uppercase": signature.upper(),
        "padded": f" {signature} ",
    }[form]
    verify_gateway_signature(body, header, [secret])


@properties
@given(body=bodies, keys=st.lists(secrets, min_size=1, max_size=4, unique=True), data=st.data())
def test_gateway_accepts_any_of_the_rotating_secrets(body: bytes, keys: list[str], data: st.DataObject) -> None:
    secret = data.draw(st.sampled_from(keys))
    verify_gateway_signature(body, gateway_signature(body, secret), keys)


@properties
@given(body=bodies.filter(bool), secret=secrets, data=st.data())
def test_gateway_refuses_any_one_byte_change_of_the_body(body: bytes, secret: str, data: st.DataObject) -> None:
    index = data.draw(st.integers(0, len(body) - 1))
    value = data.draw(st.integers(0, 255).filter(lambda v: v != body[index]))
    signature = gateway_signature(body, secret)
    assert refused_gateway(changed_byte(body, index, value), signature, [secret])
    assert refused_gateway(body + b"\x00", signature, [secret])
    assert refused_gateway(body[:-1], signature, [secret])


@properties
@given(body=bodies, secret=secrets, prefixed=st.booleans(), data=st.data())
def test_gateway_refuses_any_one_byte_change_of_the_signature(
    body: bytes, secret: str, prefixed: bool, data: st.DataObject
) -> None:
    header = ("sha256=" if prefixed else "") + gateway_signature(body, secret)
    index = data.draw(st.integers(0, len(header) - 1))
    new = data.draw(replacements.filter(lambda c: c != header[index]))
    assume(not same_hex_digit(header[index], new))
    assume(not (prefixed and index < len("sha256=") and header[index].lower() == new.lower()))  # prefix case
    assert refused_gateway(body, changed_char(header, index, new), [secret])


@properties
@given(body=bodies, secret=secrets, other=secrets)
def test_gateway_refuses_another_secrets_signature_and_no_signature(body: bytes, secret: str, other: str) -> None:
    assume(other != secret)
    assert refused_gateway(body, gateway_signature(body, other), [secret])
    assert refused_gateway(body, None, [secret])
    assert refused_gateway(body, "", [secret])
    assert refused_gateway(body, gateway_signature(body, secret), [])
    assert refused_gateway(body, "a" * (MAX_SIGNATURE_HEADER + 1), [secret])


# ---------------------------------------------------------------------------- Stripe
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
stripe_events = st.fixed_dictionaries(
    {
        "id": st.text(min_size=1, max_size=40),
        "object": st.just("event"),
        "type": st.text(min_size=1, max_size=60) | st.sampled_from(["checkout.session.completed", "charge.refunded"]),
        "data": st.fixed_dictionaries({"object": st.dictionaries(st.text(max_size=12), json_values, max_size=5)}),
    },
    optional={"created": st.integers(0, 2**40), "livemode": st.booleans(), "extra": json_values},
)


@st.composite
def stripe_payloads(draw: st.DrawFn) -> bytes:
    """A Stripe event as bytes, formatted as Stripe does (or compactly, or with non-ASCII kept)."""
    event = draw(stripe_events)
    indent = draw(st.sampled_from([None, 2]))
    return json.dumps(event, indent=indent, ensure_ascii=draw(st.booleans())).encode()


def refused_stripe(body: bytes, header: str | None, keys: list[str]) -> bool:
    try:
        verify_stripe_event(body, header, keys, tolerance=TOLERANCE)
    except BadSignature as exc:
        assert status_of(exc) == 400  # Stripe's convention
        return True
    return False


# A timestamp well within the tolerance, taken when drawn.
recent = st.integers(0, TOLERANCE - SLACK).map(lambda seconds_ago: int(time.time()) - seconds_ago)


@properties
@given(payload=stripe_payloads(), secret=secrets, data=st.data())
def test_stripe_accepts_a_signature_within_the_tolerance(payload: bytes, secret: str, data: st.DataObject) -> None:
    header = stripe_signature(payload, secret, timestamp=data.draw(recent))
    assert verify_stripe_event(payload, header, [secret], tolerance=TOLERANCE) == json.loads(payload)


@properties
@given(payload=stripe_payloads(), keys=st.lists(secrets, min_size=2, max_size=4, unique=True), data=st.data())
def test_stripe_accepts_rolled_secrets_and_several_v1_signatures(
    payload: bytes, keys: list[str], data: st.DataObject
) -> None:
    stamp = data.draw(recent)
    secret = data.draw(st.sampled_from(keys))
    verify_stripe_event(payload, stripe_signature(payload, secret, timestamp=stamp), keys, tolerance=TOLERANCE)
    # While a secret rolls, Stripe signs with both: `t=...,v1=<old>,v1=<new>`.
    old = stripe_signature(payload, "whsec_old_" + secret, timestamp=stamp).split(",v1=")[1]
    header = stripe_signature(payload, secret, timestamp=stamp).replace(",v1=", f",v1={old},v1=")
    verify_stripe_event(payload, header, [secret], tolerance=TOLERANCE)


@properties
@given(payload=stripe_payloads(), secret=secrets, data=st.data())
def test_stripe_refuses_any_one_byte_change_of_the_body(payload: bytes, secret: str, data: st.DataObject) -> None:
    header = stripe_signature(payload, secret, timestamp=data.draw(recent))
    index = data.draw(st.integers(0, len(payload) - 1))
    value = data.draw(st.integers(0, 255).filter(lambda v: v != payload[index]))
    assert refused_stripe(changed_byte(payload, index, value), header, [secret])
    assert refused_stripe(payload + b" ", header, [secret])


@properties
@given(payload=stripe_payloads(), secret=secrets, data=st.data())
def test_stripe_refuses_any_one_byte_change_of_the_signature_header(
    payload: bytes, secret: str, data: st.DataObject
) -> None:
    header = stripe_signature(payload, secret, timestamp=data.draw(recent))
    index = data.draw(st.integers(0, len(header) - 1))
    new = data.draw(replacements.filter(lambda c: c != header[index]))
    assert refused_stripe(payload, changed_char(header, index, new), [secret])


@properties
@given(payload=stripe_payloads(), secret=secrets, late=st.integers(1, 10**6))
def test_stripe_refuses_an_expired_timestamp(payload: bytes, secret: str, late: int) -> None:
    stamp = int(time.time()) - TOLERANCE - SLACK - late
    assert refused_stripe(payload, stripe_signature(payload, secret, timestamp=stamp), [secret])


@properties
@given(payload=stripe_payloads(), secret=secrets, other=secrets)
def test_stripe_refuses_another_secrets_signature_and_no_signature(payload: bytes, secret: str, other: str) -> None:
    assume(other != secret)
    assert refused_stripe(payload, stripe_signature(payload, other), [secret])
    assert refused_stripe(payload, None, [secret])
    assert refused_stripe(payload, "", [secret])
    assert refused_stripe(payload, stripe_signature(payload, secret), [])


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b"[]",
        b'{"type": "x"}',
        b'{"id": 1, "type": "x", "data": {"object": {}}}',
        b'{"id": "", "type": "x", "data": {"object": {}}}',  # "" would be the idempotency key
        b'{"id": "evt_1", "type": "checkout.session.completed", "data": "x"}',
        b'{"id": "evt_1", "type": "checkout.session.completed", "data": {"object": 5}}',
        b"[" * 100_000 + b"]" * 100_000,
        b"\xff\xfe",
        # Python refuses to parse integers over 4,300 digits (ValueError): once a 500.
        b'{"id": "evt_1", "type": "x", "data": {"object": {"amount_total": ' + b"9" * 5000 + b"}}}",
    ],
    ids=[
        "not-json",
        "array",
        "no-id",
        "int-id",
        "empty-id",
        "data-string",
        "object-int",
        "deep",
        "not-utf8",
        "5000-digit-number",
    ],
)
def test_stripe_refuses_signed_payloads_that_are_not_events(payload: bytes) -> None:
    """Correctly signed, but not a Stripe event: 400, never an error of ours."""
    assert refused_stripe(payload, stripe_signature(payload, "whsec_test"), ["whsec_test"])


def test_the_signers_here_agree_with_stripes_own() -> None:
    """The stdlib signer above is Stripe's scheme (checked once against stripe-python's signer)."""
    import stripe

    payload: Any = json.dumps({"id": "evt_1", "type": "x", "data": {"object": {}}})
    stamp = int(time.time())
    expected = stripe.WebhookSignature.generate_signature_header(payload, "whsec_test", timestamp=stamp)
    assert stripe_signature(payload.encode(), "whsec_test", timestamp=stamp) == expected


HEADER_LIMIT = 2048  # docs/api.md: a signature header is read up to 2,048 characters


@pytest.mark.parametrize("extra", [0, 1])
def test_a_signature_header_is_read_up_to_its_documented_length(extra: int) -> None:
    event = {"id": "evt_test_limit", "object": "event", "type": "customer.created", "data": {"object": {}}}
    body, secret = json.dumps(event).encode(), "whsec_limit"
    signed = stripe_signature(body, secret)
    # Padded with further v1 signatures (as while a secret rolls) to exactly the limit, or one more.
    padding = ",v1=" + "0" * (HEADER_LIMIT + extra - len(signed) - len(",v1="))
    stripe_header = signed + padding
    assert len(stripe_header) == HEADER_LIMIT + extra
    gateway_header = gateway_signature(body, secret).ljust(HEADER_LIMIT + extra)  # trailing spaces are stripped
    if extra == 0:
        assert verify_stripe_event(body, stripe_header, [secret])["id"] == "evt_test_limit"
        assert not refused_gateway(body, gateway_header, [secret])
    else:
        with pytest.raises(BadSignature):
            verify_stripe_event(body, stripe_header, [secret])
        assert refused_gateway(body, gateway_header, [secret])
