"""Smoke test of a deployed payments API: is every part wired, configured and answering as specified?

    python scripts/smoke.py --api-url https://abc123.execute-api.<region>.amazonaws.com \
        [--stripe-webhook-url https://<id>.lambda-url.<region>.on.aws/orders/api/stripe-webhook/]
    (the token: SMOKE_TOKEN=<an access token of a test user>; or --token)

`make smoke URL=... TOKEN=... [STRIPE_WEBHOOK_URL=...]` runs it. It changes nothing: it reads the
caller's payments, and sends requests every function must refuse (no token, a forged token, a bad
query, unsigned webhooks, a checkout body that cannot be valid), so that each function runs, with
its secrets and tables, without creating an order or moving money. Standard library only; the token
is never printed. Exit status 0 when every check passed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

PAYMENTS = "/orders/api/payments/"
PAYMENT_FIELDS = {"id", "order", "user", "amount", "method", "status", "transaction_id", "created_at", "updated_at"}
NOT_CONFIGURED = 503  # a function whose secret is missing refuses with 503 (see docs/deploying.md)


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


def request(method: str, url: str, headers: dict[str, str] | None = None, body: bytes | None = None) -> Answer:
    if urlsplit(url).scheme not in ("http", "https"):
        raise ValueError(f"not an http(s) URL: {url}")
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})  # noqa: S310 - checked above
    try:
        with urllib.request.urlopen(req, timeout=30) as response:  # noqa: S310
            return Answer(response.status, {k.lower(): v for k, v in response.headers.items()}, response.read())
    except urllib.error.HTTPError as error:
        return Answer(error.code, {k.lower(): v for k, v in error.headers.items()}, error.read())


class Smoke:
    def __init__(self, api_url: str, token: str, stripe_webhook_url: str | None) -> None:
        self.api = api_url.rstrip("/")
        self.auth = {"Authorization": f"Bearer {token}"}
        self.forged = {"Authorization": f"Bearer {token[:-4]}{'AAAA' if not token.endswith('AAAA') else 'BBBB'}"}
        self.stripe_webhook_url = stripe_webhook_url
        self.failures: list[str] = []

    def check(self, name: str, test: Callable[[], str | None]) -> None:
        try:
            problem = test()
        except Exception as exc:  # noqa: BLE001 - reported as this check's failure
            problem = f"{type(exc).__name__}: {exc}"
        print(f"{'FAIL' if problem else 'ok  '}  {name}{': ' + problem if problem else ''}")
        if problem:
            self.failures.append(name)

    # ------------------------------------------------------------------ the checks
    def list_payments(self) -> str | None:
        answer = request("GET", self.api + PAYMENTS, self.auth)
        if answer.status == 401:
            return f"401 {answer.body[:200]!r}: the token is refused (signed with the stack's JWT secret? expired?)"
        if answer.status != 200:
            return f"{answer.status} {answer.body[:200]!r}"
        page = answer.json
        spec = {"count", "next", "previous", "results"}  # DRF's page; the typed cursors beside it (issue 20)
        if not spec <= set(page) <= spec | {"next_cursor", "previous_cursor"} or not isinstance(page["results"], list):
            return f"not a page of payments: {sorted(page)}"
        wrong = [row for row in page["results"] if set(row) != PAYMENT_FIELDS]
        return f"payments without the spec's fields: {wrong[:1]}" if wrong else None

    def paging(self) -> str | None:
        first = request("GET", self.api + PAYMENTS + "?page_size=1", self.auth)
        if first.status != 200 or len(first.json["results"]) > 1:
            return f"{first.status} {first.body[:200]!r}"
        if first.json["next"] is None:
            return None  # one payment or none: nothing to follow
        following = request("GET", first.json["next"], self.auth)
        return None if following.status == 200 else f"next page: {following.status} {following.body[:200]!r}"

    def refuses_without_a_token(self) -> str | None:
        answer = request("GET", self.api + PAYMENTS)
        if answer.status != 401 or "www-authenticate" not in answer.headers:
            return f"{answer.status} {answer.body[:200]!r}"
        return None if answer.json == {"detail": "Authentication credentials were not provided."} else "wrong body"

    def refuses_a_forged_token(self) -> str | None:
        answer = request("GET", self.api + PAYMENTS, self.forged)
        return None if answer.status == 401 and answer.json.get("code") == "token_not_valid" else f"{answer.status}"

    def someone_elses_or_missing_payment_is_404(self) -> str | None:
        answer = request("GET", self.api + PAYMENTS + "999999999999/", self.auth)
        return None if (answer.status, answer.json) == (404, {"detail": "Not found."}) else f"{answer.status}"

    def bad_query_is_400(self) -> str | None:
        answer = request("GET", self.api + PAYMENTS + "?page_size=0", self.auth)
        return None if answer.status == 400 else f"{answer.status} {answer.body[:200]!r}"

    def without_trailing_slash(self) -> str | None:
        answer = request("GET", self.api + PAYMENTS.rstrip("/"), self.auth)
        return None if answer.status == 200 else f"{answer.status}"

    def checkout_is_configured(self) -> str | None:
        """An empty body is refused (400) by a configured checkout, before anything is created."""
        answer = request("POST", self.api + "/orders/api/create-stripe-order/", self._json(), b"{}")
        if answer.status == NOT_CONFIGURED:
            return "503: the Stripe secret key is not configured (stripe-secret-key in Secrets Manager)"
        return None if answer.status == 400 else f"{answer.status} {answer.body[:200]!r}"

    def cash_on_delivery_is_configured(self) -> str | None:
        answer = request("POST", self.api + "/orders/api/create-cod/", self._json(), b"{}")
        return None if answer.status == 400 else f"{answer.status} {answer.body[:200]!r}"

    def gateway_webhook_is_configured(self) -> str | None:
        """An unsigned event is refused with the gateway contract's 401 once its secret is set."""
        answer = request("POST", self.api + "/orders/api/payment-webhook/", {"Content-Type": "application/json"}, b"{}")
        if answer.status == NOT_CONFIGURED:
            return "503: the gateway's webhook secret is not configured (payment-webhook-secret)"
        return None if answer.status == 401 else f"{answer.status} {answer.body[:200]!r}"

    def stripe_webhook_is_configured(self) -> str | None:
        """Stripe's endpoint refuses an unsigned event with 400 (Stripe's convention) once configured."""
        assert self.stripe_webhook_url
        answer = request(
            "POST", self.stripe_webhook_url, {"Content-Type": "application/json", "Stripe-Signature": "t=1,v1=0"}, b"{}"
        )
        if answer.status == NOT_CONFIGURED:
            return "503: the Stripe webhook secret is not configured (stripe-webhook-secret)"
        return None if answer.status == 400 else f"{answer.status} {answer.body[:200]!r}"

    def _json(self) -> dict[str, str]:
        return {**self.auth, "Content-Type": "application/json"}

    def run(self) -> int:
        for name, test in (
            ("the caller's payments are listed (200, the spec's page and fields)", self.list_payments),
            ("paging follows `next`", self.paging),
            ("no token: 401 with WWW-Authenticate", self.refuses_without_a_token),
            ("a forged token: 401 token_not_valid", self.refuses_a_forged_token),
            ("a payment that is not the caller's: 404", self.someone_elses_or_missing_payment_is_404),
            ("a bad query: 400", self.bad_query_is_400),
            ("the path without its trailing slash", self.without_trailing_slash),
            ("Stripe checkout configured (an empty body: 400)", self.checkout_is_configured),
            ("cash on delivery answers (an empty body: 400)", self.cash_on_delivery_is_configured),
            ("gateway webhook configured (unsigned: 401)", self.gateway_webhook_is_configured),
        ):
            self.check(name, test)
        if self.stripe_webhook_url:
            self.check("Stripe webhook URL configured (unsigned: 400)", self.stripe_webhook_is_configured)
        print(f"{len(self.failures)} check(s) failed" if self.failures else "all checks passed")
        return 1 if self.failures else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--api-url", required=True, help="the stack's ApiUrl output")
    parser.add_argument("--stripe-webhook-url", help="the stack's StripeWebhookUrl output")
    parser.add_argument("--token", help="an access token (default: $SMOKE_TOKEN)")
    args = parser.parse_args(argv)
    token = (args.token or os.environ.get("SMOKE_TOKEN", "")).strip().removeprefix("Authorization: ").strip()
    token = token.removeprefix("Bearer ").strip()
    if not token:
        parser.error("an access token is needed: --token or SMOKE_TOKEN")
    return Smoke(args.api_url, token, args.stripe_webhook_url).run()


if __name__ == "__main__":
    sys.exit(main())
