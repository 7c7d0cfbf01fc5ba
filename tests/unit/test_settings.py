"""Configuration mistakes fail the cold start with a ConfigError that names the variable."""

from __future__ import annotations

import re

import pytest
from support import JWT_SECRET, ROOT
from support.auth_app import TABLE_ENV, settings_from

from halum_payments import wiring
from halum_payments.auth import Authenticator
from halum_payments.config import Settings
from halum_payments.errors import ConfigError


def config_error(**env: str) -> str:
    with pytest.raises(ConfigError) as caught:
        settings_from(**env)
    return str(caught.value)


def test_a_minimal_environment_gives_simplejwt_defaults():
    settings = settings_from()
    assert settings.jwt_algorithms == ("HS256",)
    assert not settings.jwt_is_asymmetric
    assert settings.payments_table == TABLE_ENV["PAYMENTS_TABLE"]
    assert settings.jwt_secret is not None and settings.jwt_secret.get_secret_value() == JWT_SECRET
    assert JWT_SECRET not in repr(settings)


def test_lists_and_case_are_normalised():
    settings = settings_from(JWT_ALGORITHMS=" HS256 , HS384 ", CURRENCY="USD")
    assert settings.jwt_algorithms == ("HS256", "HS384")
    assert settings.currency == "usd"


@pytest.mark.parametrize("variable", sorted(TABLE_ENV))
def test_a_missing_table_name_is_named(variable):
    env = {**TABLE_ENV, "JWT_SECRET": JWT_SECRET}
    del env[variable]
    with pytest.raises(ConfigError, match=variable):
        Settings.from_env(env)


@pytest.mark.parametrize("blank", ["", "   "])
def test_a_blank_table_name_counts_as_missing(blank):
    assert "PAYMENTS_TABLE" in config_error(PAYMENTS_TABLE=blank)


@pytest.mark.parametrize(
    ("env", "variable", "words"),
    [
        ({"JWT_ALGORITHMS": "HS256,RS256"}, "JWT_ALGORITHMS", "mix"),
        ({"JWT_ALGORITHMS": "HS512,ES256"}, "JWT_ALGORITHMS", "mix"),
        ({"JWT_ALGORITHMS": "none"}, "JWT_ALGORITHMS", "none"),
        ({"JWT_ALGORITHMS": "HS256,none"}, "JWT_ALGORITHMS", "none"),
        ({"JWT_ALGORITHMS": "HS257"}, "JWT_ALGORITHMS", "HS257"),
        ({"CURRENCY": "dollars"}, "CURRENCY", "ISO 4217"),
        ({"CURRENCY": "us"}, "CURRENCY", "ISO 4217"),
        ({"CURRENCY": "u$d"}, "CURRENCY", "ISO 4217"),
        ({"JWT_LEEWAY_SECONDS": "-1"}, "JWT_LEEWAY_SECONDS", ""),
        ({"JWT_LEEWAY_SECONDS": "301"}, "JWT_LEEWAY_SECONDS", ""),
        ({"JWT_LEEWAY_SECONDS": "soon"}, "JWT_LEEWAY_SECONDS", ""),
        ({"CHECKOUT_SUCCESS_URL": "https://shop.example/ok"}, "CHECKOUT_SUCCESS_URL", "{CHECKOUT_SESSION_ID}"),
    ],
    ids=lambda value: value if isinstance(value, str) else next(iter(value.values())),
)
def test_invalid_values_fail_with_a_clear_message(env, variable, words):
    message = config_error(**env)
    assert variable in message
    assert words in message
    assert JWT_SECRET not in message


def test_hmac_mode_needs_a_secret():
    with pytest.raises(ConfigError, match="JWT_SECRET"):
        Authenticator(settings_from(JWT_SECRET=""))
    with pytest.raises(ConfigError, match="JWT_SECRET"):
        Authenticator(settings_from(JWT_SECRET="   "))


def test_public_key_mode_needs_a_jwks_url():
    with pytest.raises(ConfigError, match="JWT_JWKS_URL"):
        Authenticator(settings_from(JWT_ALGORITHMS="RS256"))


def test_cursors_need_a_secret_even_in_public_key_mode():
    settings = settings_from(JWT_SECRET="", JWT_ALGORITHMS="RS256", JWT_JWKS_URL="https://idp.example/jwks.json")
    with pytest.raises(ConfigError, match="CURSOR_SECRET"):
        wiring.cursor_codec(settings)
    assert wiring.cursor_codec(settings.model_copy(update={"cursor_secret": settings_from().jwt_secret}))


def test_the_layers_ship_what_the_public_key_mode_needs():
    """RS256/ES256 verification needs `cryptography` (the tests' venv has it through moto). It lives
    in JwksLayer, attached exactly when a JWKS URL is configured: PyJWT imports it eagerly (~150 ms
    of every cold start), so HS256 deployments must not carry it."""
    requirements = (ROOT / "layers" / "jwks" / "requirements.txt").read_text().lower()
    names = {re.split(r"[=<>~!; ]", line.strip())[0] for line in requirements.splitlines() if line.strip()}
    assert "cryptography" in names, sorted(names)
    base = (ROOT / "layers" / "payments" / "requirements.txt").read_text().lower()
    assert "cryptography" not in base and "pyjwt[crypto]" not in base

    from local.template import Template

    template = Template()
    assert template.resources["JwksLayer"]["Condition"] == "UsePublicKeyTokens"
    assert template.doc["Conditions"]["UsePublicKeyTokens"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "JwtJwksUrl"}, ""]}]
    }
    layers = template.doc["Globals"]["Function"]["Layers"]
    assert {"Fn::If": ["UsePublicKeyTokens", {"Ref": "JwksLayer"}, {"Ref": "AWS::NoValue"}]} in layers
