"""The Stripe checkout as a customer meets it: `make run`'s sandbox in a real headless Chromium.

Debian's chromium driven by playwright (never `playwright install`: no browser downloads). A
missing browser or driver fails the tests with what to install; they are never skipped.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from local.pages import CANCELLED_PATH, SUCCESS_PATH

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PLAYWRIGHT_PIN = "playwright==1.65.2"
CREATE_COD = "/orders/api/create-cod/"
TIMEOUT_MS = 20_000  # a cold function (create-stripe-order, the webhook) may start while we wait


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail(f"playwright is missing: `.venv/bin/pip install {PLAYWRIGHT_PIN}` (make test installs it)")
    if not CHROMIUM.exists():
        found = shutil.which("chromium")
        hint = f" ({found} is another one)" if found else ""
        pytest.fail(f"Debian's chromium is missing at {CHROMIUM}{hint}: `apt-get install -y chromium` as root")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    yield page
    context.close()


def order_of(server: Any, session_id: str) -> int:
    """The order our checkout wrote into the session's metadata (as Stripe keeps it)."""
    return int(server.sandbox.session(session_id)["metadata"]["order_id"])


def checkout_lines(page: Any) -> list[tuple[str, str, str]]:
    rows = page.locator("tr.line")
    return [
        (row.locator(".name").inner_text(), row.locator(".quantity").inner_text(), row.locator(".unit").inner_text())
        for row in rows.all()
    ]


def test_the_banners_demo_pays_in_the_browser(stripe_server, page):
    """What the banner tells a developer to do: its curl, open the url, press Pay, its other curl."""
    token = stripe_server.banner(r"^  TOKEN=(\S+)$").group(1)
    create, listing = (
        stripe_server.banner(rf"^  (curl .*{re.escape(path)} .*)$").group(1)
        for path in ("/orders/api/create-stripe-order/", "/orders/api/payments/")
    )
    reply = stripe_server.run_curl(create, TOKEN=token)
    assert reply.status == 200, reply
    session_id, checkout_url = reply.json["id"], reply.json["url"]
    order = order_of(stripe_server, session_id)

    page.goto(checkout_url)
    # The demo user's seeded cart: 2 x Rui Fish 1kg at 799.00, 1 x Miniket Rice 5kg at 425.50.
    assert checkout_lines(page) == [
        ("Rui Fish 1kg (RUI-1KG)", "2", "799.00 USD"),
        ("Miniket Rice 5kg (RICE-5KG)", "1", "425.50 USD"),
    ]
    assert page.inner_text("#total") == "2,023.50 USD"
    page.click("#pay")
    page.wait_for_url(f"{stripe_server.url}{SUCCESS_PATH}?session_id={session_id}")
    assert page.inner_text("#summary").startswith(f"Payment received, order {order}")

    reply = stripe_server.run_curl(listing, TOKEN=token)
    assert reply.status == 200, reply
    (payment,) = [p for p in reply.json["results"] if p["order"] == order]
    assert (payment["method"], payment["status"], payment["amount"]) == ("stripe", "completed", "2023.50")
    assert payment["transaction_id"].startswith("pi_")
    assert payment["transaction_id"] == stripe_server.sandbox.session(session_id)["payment_intent"]


def test_cancel_fails_the_payment_and_gives_the_stock_back(stripe_server, page):
    # User 12's cart takes both of the 2 crabs; user 13 wants the same 2, cash on delivery.
    started = stripe_server.checkout(user=12, address=12)
    order = order_of(stripe_server, started["id"])
    sold_out = stripe_server.post_json(CREATE_COD, {"shipping_address": 13}, user=13)
    assert sold_out.status == 409 and "stock" in sold_out.json["detail"], sold_out

    page.goto(started["url"])
    assert checkout_lines(page) == [("Mud Crab 1kg (E2E-CRAB)", "2", "30.00 USD")]
    page.click("#cancel")
    page.wait_for_url(f"{stripe_server.url}{CANCELLED_PATH}")
    assert page.inner_text("#summary") == "Checkout cancelled: nothing was charged."

    payment = stripe_server.payment_of_order(12, order)
    assert (payment["status"], payment["transaction_id"]) == ("failed", None)
    bought = stripe_server.post_json(CREATE_COD, {"shipping_address": 13}, user=13)
    assert bought.status == 201, bought  # the crabs are back in stock
    assert bought.json["payment"]["status"] == "pending"


def test_a_delayed_payment_is_processing_until_the_bank_confirms(stripe_server, page):
    started = stripe_server.checkout(user=14, address=14)
    order = order_of(stripe_server, started["id"])

    page.goto(started["url"])
    assert page.inner_text("#total") == "29.00 USD"  # 12.50 + 2 x 8.25
    page.click("#pay-delayed")
    page.wait_for_selector('#status[data-status="processing"]')
    payment = stripe_server.payment_of_order(14, order)
    assert (payment["status"], payment["transaction_id"]) == ("processing", None)

    page.click("#bank-confirms")
    page.wait_for_url(f"{stripe_server.url}{SUCCESS_PATH}?session_id={started['id']}")
    assert page.inner_text("#summary").startswith(f"Payment received, order {order}")
    payment = stripe_server.payment_of_order(14, order)
    assert payment["status"] == "completed" and payment["transaction_id"].startswith("pi_")
