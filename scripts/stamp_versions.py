"""Give every function of a built template the content hash of what it runs, as `AutoPublishCodeSha256`.

    python scripts/stamp_versions.py .aws-sam/build/template.yaml [--config-env dev] [Name=Value ...]

Why: `AutoPublishAlias` publishes a new version only when the function's own code location (or, with
AutoPublishAliasAllProperties, its unresolved properties) changes. Our code lives in layers, so a
layer-only change, or a parameter that changes an environment variable, left `live` on the old
version (SAM issues #3802, #3820). SAM names the version after AutoPublishCodeSha256 when it is set
(`<Function>Version<first 10 characters>`) and appends it to the function's Description, so Lambda
publishes a new version exactly when this hash changes.

The hash covers, for each function: every file of its built code folder and of each layer it uses
(conditional layers decided with the parameter values), and its properties as deployed (Globals
merged in) with template parameters resolved to the values this deployment uses: the template's
defaults, then samconfig.toml's `parameter_overrides` of `--config-env`, then Name=Value arguments.
The template is rewritten in place (long-form intrinsics), without the template's rule that makes
CloudFormation refuse an unstamped build (Rules: DeployAStampedBuild).

It refuses (exit 2, nothing written) a build whose layers hold native wheels for another
architecture than the one deployed: a layer built without ARCH (say in a build container given
none) would otherwise go live and fail at import.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import shlex
import sys
import tomllib
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from local.template import load_template  # noqa: E402

# Properties that do not change what a version runs (and that Lambda does not version).
NOT_VERSIONED = frozenset(
    {
        "AutoPublishAlias",
        "AutoPublishAliasAllProperties",
        "AutoPublishCodeSha256",
        "CodeUri",  # hashed by content instead
        "DeploymentPreference",
        "EventInvokeConfig",
        "Events",
        "FunctionUrlConfig",
        "Policies",
        "ProvisionedConcurrencyConfig",
        "ReservedConcurrentExecutions",
        "Role",
        "Tags",
        "VersionDescription",
    }
)


def parameter_values(template: dict[str, Any], config_env: str | None, overrides: list[str]) -> dict[str, str]:
    values = {name: str(spec.get("Default", "")) for name, spec in (template.get("Parameters") or {}).items()}
    if config_env:
        config = tomllib.loads((ROOT / "samconfig.toml").read_text())
        for section in ("global", "deploy"):
            text = config.get(config_env, {}).get(section, {}).get("parameters", {}).get("parameter_overrides", "")
            values.update(pair.split("=", 1) for pair in shlex.split(text))
    values.update(pair.split("=", 1) for pair in overrides)
    return values


def resolve(value: Any, parameters: dict[str, str]) -> Any:
    """Template parameters replaced by their values; other intrinsics kept (their logical ids are stable)."""
    if isinstance(value, list):
        return [resolve(v, parameters) for v in value]
    if not isinstance(value, dict):
        return value
    if set(value) == {"Ref"} and value["Ref"] in parameters:
        return parameters[value["Ref"]]
    if set(value) == {"Fn::Sub"} and isinstance(value["Fn::Sub"], str):
        text = value["Fn::Sub"]
        for name, parameter in parameters.items():
            text = text.replace("${" + name + "}", parameter)
        return {"Fn::Sub": text}
    return {k: resolve(v, parameters) for k, v in value.items()}


def condition(template: dict[str, Any], name: str, parameters: dict[str, str]) -> bool:
    def evaluate(expression: Any) -> Any:
        if not isinstance(expression, dict):
            return expression
        ((function, argument),) = expression.items()
        if function == "Ref":
            return parameters.get(argument, argument)
        if function == "Condition":
            return condition(template, argument, parameters)
        if function == "Fn::Equals":
            return str(evaluate(argument[0])) == str(evaluate(argument[1]))
        if function == "Fn::Not":
            return not evaluate(argument[0])
        if function == "Fn::And":
            return all(evaluate(a) for a in argument)
        if function == "Fn::Or":
            return any(evaluate(a) for a in argument)
        raise ValueError(f"cannot evaluate {function} in condition {name}")

    return bool(evaluate(template["Conditions"][name]))


def merged_properties(template: dict[str, Any], logical_id: str) -> dict[str, Any]:
    """The function's properties with Globals.Function merged in as SAM merges them (maps merged,
    lists concatenated Globals first, scalars overridden)."""
    globals_ = copy.deepcopy((template.get("Globals") or {}).get("Function") or {})
    properties = template["Resources"][logical_id].get("Properties") or {}

    def merge(base: Any, own: Any) -> Any:
        if isinstance(base, dict) and isinstance(own, dict):
            return {**base, **{k: merge(base[k], v) if k in base else v for k, v in own.items()}}
        if isinstance(base, list) and isinstance(own, list):
            return base + own
        return own

    return merge(globals_, copy.deepcopy(properties))


def layers(template: dict[str, Any], properties: dict[str, Any], parameters: dict[str, str]) -> list[str]:
    found = []
    for declared in properties.get("Layers") or []:
        ref = declared
        while isinstance(ref, dict) and "Fn::If" in ref:
            name, when_true, when_false = ref["Fn::If"]
            ref = when_true if condition(template, name, parameters) else when_false
        if isinstance(ref, dict) and ref.get("Ref") in template["Resources"]:
            found.append(ref["Ref"])
    return found


def folder_digest(folder: Path, digest: Any) -> None:
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a built folder: run sam build first")
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(folder)).encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())


def code_sha256(template: dict[str, Any], base: Path, logical_id: str, parameters: dict[str, str]) -> str:
    properties = merged_properties(template, logical_id)
    digest = hashlib.sha256()
    folder_digest(base / properties["CodeUri"], digest)
    for layer in layers(template, properties, parameters):
        digest.update(f"layer {layer}\0".encode())
        folder_digest(base / template["Resources"][layer]["Properties"]["ContentUri"], digest)
    versioned = {k: v for k, v in properties.items() if k not in NOT_VERSIONED}
    digest.update(json.dumps(resolve(versioned, parameters), sort_keys=True).encode())
    return digest.hexdigest()


UNSTAMPED_RULE = "DeployAStampedBuild"
# Native wheels' platform tags (WHEEL files' `Tag:` lines) by Lambda architecture.
PLATFORM_TAGS = {"arm64": "aarch64", "x86_64": "x86_64"}


def foreign_wheels(template: dict[str, Any], base: Path, architecture: str) -> list[str]:
    """`<layer>: <wheel>` for every native wheel in a built layer that is not for `architecture`."""
    wanted = PLATFORM_TAGS[architecture]
    others = {tag for tag in PLATFORM_TAGS.values() if tag != wanted}
    found = []
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] != "AWS::Serverless::LayerVersion":
            continue
        for wheel in sorted((base / resource["Properties"]["ContentUri"]).glob("python/*.dist-info/WHEEL")):
            tags = [line.split(":", 1)[1].strip() for line in wheel.read_text().splitlines() if line.startswith("Tag:")]
            if any(tag.endswith(tuple(others)) for tag in tags):
                found.append(f"{logical_id}: {wheel.parent.name} ({', '.join(tags)})")
    return found


def stamp(
    template_path: Path, parameters: dict[str, str] | None = None, *, config_env: str | None = None
) -> dict[str, str]:
    """Write AutoPublishCodeSha256 into every function of the template; returns logical id -> hash."""
    template = load_template(template_path.read_text())
    values = parameter_values(template, config_env, [f"{k}={v}" for k, v in (parameters or {}).items()])
    foreign = foreign_wheels(template, template_path.parent, values.get("Architecture", "arm64"))
    if foreign:
        raise SystemExit(
            f"refusing to stamp: layers built for another architecture than {values.get('Architecture')}:\n  "
            + "\n  ".join(foreign)
            + "\nbuild with `make build ARCH=...` (it passes ARCH to the layers' build)"
        )
    rules = template.get("Rules") or {}
    rules.pop(UNSTAMPED_RULE, None)
    if not rules:
        template.pop("Rules", None)
    hashes = {}
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] == "AWS::Serverless::Function":
            hashes[logical_id] = code_sha256(template, template_path.parent, logical_id, values)
            resource["Properties"]["AutoPublishCodeSha256"] = hashes[logical_id]
    template_path.write_text(yaml.safe_dump(template, sort_keys=False, width=120))
    return hashes


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("template", type=Path)
    parser.add_argument("--config-env", help="samconfig.toml environment whose parameter_overrides apply")
    parser.add_argument("overrides", nargs="*", help="Name=Value parameter values")
    args = parser.parse_intermixed_args(argv)
    for logical_id, digest in stamp(
        args.template, dict(o.split("=", 1) for o in args.overrides), config_env=args.config_env
    ).items():
        print(f"{logical_id}: version {digest[:10]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
