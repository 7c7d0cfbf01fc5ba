"""Configuration: one pydantic model, validated once per cold start from the environment.

Every setting is read from the environment variable of the same name in upper case
(`payments_table` <- `PAYMENTS_TABLE`). Locally secrets are plain variables; in AWS the
template passes `<NAME>_SECRET_ID` (a Secrets Manager secret name)
and the value is fetched once at cold start (see `secrets.py`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

from .errors import ConfigError

SECRET_FIELDS = ("jwt_secret", "cursor_secret", "stripe_secret_key", "stripe_webhook_secret", "payment_webhook_secret")

_SYMMETRIC = {"HS256", "HS384", "HS512"}
_ASYMMETRIC = {"RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "PS384", "PS512"}


def _csv(value: Any) -> Any:
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return value


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", str_strip_whitespace=True)

    # Tables (names differ per stack; all required so a wiring mistake fails at cold start).
    payments_table: str
    payment_audit_table: str
    orders_table: str
    product_variants_table: str
    shipping_addresses_table: str
    carts_table: str
    counters_table: str
    gateway_transactions_table: str
    idempotency_table: str

    # Caller authentication (tokens minted by the platform's Django backend).
    jwt_secret: SecretStr | None = None
    jwt_algorithms: tuple[str, ...] = ("HS256",)
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    jwt_jwks_url: str | None = None
    jwt_leeway_seconds: int = Field(default=0, ge=0, le=300)
    cursor_secret: SecretStr | None = None

    # Payment gateways.
    stripe_secret_key: SecretStr | None = None
    stripe_api_base: str | None = None
    stripe_timeout_seconds: float = Field(default=8.0, gt=0, le=25)
    stripe_max_network_retries: int = Field(default=2, ge=0, le=5)
    stripe_webhook_secret: tuple[SecretStr, ...] = ()
    payment_webhook_secret: tuple[SecretStr, ...] = ()
    # Optional: refuse gateway events whose `timestamp` is further than this from now (off by
    # default: the spec's own example is from 2023).
    payment_webhook_max_age_seconds: int | None = Field(default=None, ge=60)

    # Checkout.
    currency: str = "usd"
    checkout_success_url: str = "http://127.0.0.1:3000/checkout/success?session_id={CHECKOUT_SESSION_ID}"
    checkout_cancel_url: str = "http://127.0.0.1:3000/checkout/cancelled"
    checkout_expires_minutes: int = Field(default=30, ge=30, le=1440)  # Stripe's own bounds
    # The Stripe checkout function's time limit (its template Timeout): how long a checkout may
    # still be opening the session of a payment it created.
    checkout_timeout_seconds: int = Field(default=29, ge=1, le=900)

    # Reconciliation sweeper.
    reconcile_after_minutes: int | None = Field(default=None, ge=0)
    reconcile_batch_size: int = Field(default=100, ge=1, le=1000)

    _csv_fields = field_validator("jwt_algorithms", "stripe_webhook_secret", "payment_webhook_secret", mode="before")(
        _csv
    )

    @field_validator("currency")
    @classmethod
    def _currency(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z]{3}", value):
            raise ValueError("must be an ISO 4217 code such as usd")
        return value.lower()

    @field_validator("jwt_algorithms")
    @classmethod
    def _algorithms(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [alg for alg in value if alg not in _SYMMETRIC | _ASYMMETRIC]
        if unknown or not value:
            raise ValueError(f"unsupported algorithm(s) {unknown or value}; 'none' is never accepted")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        algorithms = set(self.jwt_algorithms)
        if algorithms & _SYMMETRIC and algorithms & _ASYMMETRIC:
            # Mixing families is how HS/RS key-confusion attacks start.
            raise ValueError("JWT_ALGORITHMS must not mix HMAC and public-key algorithms")
        if "{CHECKOUT_SESSION_ID}" not in self.checkout_success_url:
            raise ValueError("CHECKOUT_SUCCESS_URL must contain the {CHECKOUT_SESSION_ID} placeholder")
        return self

    @property
    def jwt_is_asymmetric(self) -> bool:
        return bool(set(self.jwt_algorithms) & _ASYMMETRIC)

    @property
    def stripe_configured(self) -> bool:
        return self.stripe_secret_key is not None and bool(self.stripe_secret_key.get_secret_value())

    @property
    def reconcile_after(self) -> int:
        """Minutes after which an open Stripe payment is checked against Stripe."""
        if self.reconcile_after_minutes is None:
            return self.checkout_expires_minutes + 30
        return self.reconcile_after_minutes

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        environ = os.environ if environ is None else environ
        raw: dict[str, Any] = {}
        for name in cls.model_fields:
            value = environ.get(name.upper())
            if value is not None and value.strip() != "":
                raw[name] = value
        raw.update(_resolve_secret_references(environ, missing=[n for n in SECRET_FIELDS if n not in raw]))
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']).upper() or 'settings'}: {err['msg']}" for err in exc.errors()
            )
            raise ConfigError(f"Invalid configuration: {problems}") from None


def _resolve_secret_references(environ: Mapping[str, str], missing: list[str]) -> dict[str, str]:
    references = {name: environ.get(f"{name.upper()}_SECRET_ID", "").strip() for name in missing}
    references = {name: ref for name, ref in references.items() if ref}
    if not references:
        return {}
    from .secrets import fetch_secrets  # AWS only: keeps the parameters utility out of local cold starts

    return fetch_secrets(references)


_settings: Settings | None = None


def get_settings() -> Settings:
    """The process-wide settings, validated on first use (cold start)."""
    global _settings  # noqa: PLW0603 - one validated settings object per process (cold start)
    if _settings is None:
        _settings = Settings.from_env()
    return _settings
