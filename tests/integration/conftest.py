"""The integration suite records every AWS call each function makes (tests/support/iam.py):
`load_function` attributes a function's cold start and every call of its handler to its logical
id, and the IAM verdicts (test_iam_conformance.py) run after every other test of the session."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from support.checkout import STRIPE_KEY, Shop, default_seed
from support.dynamo_calls import scans_forbidden
from support.iam import RECORDER, attributed_to
from support.tables import Store

from local import seed
from local.seed import DEFAULT_SEED
from local.stripe_sandbox import StripeSandbox
from local.template import Template

RECORDER.install()  # at import, before any test creates an AWS client

LOGICAL_IDS = {spec.code_uri.name: spec.logical_id for spec in Template().functions()}
VERDICTS = "test_iam_conformance.py::test_verdict"


@pytest.fixture
def load_function(load_function: Callable[..., ModuleType]) -> Callable[..., ModuleType]:
    """The root fixture, with every AWS call of the function's cold start and handler attributed to it."""

    def load(name: str, **env: str) -> ModuleType:
        function = LOGICAL_IDS[name]
        with attributed_to(function):
            module = load_function(name, **env)
        handler = module.lambda_handler

        @functools.wraps(handler)
        def attributed(event: Any, context: Any) -> Any:
            with attributed_to(function):
                return handler(event, context)

        module.lambda_handler = attributed
        return module

    return load


@pytest.fixture
def store(tables: dict[str, str], dynamodb: Any) -> Store:
    """Fresh tables holding the demo seed (local/seed.json), and a reader of them."""
    seed.apply(seed.load(DEFAULT_SEED), dynamodb, tables)
    return Store(dynamodb, tables)


@pytest.fixture
def no_scan(dynamodb: Any) -> Iterator[None]:
    """No Scan during the test (`pytestmark = pytest.mark.usefixtures("no_scan")`): requests are served without."""
    with scans_forbidden(dynamodb) as scans:
        yield
    assert scans == [], "a Scan was issued"


@pytest.fixture
def fast_stripe_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """stripe-python waits 0.5-5 s between its retries; the retry logic itself is unchanged."""
    import stripe

    monkeypatch.setattr(stripe.HTTPClient, "INITIAL_DELAY", 0.01)
    monkeypatch.setattr(stripe.HTTPClient, "MAX_DELAY", 0.02)


@pytest.fixture
def sandbox() -> Iterator[StripeSandbox]:
    """Stripe, as the checkout tests see it (modules with other needs define their own)."""
    box = StripeSandbox(api_key=STRIPE_KEY, quiet=True)
    box.start()
    yield box
    box.stop()


@pytest.fixture
def shop(
    dynamodb: Any, tables: dict[str, str], sandbox: StripeSandbox, load_function: Any, fast_stripe_retries: None
) -> Shop:
    """The default seed (users 1 and 2, variants 1..5, carts, orders 1..3, payments 1..3)."""
    world = Shop(dynamodb, tables, sandbox, load_function)
    world.seed(default_seed())
    return world


@pytest.fixture
def hook(shop: Shop) -> Any:
    """The Stripe webhook, talking to the shop's Stripe sandbox."""
    return shop.load("stripe_webhook", STRIPE_SECRET_KEY=STRIPE_KEY, STRIPE_API_BASE=shop.sandbox.base_url)


@pytest.fixture
def gateway(shop: Shop) -> Any:
    """The generic gateway's webhook."""
    return shop.load("payment_webhook", STRIPE_SECRET_KEY=STRIPE_KEY, STRIPE_API_BASE=shop.sandbox.base_url)


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """The verdicts judge every call recorded in the session: they run last."""
    verdicts = [item for item in items if VERDICTS in item.nodeid]
    items[:] = [item for item in items if VERDICTS not in item.nodeid] + verdicts


def pytest_deselected(items: list[pytest.Item]) -> None:
    if any(_is_integration(item) for item in items):
        RECORDER.whole_suite = False


def pytest_collection_finish(session: pytest.Session) -> None:
    """Least privilege is judged only when every integration test runs (`make test`, `pytest tests/integration`)."""
    here = Path(__file__).parent
    collected = {Path(str(item.path)).name for item in session.items if _is_integration(item)}
    on_disk = {path.name for path in here.glob("test_*.py")}
    RECORDER.whole_suite = RECORDER.whole_suite is not False and collected == on_disk


def _is_integration(item: pytest.Item) -> bool:
    return Path(str(item.path)).parent == Path(__file__).parent
