"""Cold starts of the two read functions: what a deployment mistake looks like."""

from __future__ import annotations

import pytest

from halum_payments.errors import ConfigError


@pytest.mark.parametrize("name", ["list_payments", "get_payment"])
def test_a_function_without_its_jwt_secret_fails_at_cold_start_not_per_request(load_function, name):
    with pytest.raises(ConfigError, match="JWT_SECRET"):
        load_function(name, JWT_SECRET="")


@pytest.mark.parametrize("name", ["list_payments", "get_payment"])
def test_a_function_with_mixed_jwt_algorithm_families_fails_at_cold_start(load_function, name):
    with pytest.raises(ConfigError, match="JWT_ALGORITHMS"):
        load_function(name, JWT_ALGORITHMS="HS256,RS256", JWT_JWKS_URL="https://idp.example/jwks.json")
