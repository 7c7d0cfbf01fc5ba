"""Configuration: one pydantic model, validated once per cold start from the environment.

Every setting is read from the environment variable of the same name in upper case
(`payments_table` <- `PAYMENTS_TABLE`). Locally secrets are plain variables; in AWS the
template passes `<NAME>_SECRET_ID` (a Secrets Manager secret name), the value is fetched at cold
start and read again as `secrets.py` says (rotation without a deploy): what reads a secret at
request time asks `settings.secret(name)` for it, not the field.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from .errors import ConfigError

if TYPE_CHECKING:
    from .secrets import Reader, RotatingSecret, Secret

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

    # Domain events (PublishEventsFunction): the EventBridge bus they go to.
    event_bus_name: str | None = None

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

    # Secrets read from Secrets Manager are read again once this old (secrets.py).
    secrets_max_age_seconds: int = Field(default=300, ge=10, le=3600)
    _rotating: dict[str, RotatingSecret] = PrivateAttr(default_factory=dict)

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

    def secret(self, name: str) -> Secret | None:
        """The secret setting `name` as it is now: read again after a rotation when it came from
        Secrets Manager, fixed when it came from the environment; None when not configured."""
        from .secrets import Secret

        if name in self._rotating:
            return self._rotating[name]
        value = getattr(self, name)
        if isinstance(value, tuple):
            text = ",".join(part.get_secret_value() for part in value)
        else:
            text = value.get_secret_value() if value is not None else ""
        return Secret(text) if text else None

    @property
    def reconcile_after(self) -> int:
        """Minutes after which an open Stripe payment is checked against Stripe."""
        if self.reconcile_after_minutes is None:
            return self.checkout_expires_minutes + 30
        return self.reconcile_after_minutes

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, read_secret: Reader | None = None) -> Settings:
        """`read_secret` reads a secret that the environment names (`<NAME>_SECRET_ID`) from
        Secrets Manager: the composition root passes the repository's (wiring.settings)."""
        environ = os.environ if environ is None else environ
        raw: dict[str, Any] = {}
        for name in cls.model_fields:
            value = environ.get(name.upper())
            if value is not None and value.strip() != "":
                raw[name] = value
        references = _secret_references(environ, missing=[n for n in SECRET_FIELDS if n not in raw])
        values = _fetch(references, read_secret)
        raw.update(values)
        try:
            settings = cls.model_validate(raw)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']).upper() or 'settings'}: {err['msg']}" for err in exc.errors()
            )
            raise ConfigError(f"Invalid configuration: {problems}") from None
        if references:
            from .secrets import rotating

            assert read_secret is not None  # _fetch refused otherwise
            settings._rotating = rotating(references, values, settings.secrets_max_age_seconds, read_secret)
        return settings


def _secret_references(environ: Mapping[str, str], missing: list[str]) -> dict[str, str]:
    references = {name: environ.get(f"{name.upper()}_SECRET_ID", "").strip() for name in missing}
    return {name: ref for name, ref in references.items() if ref}


def _fetch(references: dict[str, str], read_secret: Reader | None) -> dict[str, str]:
    if not references:
        return {}
    if read_secret is None:
        names = ", ".join(f"{name.upper()}_SECRET_ID" for name in references)
        raise ConfigError(f"{names} name Secrets Manager secrets, and nothing here reads them")
    from .secrets import fetch_secrets

    return fetch_secrets(references, read_secret)


_settings: Settings | None = None


def get_settings(read_secret: Reader | None = None) -> Settings:
    """The process-wide settings, validated on first use (cold start)."""
    global _settings  # noqa: PLW0603 - one validated settings object per process (cold start)
    if _settings is None:
        _settings = Settings.from_env(read_secret=read_secret)
    return _settings
