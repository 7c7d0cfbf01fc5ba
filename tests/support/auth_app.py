"""A minimal function built from the layer exactly as the real ones are (create_api + the
`authenticated` precondition + Authenticator): the auth rules tested without any table."""

from __future__ import annotations

import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Annotated, Any

from aws_lambda_powertools.event_handler.openapi.params import Query

from halum_payments.auth import Authenticator
from halum_payments.config import Settings
from halum_payments.http import authenticated, create_api, routed
from support import JWT_SECRET

TABLE_ENV = {
    name: f"unit-{name.lower()}"
    for name in (
        "PAYMENTS_TABLE",
        "PAYMENT_AUDIT_TABLE",
        "ORDERS_TABLE",
        "PRODUCT_VARIANTS_TABLE",
        "SHIPPING_ADDRESSES_TABLE",
        "CARTS_TABLE",
        "COUNTERS_TABLE",
        "GATEWAY_TRANSACTIONS_TABLE",
        "IDEMPOTENCY_TABLE",
    )
}


def settings_from(**env: str) -> Settings:
    return Settings.from_env({**TABLE_ENV, "JWT_SECRET": JWT_SECRET, **env})


def whoami_function(settings: Settings, clock: Callable[[], float] = time.time) -> Any:
    """GET /whoami/ answers {"user": <id>}; `?n=` must be an int in 1..10 (to see auth win over validation)."""
    app: Any = create_api(preconditions=[authenticated(Authenticator(settings, clock))])

    @routed(app.get, "/whoami/")
    def whoami(n: Annotated[int, Query(ge=1, le=10)] = 1) -> dict[str, Any]:
        return {"user": app.context["user_id"], "n": n}

    return SimpleNamespace(lambda_handler=app.resolve)
