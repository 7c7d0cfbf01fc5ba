"""The template as AWS deploys it: translated by SAM's own translator (the tools venv), with the
intrinsics IAM sees resolved to concrete fake ARNs.

`translated()` runs scripts/sam_translate.py with `.tools/bin/python` (aws-sam-translator pins its
own pydantic, so it cannot be imported here); `make test` installs `.tools` before running pytest.
ARNs are fake but consistent: a table is `arn:aws:dynamodb:us-east-1:123456789012:table/<LogicalId>`
both in the policies and in the calls the recorder sees (tests name tables `<prefix><LogicalId>`).
"""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent.parent
TOOLS_PYTHON = ROOT / ".tools" / "bin" / "python"
TRANSLATE = ROOT / "scripts" / "sam_translate.py"
REGION = "us-east-1"
ACCOUNT = "123456789012"
PSEUDO = {
    "AWS::Region": REGION,
    "AWS::AccountId": ACCOUNT,
    "AWS::Partition": "aws",
    "AWS::URLSuffix": "amazonaws.com",
    "AWS::StackName": "halum-hut-payments",
}
# ARN templates of the resource types the policies name (the ARN format of each service's docs).
ARN_FORMATS = {
    "AWS::DynamoDB::Table": "arn:aws:dynamodb:{region}:{account}:table/{name}",
    "AWS::KMS::Key": "arn:aws:kms:{region}:{account}:key/{name}",
    "AWS::SNS::Topic": "arn:aws:sns:{region}:{account}:{name}",
    "AWS::Logs::LogGroup": "arn:aws:logs:{region}:{account}:log-group:{name}:*",
    "AWS::CloudWatch::Alarm": "arn:aws:cloudwatch:{region}:{account}:alarm:{name}",
    "AWS::Events::EventBus": "arn:aws:events:{region}:{account}:event-bus/{name}",
    "AWS::SQS::Queue": "arn:aws:sqs:{region}:{account}:{name}",
}


def layer_build_recipe(makefile: Path, layer: str, cwd: Path, artifacts: Path) -> subprocess.CompletedProcess[str]:
    """What SAM CLI's custom_make workflow runs for a layer (`make --makefile <ContentUri>/Makefile
    build-<LayerLogicalId>` in its scratch copy, ARTIFACTS_DIR set, its own environment inherited and
    nothing of `make build`'s), printed with `make -n`: no wheel is downloaded."""
    env = {k: v for k, v in os.environ.items() if k not in ("ARCH", "PYTHON313", "MAKEFLAGS", "MAKELEVEL", "LAYER_MK")}
    env["ARTIFACTS_DIR"] = str(artifacts)
    return subprocess.run(
        ["make", "-n", "--makefile", str(makefile), f"build-{layer}"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def translate(template: Path | str, parameters: dict[str, str] | None = None) -> dict[str, Any]:
    """CloudFormation JSON of `template` (a path or YAML text) after the SAM transform."""
    if not TOOLS_PYTHON.exists():
        raise RuntimeError(f"{TOOLS_PYTHON} is missing: run `make tools` (make test does)")
    text = template.read_text() if isinstance(template, Path) else template
    return _translate(text, tuple(sorted((parameters or {}).items())))


@functools.cache
def _translate(text: str, parameters: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    pairs = [f"{name}={value}" for name, value in parameters]
    result = subprocess.run(
        [str(TOOLS_PYTHON), str(TRANSLATE), "/dev/stdin", *pairs],
        input=text,
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    if result.returncode:
        raise RuntimeError(f"SAM could not translate the template:\n{result.stderr[-4000:]}")
    translated: dict[str, Any] = json.loads(result.stdout)
    return translated


def translated(parameters: dict[str, str] | None = None) -> dict[str, Any]:
    """The repository's template.yaml, translated."""
    return translate(ROOT / "template.yaml", parameters)


class Resolver:
    """Resolves the intrinsics of a translated template to concrete values (fake ARNs for resources)."""

    def __init__(self, template: dict[str, Any], parameters: dict[str, str] | None = None) -> None:
        self.resources: dict[str, Any] = template["Resources"]
        self.parameters = {
            name: str(spec.get("Default", "")) for name, spec in (template.get("Parameters") or {}).items()
        }
        self.parameters.update(parameters or {})

    def arn(self, logical_id: str) -> str:
        kind = self.resources[logical_id]["Type"]
        if kind not in ARN_FORMATS:
            raise ValueError(f"no ARN format for {kind} ({logical_id})")
        return ARN_FORMATS[kind].format(region=REGION, account=ACCOUNT, name=logical_id)

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if not isinstance(value, dict):
            return value
        if len(value) != 1 or not next(iter(value)).startswith(("Ref", "Fn::")):
            return {k: self.resolve(v) for k, v in value.items()}
        ((name, argument),) = value.items()
        if name == "Ref":
            return self._ref(argument)
        if name == "Fn::GetAtt":
            resource, attribute = argument if isinstance(argument, list) else argument.split(".", 1)
            if attribute != "Arn":
                raise ValueError(f"cannot resolve {resource}.{attribute}")
            return self.arn(resource)
        if name == "Fn::Sub":
            text, local = (argument, {}) if isinstance(argument, str) else argument
            return re.sub(r"\$\{([^}!]+)\}", lambda m: self._sub(m.group(1), local), text)
        if name == "Fn::Join":
            separator, parts = argument
            return separator.join(str(self.resolve(p)) for p in parts)
        raise ValueError(f"cannot resolve {name}")

    def _sub(self, name: str, local: dict[str, Any]) -> str:
        if name in local:
            return str(self.resolve(local[name]))
        if "." in name:
            resource, attribute = name.split(".", 1)
            if attribute != "Arn":
                raise ValueError(f"cannot resolve ${{{name}}}")
            return self.arn(resource)
        return str(self._ref(name))

    def _ref(self, name: str) -> Any:
        if name in PSEUDO:
            return PSEUDO[name]
        if name in self.parameters:
            return self.parameters[name]
        if name in self.resources:
            kind = self.resources[name]["Type"]
            # Ref of a managed policy is its ARN; of a table, topic or key its name/ARN: the fake ARN
            # serves both, as nothing compares them with a literal.
            return self.arn(name) if kind in ARN_FORMATS else name
        raise ValueError(f"unknown reference {name}")


def function_policies(template: dict[str, Any], function: str, resolver: Resolver) -> list[dict[str, Any]]:
    """Every statement of the function's execution role: its inline policies and the customer managed
    policies it references, resolved. AWS managed policies (by ARN: AWSLambdaBasicExecutionRole,
    AWSXrayWriteOnlyAccess) grant the runtime's logs and traces, never a call of our code: they are
    listed by `aws_managed_policies`."""
    role = _role(template, function)
    statements: list[dict[str, Any]] = []
    for policy in role["Properties"].get("Policies") or []:
        statements.extend(_statements(resolver.resolve(policy["PolicyDocument"])))
    for arn in role["Properties"].get("ManagedPolicyArns") or []:
        if isinstance(arn, dict) and "Ref" in arn:
            managed = template["Resources"][arn["Ref"]]
            assert managed["Type"] == "AWS::IAM::ManagedPolicy", arn
            statements.extend(_statements(resolver.resolve(managed["Properties"]["PolicyDocument"])))
    return statements


def aws_managed_policies(template: dict[str, Any], function: str) -> list[str]:
    role = _role(template, function)
    return [arn for arn in role["Properties"].get("ManagedPolicyArns") or [] if isinstance(arn, str)]


def _role(template: dict[str, Any], function: str) -> dict[str, Any]:
    role_ref = template["Resources"][function]["Properties"]["Role"]
    role_id = role_ref["Fn::GetAtt"][0] if isinstance(role_ref, dict) else role_ref
    role: dict[str, Any] = template["Resources"][role_id]
    return role


def _statements(document: dict[str, Any]) -> list[dict[str, Any]]:
    statements = document["Statement"]
    return list(statements) if isinstance(statements, list) else [statements]
