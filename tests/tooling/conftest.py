"""Fixtures of the tooling's tests (the local server, the Stripe sandbox, the build, the scripts)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.stripe_http import KEY, SECRET

from local.stripe_sandbox import StripeSandbox


@pytest.fixture
def sandbox() -> Iterator[StripeSandbox]:
    """The Stripe sandbox on its own, over plain HTTP (its webhook deliveries go nowhere)."""
    with StripeSandbox(api_key=KEY, webhook_secret=SECRET, quiet=True) as box:
        yield box
