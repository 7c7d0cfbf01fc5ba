"""Small HTML pages the local server shows where the real site would: Stripe Checkout's return pages.

Locally, CHECKOUT_SUCCESS_URL / CHECKOUT_CANCEL_URL default to these (see `__main__.py`), so a
checkout paid in a browser lands somewhere that says what happened and how to see it in the API.
They are local-only routes: nothing here is deployed.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qs, quote

from local.routing import HttpResponse

SUCCESS_PATH = "/_local/checkout/success"
CANCELLED_PATH = "/_local/checkout/cancelled"
PAYMENTS_PATH = "/orders/api/payments/"

# Looks up a Checkout Session by id (the sandbox's record); None when unknown.
SessionLookup = Callable[[str], Mapping[str, Any] | None]


def success_url(base_url: str) -> str:
    # Stripe substitutes {CHECKOUT_SESSION_ID} when it redirects (the sandbox too).
    return f"{base_url}{SUCCESS_PATH}?session_id={{CHECKOUT_SESSION_ID}}"


def cancel_url(base_url: str) -> str:
    return f"{base_url}{CANCELLED_PATH}"


def success_page(query: str, base_url: str, lookup: SessionLookup | None, dashboard: str | None) -> HttpResponse:
    session_id = (parse_qs(query).get("session_id") or [""])[0]
    session = lookup(session_id) if lookup and session_id else None
    metadata = (session or {}).get("metadata") or {}
    order, payment = str(metadata.get("order_id", "")), str(metadata.get("payment_id", ""))
    if order:
        summary = f'Payment received, order <span id="order">{html.escape(order)}</span>'
        if payment:
            summary += f' (payment <span id="payment">{html.escape(payment)}</span>)'
    else:
        summary = "Payment received"
    detail = f"{PAYMENTS_PATH}{quote(payment)}/" if payment.isdigit() else None
    body = (
        f'<p id="summary">{summary}.</p>'
        f"<p>Stripe Checkout Session <code>{html.escape(session_id or 'unknown')}</code>. The sandbox delivers "
        "the webhook before it sends you here, so the payment is already recorded (real Stripe's webhook may "
        "arrive a moment later).</p>" + _api_links(base_url, detail) + _dashboard_link(dashboard)
    )
    return _page("Payment received", body)


def cancelled_page(base_url: str, dashboard: str | None) -> HttpResponse:
    body = (
        '<p id="summary">Checkout cancelled: nothing was charged.</p>'
        "<p>The order is cancelled and its items are back in stock.</p>"
        + _api_links(base_url, None)
        + _dashboard_link(dashboard)
    )
    return _page("Checkout cancelled", body)


def _api_links(base_url: str, detail: str | None) -> str:
    # The API wants the Authorization header, which a plain link cannot send: show the curl too.
    paths = [PAYMENTS_PATH] + ([detail] if detail else [])
    items = "".join(
        f'<li><a href="{html.escape(path)}">{html.escape(path)}</a>: '
        f'<code>curl -s {html.escape(base_url + path)} -H "Authorization: Bearer $TOKEN"</code></li>'
        for path in paths
    )
    return f"<h2>See it in the API</h2><ul>{items}</ul>"


def _dashboard_link(dashboard: str | None) -> str:
    if not dashboard:
        return ""
    url = html.escape(dashboard)
    return f'<p><a href="{url}">Stripe sandbox dashboard</a>: sessions, webhook deliveries, refunds.</p>'


def _page(title: str, body: str) -> HttpResponse:
    page = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)} · Halum Hut (local)</title><style>{_CSS}</style></head>"
        f'<body><main><p class="badge">Halum Hut · local server</p><h1>{html.escape(title)}</h1>{body}'
        "</main></body></html>"
    )
    headers = [("Content-Type", "text/html; charset=utf-8"), ("Cache-Control", "no-store")]
    return HttpResponse(200, headers, page.encode())


_CSS = (
    "body{font-family:system-ui,sans-serif;background:#f4f7f6;color:#17302a;margin:0}"
    "main{max-width:44rem;margin:2rem auto;background:#fff;padding:1.5rem 2rem;border-radius:8px;"
    "box-shadow:0 2px 8px #0001}code{background:#eef2f1;padding:.1rem .3rem;border-radius:3px;word-break:break-all}"
    ".badge{display:inline-block;background:#c8ecd9;border-radius:4px;padding:.1rem .5rem;font-size:.8rem}"
)
