"""The template as AWS deploys it: checks on SAM's own translation (tests/support/sam.py) of
template.yaml, for what neither the local server nor moto would ever show."""

from __future__ import annotations

from typing import Any

import pytest
from support.sam import translated

from local.template import Template

TEMPLATE = Template()


@pytest.fixture(scope="module")
def cfn() -> dict[str, Any]:
    return translated()


def resources(cfn: dict[str, Any], kind: str) -> dict[str, Any]:
    return {name: resource for name, resource in cfn["Resources"].items() if resource["Type"] == kind}


# ---------------------------------------------------------------------------- routes
def test_every_http_api_route_is_declared_once_without_a_trailing_slash(cfn):
    """HTTP API route keys cannot end in "/" (API Gateway, "Create routes for HTTP APIs"; SAM drops such a
    route and its invoke permission strips the slash); API Gateway sends /x/ to the route /x."""
    (api,) = resources(cfn, "AWS::ApiGatewayV2::Api").values()
    paths = api["Properties"]["Body"]["paths"]
    assert paths, "no route in the translated HTTP API"
    assert [path for path in paths if path.endswith("/")] == []
    declared = [(route.method, route.path) for spec in TEMPLATE.functions() for route in spec.routes]
    assert sorted(declared) == sorted((method.upper(), path) for path, ops in paths.items() for method in ops)
