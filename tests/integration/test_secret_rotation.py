"""Rotating a secret takes effect without a deploy, SnapStart or not.

Secrets are read at cold start (with SnapStart, when the version is published: the value then lives
in the snapshot). Rotation must not need a code change or a new version:
- a sender that already signs with the rotated secret is accepted at once (the value is read again
  when a check refuses it, at most once per interval, so forged signatures cannot drive reads);
- a revoked value stops working once the value read is older than its max age (300 s);
- after a SnapStart restore the values are read again, whatever their age;
- a read that fails keeps the last value, and the logs never show a value.

Each function is loaded as deployed (`<NAME>_SECRET_ID`, the value empty) against Secrets Manager
(moto); the secrets module's wall clock is moved by the test where time must pass.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import boto3
import pytest
from support import auth, call, make_token
from support.checkout import STRIPE_KEY
from support.iam import RECORDER
from support.webhooks import captured_output, send_gateway, send_stripe

from halum_payments import secrets as secrets_module
from halum_payments import snapstart
from local.dynamodb import EmbeddedDynamoDB
from local.template import Template

TEMPLATE = Template()

OLD, NEW = "rotation-old-" + "o" * 24, "rotation-new-" + "n" * 24
GATEWAY_EVENT = {
    "event_type": "payment.completed",
    "payment_id": "txn_rotation",
    "order_reference": "999",
    "amount": "10.00",
    "status": "completed",
    "timestamp": "2023-01-15T15:30:00Z",
}


class Clock:
    def __init__(self) -> None:
        self.now = 1_900_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(secrets_module, "clock", clock, raising=False)  # (raising: the test ran before the fix too)
    return clock


@pytest.fixture
def vault(dynamodb_server: EmbeddedDynamoDB, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", dynamodb_server.endpoint)
    return boto3.client("secretsmanager", endpoint_url=dynamodb_server.endpoint)


def stored(vault: Any, value: str, setting: str) -> str:
    """The secret `setting` reads, under the name the template gives it (what its IAM grant covers:
    the conformance verdicts judge these reads too), holding `value`."""
    name = next(
        spec.environment[f"{setting}_SECRET_ID"]
        for spec in TEMPLATE.functions()
        if f"{setting}_SECRET_ID" in spec.environment
    )
    vault.create_secret(Name=name, SecretString=value)
    return name


def reads(name: str) -> int:
    """GetSecretValue calls for `name` made by any function so far."""
    return sum(1 for c in RECORDER.calls if c.action == "secretsmanager:GetSecretValue" and f":{name}-" in c.resource)


def gateway(load_function: Any, vault: Any, value: str = OLD) -> tuple[Any, str]:
    name = stored(vault, value, "PAYMENT_WEBHOOK_SECRET")
    module = load_function("payment_webhook", PAYMENT_WEBHOOK_SECRET="", PAYMENT_WEBHOOK_SECRET_SECRET_ID=name)
    return module, name


def accepted(reply: Any) -> bool:
    """The gateway's signature check passed (the event itself names no order of ours: 404)."""
    return reply.status != 401


def test_a_gateway_that_signs_with_the_rotated_secret_is_accepted_at_once(load_function, tables, vault, clock):
    module, name = gateway(load_function, vault)
    assert accepted(send_gateway(module, GATEWAY_EVENT, secret=OLD))
    vault.put_secret_value(SecretId=name, SecretString=NEW)
    before = reads(name)

    assert accepted(send_gateway(module, GATEWAY_EVENT, secret=NEW))
    assert reads(name) == before + 1  # read again because the check refused the signature
    assert accepted(send_gateway(module, GATEWAY_EVENT, secret=NEW))
    assert reads(name) == before + 1


def test_a_revoked_secret_stops_working_once_the_value_read_is_past_its_age(load_function, tables, vault, clock):
    module, name = gateway(load_function, vault)
    vault.put_secret_value(SecretId=name, SecretString=NEW)  # the old value was leaked: replaced
    clock.now += 299
    assert accepted(send_gateway(module, GATEWAY_EVENT, secret=OLD))  # within the max age
    clock.now += 2
    assert send_gateway(module, GATEWAY_EVENT, secret=OLD).status == 401
    assert accepted(send_gateway(module, GATEWAY_EVENT, secret=NEW))


def test_both_values_of_a_rotation_are_accepted_while_the_secret_holds_both(load_function, tables, vault, clock):
    module, name = gateway(load_function, vault)
    vault.put_secret_value(SecretId=name, SecretString=f"{NEW},{OLD}")
    clock.now += 301
    assert accepted(send_gateway(module, GATEWAY_EVENT, secret=OLD))
    assert accepted(send_gateway(module, GATEWAY_EVENT, secret=NEW))


def test_forged_signatures_read_the_secret_at_most_once_per_interval(load_function, tables, vault, clock):
    module, name = gateway(load_function, vault)
    before = reads(name)
    for _ in range(20):
        assert send_gateway(module, GATEWAY_EVENT, secret="forged-" + "f" * 24).status == 401
    assert reads(name) == before + 1
    clock.now += secrets_module.REFUSAL_REREAD_SECONDS
    assert send_gateway(module, GATEWAY_EVENT, secret="forged-" + "f" * 24).status == 401
    assert reads(name) == before + 2


def test_after_a_snapstart_restore_every_secret_is_read_again(load_function, tables, vault, clock):
    """The restore hook marks every value stale: the first use reads it, however young the snapshot."""
    module, name = gateway(load_function, vault)
    vault.put_secret_value(SecretId=name, SecretString=NEW)
    snapstart.after_restore()
    before = reads(name)
    assert send_gateway(module, GATEWAY_EVENT, secret=OLD).status == 401
    assert reads(name) >= before + 1
    assert accepted(send_gateway(module, GATEWAY_EVENT, secret=NEW))


def test_a_failed_read_keeps_the_last_value_and_logs_no_value(load_function, tables, vault, clock, capsys, caplog):
    module, name = gateway(load_function, vault)
    vault.delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True)  # unreadable from now on
    clock.now += 301
    with captured_output(capsys, caplog, level=logging.DEBUG) as output:
        assert accepted(send_gateway(module, GATEWAY_EVENT, secret=OLD))
        before = reads(name)
        assert accepted(send_gateway(module, GATEWAY_EVENT, secret=OLD))
        assert reads(name) == before  # not tried again before RETRY_SECONDS
        logged = output.text
    assert "could not read a secret again" in logged and name in logged
    assert OLD not in logged and NEW not in logged


def test_tokens_signed_with_a_rotated_jwt_key_are_accepted_and_the_old_key_expires(load_function, tables, vault, clock):
    name = stored(vault, OLD, "JWT_SECRET")
    module = load_function("list_payments", JWT_SECRET="", JWT_SECRET_SECRET_ID=name)

    def listing(secret: str) -> int:
        token = make_token(1, secret=secret)
        return call(module, "GET", "/orders/api/payments/", headers={"authorization": f"Bearer {token}"}).status

    old_token = make_token(1, secret=OLD)
    assert call(module, "GET", "/orders/api/payments/", headers={"authorization": f"Bearer {old_token}"}).status == 200
    vault.put_secret_value(SecretId=name, SecretString=NEW)  # Django signs with the new key from now on
    assert listing(NEW) == 200  # read again at the first refusal
    clock.now += 301
    # The old key is gone: even a token verified with it before (and remembered) is refused.
    assert call(module, "GET", "/orders/api/payments/", headers={"authorization": f"Bearer {old_token}"}).status == 401
    assert listing(NEW) == 200


def test_page_cursors_follow_the_rotated_key(load_function, tables, vault, clock, dynamodb):
    """A cursor minted by an environment that already has the new key verifies in one that read
    the old key (read again when it does not verify)."""
    from local import seed

    seed.apply(seed.load(seed.DEFAULT_SEED), dynamodb, tables)  # user 1: the spec's two payments
    name = stored(vault, OLD, "JWT_SECRET")
    env = {"JWT_SECRET": "", "JWT_SECRET_SECRET_ID": name}
    old_environment = load_function("list_payments", **env)
    vault.put_secret_value(SecretId=name, SecretString=NEW)
    new_environment = load_function("list_payments", **env)
    token = {"authorization": f"Bearer {make_token(1, secret=NEW)}"}

    first = call(new_environment, "GET", "/orders/api/payments/", query="page_size=1", headers=token)
    assert first.status == 200, first
    query = first.json["next"].split("?", 1)[1]
    second = call(old_environment, "GET", "/orders/api/payments/", query=query, headers=token)
    assert second.status == 200, second


def test_a_rolled_stripe_key_is_used_without_a_deploy(shop, vault, clock):
    """Stripe rolls the key; the old one expires at once (a leak): the checkout reads the key again
    when Stripe refuses it, and the same request succeeds."""
    name = stored(vault, STRIPE_KEY, "STRIPE_SECRET_KEY")
    module = shop.load("create_stripe_order", **shop.stripe_env(STRIPE_SECRET_KEY="", STRIPE_SECRET_KEY_SECRET_ID=name))
    assert shop.checkout(1, {"shipping_address": 1}, module=module).status == 200
    rolled = "sk_test_rolled_" + "r" * 24
    shop.sandbox.api_key = rolled
    vault.put_secret_value(SecretId=name, SecretString=rolled)
    shop.seed({"carts": [{"user": 2, "items": [{"variant": 1, "quantity": 1}]}]})

    reply = shop.checkout(2, {"shipping_address": 2}, module=module)

    assert reply.status == 200, reply
    assert json.loads(reply.text)["url"]


def test_a_stripe_webhook_signed_with_a_rolled_secret_is_accepted(load_function, tables, vault, clock):
    name = stored(vault, "whsec_" + "o" * 24, "STRIPE_WEBHOOK_SECRET")
    module = load_function("stripe_webhook", STRIPE_WEBHOOK_SECRET="", STRIPE_WEBHOOK_SECRET_SECRET_ID=name)
    event = {"id": "evt_rotation", "type": "customer.created", "data": {"object": {"id": "cus_1"}}}
    vault.put_secret_value(SecretId=name, SecretString="whsec_" + "n" * 24)
    assert send_stripe(module, event, secret="whsec_" + "n" * 24).status == 200
    assert send_stripe(module, event, secret="whsec_" + "x" * 24).status == 400


def test_a_read_function_keeps_working_from_the_environment_without_secrets_manager(load_function, tables):
    """Locally (and under sam local) secrets come from the environment: nothing is ever read."""
    module = load_function("list_payments")
    assert call(module, "GET", "/orders/api/payments/", headers=auth(1)).status == 200
