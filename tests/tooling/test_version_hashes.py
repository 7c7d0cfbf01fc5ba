"""Defect: new code never went live. `AutoPublishAlias` publishes a version only when the function's own
code location changes (SAM issues #3802, #3820), and our code lives in layers. scripts/stamp_versions.py
gives each function a content hash (its code, its layers, its configuration as deployed) as
`AutoPublishCodeSha256`; these tests translate the stamped template with SAM's own translator and
check which functions get a new `AWS::Lambda::Version` when what they run changes."""

from __future__ import annotations

import runpy
import shutil
from pathlib import Path
from typing import Any

import pytest
from support.sam import translate

ROOT = Path(__file__).resolve().parents[2]
STAMP = runpy.run_path(str(ROOT / "scripts" / "stamp_versions.py"))["stamp"]
ALL = {
    "ListPaymentsFunction",
    "GetPaymentFunction",
    "CreateStripeOrderFunction",
    "CreateCodOrderFunction",
    "StripeWebhookFunction",
    "PaymentWebhookFunction",
    "ReconcilePaymentsFunction",
    "PublishEventsFunction",
}
STRIPE = {"CreateStripeOrderFunction", "StripeWebhookFunction", "PaymentWebhookFunction", "ReconcilePaymentsFunction"}
JWT = {"ListPaymentsFunction", "GetPaymentFunction", "CreateStripeOrderFunction", "CreateCodOrderFunction"}


@pytest.fixture
def build(tmp_path: Path) -> Path:
    """The sources laid out as a build: the template's CodeUri folders next to it, and each layer in a
    folder of its own (its sources, Metadata SourceDir) as `sam build` writes each layer's artifacts."""
    import yaml

    from local.template import load_template

    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "functions", tmp_path / "functions", ignore=ignore)
    shutil.copytree(ROOT / "layers", tmp_path / "layers", ignore=ignore)
    template = load_template((ROOT / "template.yaml").read_text())
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::Serverless::LayerVersion":
            resource["Properties"]["ContentUri"] = resource["Metadata"]["SourceDir"]
    (tmp_path / "template.yaml").write_text(yaml.safe_dump(template, sort_keys=False))
    return tmp_path / "template.yaml"


def versions(template: Path, **parameters: str) -> dict[str, dict[str, Any]]:
    """Function logical id -> its published AWS::Lambda::Version, after stamping and SAM's translation."""
    STAMP(template, parameters)
    cfn = translate(template, parameters)
    found = {}
    for logical_id, resource in cfn["Resources"].items():
        if resource["Type"] == "AWS::Lambda::Version":
            function = resource["Properties"]["FunctionName"]["Ref"]
            found[function] = {"id": logical_id, "description": cfn["Resources"][function]["Properties"]["Description"]}
    return found


def changed(before: dict[str, Any], after: dict[str, Any]) -> set[str]:
    return {name for name in before if before[name]["id"] != after[name]["id"]}


def test_the_version_is_named_after_the_hash_and_lambda_sees_a_new_configuration(build):
    found = versions(build)
    assert set(found) == ALL
    for function, version in found.items():
        suffix = version["id"].removeprefix(f"{function}Version")
        assert len(suffix) == 10 and suffix in version["description"]  # SAM appends the hash to Description


def test_stamping_again_without_a_change_publishes_nothing(build):
    assert changed(versions(build), versions(build)) == set()


def test_a_change_in_the_shared_layer_publishes_every_function(build):
    before = versions(build)
    money = build.parent / "layers" / "payments" / "halum_payments" / "money.py"
    money.write_text(money.read_text() + "\n# a fix\n")
    assert changed(before, versions(build)) == ALL


def test_a_change_in_the_stripe_layer_publishes_only_the_functions_that_mount_it(build):
    before = versions(build)
    requirements = build.parent / "layers" / "stripe" / "requirements.txt"
    requirements.write_text(requirements.read_text() + "# rebuilt\n")
    assert changed(before, versions(build)) == STRIPE


def test_a_parameter_that_changes_an_environment_variable_publishes_the_functions_that_read_it(build):
    before = versions(build)
    assert changed(before, versions(build, LogLevel="DEBUG")) == ALL
    assert changed(before, versions(build, JwtSecretName="halum-hut/other/jwt")) == JWT


def test_switching_snapstart_on_publishes_every_function(build):
    assert changed(versions(build), versions(build, SnapStart="PublishedVersions")) == ALL


def test_a_functions_own_code_publishes_only_that_function(build):
    before = versions(build)
    app = build.parent / "functions" / "get_payment" / "app.py"
    app.write_text(app.read_text() + "\n")
    assert changed(before, versions(build)) == {"GetPaymentFunction"}


def test_without_the_hash_sam_keeps_the_old_version_when_only_a_layer_changes(build):
    """The defect, as SAM behaves: the version id follows the code location and the unresolved
    properties, neither of which a layer's content or a parameter's value changes."""
    before = translate(build)
    money = build.parent / "layers" / "payments" / "halum_payments" / "money.py"
    money.write_text(money.read_text() + "\n# a fix\n")
    after = translate(build.read_text() + "\n# rebuilt\n", {"LogLevel": "DEBUG"})

    def ids(cfn: dict[str, Any]) -> set[str]:
        return {name for name, r in cfn["Resources"].items() if r["Type"] == "AWS::Lambda::Version"}

    assert ids(before) == ids(after)
