"""A typed client generated from openapi.json by openapi-python-client, used against `python -m local`.

What a front-end team would do with the contract: generate a client (offline: the generator reads the
committed file, runs no formatter, fetches nothing), then list the caller's payments, page through
them by following `next` exactly as given, fetch one, and start a Stripe checkout, all through the
generated functions and models (typed: datetimes, enums, the error shapes). If the document or the
API drift apart so that the generated client no longer works, these tests fail.
"""

from __future__ import annotations

import datetime
import importlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from support import ROOT

pytestmark = pytest.mark.e2e

PACKAGE = "halum_payments_client"
USER = 1  # the demo user: the spec's two payments (read only here)
BUYER = 31  # E2E_CARTS: a cart and an address of its own


def generate(into: Path) -> subprocess.CompletedProcess[str]:
    config = into / "config.json"
    # No post hooks: the generated code is used as generated (and no formatter has to be found on PATH).
    config.write_text(json.dumps({"package_name_override": PACKAGE, "post_hooks": []}))
    return subprocess.run(
        [sys.executable, "-m", "openapi_python_client", "generate", "--path", str(ROOT / "openapi.json"),
         "--meta", "none", "--output-path", str(into / PACKAGE), "--config", str(config)],
        cwd=into, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    into = tmp_path_factory.mktemp("generated-client")
    result = generate(into)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Warning" not in result.stdout + result.stderr, result.stdout + result.stderr  # nothing skipped
    sys.path.insert(0, str(into))
    try:
        modules = {
            name: importlib.import_module(f"{PACKAGE}.{name}")
            for name in (
                "client",
                "models",
                "api.payments.list_payments",
                "api.payments.get_payment",
                "api.checkout.create_stripe_order",
            )
        }
        yield SimpleNamespace(**{name.rsplit(".", 1)[-1]: module for name, module in modules.items()})
    finally:
        sys.path.remove(str(into))
        for name in [name for name in sys.modules if name == PACKAGE or name.startswith(PACKAGE + ".")]:
            del sys.modules[name]


def as_sent(payment: Any) -> dict[str, Any]:
    """A generated Payment as the API sent it (the model writes datetimes back as `+00:00`, the API as `Z`)."""
    data: dict[str, Any] = payment.to_dict()
    for name in ("created_at", "updated_at"):
        data[name] = getattr(payment, name).astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return data


def client(generated: SimpleNamespace, server: Any, user: int, **claims: Any) -> Any:
    return generated.client.AuthenticatedClient(base_url=server.url, token=server.token(user, **claims))


def test_the_generated_client_lists_pages_by_following_next_and_fetches_one(generated, stripe_server):
    api = client(generated, stripe_server, USER)
    models = generated.models
    first = generated.list_payments.sync(client=api, page_size=1, ordering=models.PaymentOrdering.ID)
    assert isinstance(first, models.PaymentPage), first
    everything = stripe_server.payments(USER)  # the same list over plain HTTP, in one page
    assert first.count == len(everything) >= 2

    seen, page = list(first.results), first
    while page.next_ is not None:  # (`next_`: the generator avoids the builtin) followed exactly as given
        answer = api.get_httpx_client().get(page.next_)
        assert answer.status_code == 200, answer.text
        page = models.PaymentPage.from_dict(answer.json())
        assert page.previous is not None
        seen += page.results
    assert [payment.id for payment in seen] == [payment["id"] for payment in everything]

    payment = seen[0]
    assert isinstance(payment.created_at, datetime.datetime) and payment.created_at.tzinfo is not None
    assert isinstance(payment.method, models.PaymentMethod) and isinstance(payment.status, models.PaymentStatus)
    assert as_sent(payment) == everything[0]  # nothing lost or reshaped on the way through the models

    fetched = generated.get_payment.sync(client=api, id=str(payment.id))
    assert isinstance(fetched, models.Payment), fetched
    assert as_sent(fetched) == everything[0]


def test_the_generated_client_starts_a_checkout(generated, stripe_server):
    api = client(generated, stripe_server, BUYER)
    models = generated.models
    started = generated.create_stripe_order.sync(
        client=api, body=models.CheckoutRequest(shipping_address=BUYER), idempotency_key="generated-client-1"
    )
    assert isinstance(started, models.CheckoutSessionOut), started
    assert started.id.startswith("cs_") and started.url.startswith("http")
    assert stripe_server.sandbox.session(started.id)["status"] == "open"

    page = generated.list_payments.sync(client=api, method=models.PaymentMethod.STRIPE)
    assert isinstance(page, models.PaymentPage), page
    (payment,) = page.results
    assert (payment.status, payment.amount, payment.transaction_id) == (models.PaymentStatus.PENDING, "16.50", None)


def test_the_generated_client_reads_the_documented_errors(generated, stripe_server):
    models = generated.models
    refused = generated.list_payments.sync(client=client(generated, stripe_server, USER), page_size=0)
    assert isinstance(refused, models.InvalidRequest), refused
    assert refused.detail == "page_size: Ensure this value is greater than or equal to 1."
    assert refused.additional_properties == {"page_size": ["Ensure this value is greater than or equal to 1."]}

    expired = client(generated, stripe_server, USER, exp=1)
    unauthorized = generated.get_payment.sync(client=expired, id="1")
    assert isinstance(unauthorized, models.AuthenticationFailed), unauthorized
    assert unauthorized.code == "token_not_valid"
    assert [message.message for message in unauthorized.messages] == ["Token is expired"]

    missing = generated.get_payment.sync(client=client(generated, stripe_server, USER), id="999999")
    assert isinstance(missing, models.Error) and missing.detail == "Not found."
