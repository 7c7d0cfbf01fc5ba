"""Print the CloudFormation that the SAM transform makes of a template, as JSON (AWS's own translator).

Run with the tools venv, which holds aws-sam-cli and aws-sam-translator:

    .tools/bin/python scripts/sam_translate.py template.yaml [Name=Value ...] > translated.json

Parameters not given keep their template defaults (the transform resolves only what it must:
AutoPublishAlias, AutoPublishCodeSha256, ...; CloudFormation resolves the rest at deploy time).
Local CodeUri/ContentUri folders become `s3://artifacts/<LogicalId>`, as `sam package` would make
them S3 locations (`sam validate` does the same with a fixed fake URI). No AWS call is made: the
region and account are fixed fakes and no AWS managed policy name is looked up (the template
names policies by ARN or by reference).
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

REGION = "us-east-1"
ACCOUNT = "123456789012"


class _NoManagedPolicyLookup:
    def load(self) -> dict[str, str]:
        return {}


def translate(template_text: str, parameters: dict[str, str]) -> dict[str, Any]:
    from samcli.yamlhelper import yaml_parse  # SAM CLI's loader: short-form intrinsics as SAM reads them
    from samtranslator.translator.transform import transform

    template = yaml_parse(template_text)
    for logical_id, resource in (template.get("Resources") or {}).items():
        properties = resource.get("Properties") or {}
        for key in ("CodeUri", "ContentUri"):
            if isinstance(properties.get(key), str) and not properties[key].startswith("s3://"):
                properties[key] = f"s3://artifacts/{logical_id}"
    values: dict[str, Any] = {"AWS::Region": REGION, "AWS::AccountId": ACCOUNT, "AWS::Partition": "aws"}
    values.update(parameters)
    os.environ.setdefault("AWS_DEFAULT_REGION", REGION)  # the translator looks a region up even when given one
    result: dict[str, Any] = transform(template, values, _NoManagedPolicyLookup())
    return result


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    path, *pairs = argv
    parameters = dict(pair.split("=", 1) for pair in pairs)
    with open(path, encoding="utf-8") as handle:
        json.dump(translate(handle.read(), parameters), sys.stdout, indent=1, sort_keys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
