"""No Scan anywhere: not in the code that serves requests, not in any function's permissions."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from local.template import Template

ROOT = Path(__file__).resolve().parents[2]
SERVING_CODE = sorted(
    [*(ROOT / "layers" / "payments" / "halum_payments").rglob("*.py"), *(ROOT / "functions").rglob("*.py")]
)


@pytest.mark.parametrize("path", SERVING_CODE, ids=lambda p: str(p.relative_to(ROOT)))
def test_serving_code_never_scans(path):
    source = path.read_text()
    assert not re.search(r"\.scan\(|[\"']Scan[\"']|paginate\(", source), f"{path.name} scans or paginates a table"


def _statements(template: Template, logical_id: str) -> list[dict]:
    found = []
    for policy in template.resources[logical_id]["Properties"].get("Policies") or []:
        if isinstance(policy, dict) and "Statement" in policy:
            found.extend(policy["Statement"])
        elif isinstance(policy, dict) and policy.get("Ref"):
            managed = template.resources[policy["Ref"]]["Properties"]["PolicyDocument"]
            found.extend(managed["Statement"])
        else:
            pytest.fail(f"{logical_id}: use explicit statements, not policy templates: {policy!r}")
    return found


@pytest.mark.parametrize("logical_id", Template().function_ids())
def test_functions_may_not_scan_and_name_their_tables(logical_id):
    template = Template()
    for statement in _statements(template, logical_id):
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        assert "dynamodb:Scan" not in actions and "dynamodb:*" not in actions and "*" not in actions
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        assert "*" not in resources, f"{logical_id}: a wildcard resource in {statement}"


@pytest.mark.parametrize("logical_id", ["ListPaymentsFunction", "GetPaymentFunction"])
def test_read_functions_have_read_only_permissions(logical_id):
    for statement in _statements(Template(), logical_id):
        for action in statement["Action"]:
            if action.startswith("dynamodb:"):
                assert action in {"dynamodb:GetItem", "dynamodb:Query", "dynamodb:BatchGetItem"}, action
