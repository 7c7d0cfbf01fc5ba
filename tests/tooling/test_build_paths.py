"""Every documented way to build and deploy is correct, or refused (issue 21, point 5).

- `sam build --use-container`: SAM mounts each layer's CodeUri (only it) into the build container and
  runs its Makefile there; everything the build reads must be inside that mount.
- `sam build --cached` (samconfig's default): a layer is rebuilt only when the hash SAM keeps of its
  CodeUri changes; a change to any file its build reads must change that hash.
- `sam build` + `sam deploy` without the version stamp would leave `live` on the old versions
  (AutoPublishAlias publishes on a code-location change only): CloudFormation refuses the unstamped
  template; the stamp (scripts/stamp_versions.py) lifts that refusal, and refuses a build whose
  layers hold wheels for another architecture than the one deployed.

SAM CLI's own code decides what is mounted and hashed (scripts/sam_container_build.py,
scripts/sam_build_cache.py, run with the tools venv); no Docker is needed.
"""

from __future__ import annotations

import functools
import json
import re
import runpy
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from support import ROOT
from support.sam import TOOLS_PYTHON, layer_build_recipe

IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", ".aws-sam", ".git")
LAYERS = ("PaymentsLayer", "StripeLayer", "JwksLayer")


def tools(script: str, *args: str, cwd: Path = ROOT) -> Any:
    result = subprocess.run(
        [str(TOOLS_PYTHON), str(ROOT / "scripts" / script), *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=cwd,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


@functools.cache
def container_builds() -> dict[str, Any]:
    builds: dict[str, Any] = tools("sam_container_build.py", str(ROOT / "template.yaml"))
    return builds


def sources(tmp_path: Path) -> Path:
    """template.yaml and the layers' folders, copied: a tree a test may change."""
    shutil.copytree(ROOT / "layers", tmp_path / "layers", ignore=IGNORE)
    shutil.copytree(ROOT / "functions", tmp_path / "functions", ignore=IGNORE)
    shutil.copy(ROOT / "template.yaml", tmp_path / "template.yaml")
    return tmp_path / "template.yaml"


# ---------------------------------------------------------------------------- sam build --use-container
@pytest.mark.parametrize("layer", LAYERS)
def test_the_build_container_holds_everything_the_layers_build_reads(layer, tmp_path):
    """The container's file system, as SAM CLI mounts it: only the mounted host folders, at their
    container paths. lambda-builders copies the source to the scratch folder and runs
    `make --makefile <manifest> build-<layer>` there with ARTIFACTS_DIR, and nothing of `make build`'s
    environment (ARCH, PYTHON313). `make -n` prints the recipe without downloading wheels."""
    build = container_builds()[layer]
    root = tmp_path / "container"

    def inside(path: str) -> Path:
        return root / path.lstrip("/")

    for host, bind in build["mounts"].items():
        shutil.copytree(host, inside(bind), ignore=IGNORE, dirs_exist_ok=True)
    request = build["request"]
    shutil.copytree(inside(request["source_dir"]), inside(request["scratch_dir"]), ignore=IGNORE)  # CopySourceAction
    result = layer_build_recipe(
        inside(request["manifest_path"]),
        layer,
        cwd=inside(request["options"].get("working_directory") or request["scratch_dir"]),
        artifacts=inside(request["artifacts_dir"]),
    )

    assert result.returncode == 0, result.stderr
    recipe = result.stdout
    assert "pip install" in recipe and "requirements.txt" in recipe and "compileall" in recipe
    assert "--platform manylinux2014_aarch64" in recipe  # the template's default architecture
    assert str(ROOT) not in recipe, "the build reads a file of the host outside the mounted folders"
    if layer == "PaymentsLayer":
        (script,) = re.findall(r"[^\s\"']*lazy_reexports\.py", recipe)
        assert Path(script).is_relative_to(root) and Path(script).is_file()


# ---------------------------------------------------------------------------- sam build --cached
@pytest.mark.parametrize("shared", ["layer.mk", "lazy_reexports.py"])
def test_a_change_to_a_shared_build_file_rebuilds_the_layers_that_use_it(shared, tmp_path):
    template = sources(tmp_path)
    before = tools("sam_build_cache.py", str(template))
    path = tmp_path / "layers" / shared
    path.write_text(path.read_text() + "\n# changed\n")
    after = tools("sam_build_cache.py", str(template))
    users = set(LAYERS) if shared == "layer.mk" else {"PaymentsLayer"}
    assert {layer for layer in users if before[layer] == after[layer]} == set()


def test_a_change_to_a_layers_requirements_rebuilds_it(tmp_path):
    template = sources(tmp_path)
    before = tools("sam_build_cache.py", str(template))
    requirements = tmp_path / "layers" / "stripe" / "requirements.txt"
    requirements.write_text(requirements.read_text() + "# pinned again\n")
    assert before["StripeLayer"] != tools("sam_build_cache.py", str(template))["StripeLayer"]


# ---------------------------------------------------------------------------- sam deploy
STAMP = runpy.run_path(str(ROOT / "scripts" / "stamp_versions.py"))


def failing_rules(template: dict[str, Any], parameters: dict[str, str] | None = None) -> list[str]:
    """The template's rules whose assertions CloudFormation finds false: it refuses to create or update
    the stack ("Rules ... validate parameter values before CloudFormation creates or updates any
    resources", CloudFormation User Guide, "Rules syntax"). The rule functions this template uses."""
    values = {n: str(p.get("Default", "")) for n, p in (template.get("Parameters") or {}).items()}
    values.update(parameters or {})

    def evaluate(expression: Any) -> Any:
        if not isinstance(expression, dict):
            return expression
        ((function, argument),) = expression.items()
        if function == "Ref":
            return values[argument]
        if function == "Fn::Equals":
            return str(evaluate(argument[0])) == str(evaluate(argument[1]))
        if function == "Fn::Not":
            return not evaluate(argument[0])
        if function == "Fn::Contains":  # a list of strings contains a string
            return str(evaluate(argument[1])) in [str(evaluate(item)) for item in argument[0]]
        raise ValueError(f"rule function {function} not evaluated here")

    failing = []
    for name, rule in (template.get("Rules") or {}).items():
        if "RuleCondition" in rule and not evaluate(rule["RuleCondition"]):
            continue
        if not all(evaluate(assertion["Assert"]) for assertion in rule["Assertions"]):
            failing.append(name)
    return failing


def built(tmp_path: Path) -> Path:
    """A build's layout: the template next to each function's and layer's own folder (as `sam build`
    writes it: CodeUri/ContentUri rewritten to the resource's logical id)."""
    from local.template import load_template

    template = load_template((ROOT / "template.yaml").read_text())
    for logical_id, resource in template["Resources"].items():
        properties = resource.get("Properties") or {}
        for key in ("CodeUri", "ContentUri"):
            if key in properties:
                (tmp_path / logical_id / "python").mkdir(parents=True)
                (tmp_path / logical_id / "python" / "app.py").write_text(f"# {logical_id}\n")
                properties[key] = logical_id
    path = tmp_path / "template.yaml"
    import yaml

    path.write_text(yaml.safe_dump(template, sort_keys=False))
    return path


def test_cloudformation_refuses_the_template_until_it_is_stamped(tmp_path):
    from local.template import load_template

    source = load_template((ROOT / "template.yaml").read_text())
    assert failing_rules(source), "an unstamped template (plain `sam build` + `sam deploy`) would deploy"
    for parameters in ({}, {"SnapStart": "PublishedVersions"}):
        assert failing_rules(source, parameters)

    template = built(tmp_path)
    assert failing_rules(load_template(template.read_text()))  # what `sam build` alone leaves
    STAMP["stamp"](template, {})
    assert failing_rules(load_template(template.read_text())) == []


def test_the_stamped_template_still_translates(tmp_path):
    from support.sam import translate

    template = built(tmp_path)
    STAMP["stamp"](template, {})
    translated = translate(template)
    assert "Rules" not in translated or failing_rules(translated) == []


def wheel(site: Path, name: str, tag: str) -> None:
    info = site / f"{name}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "WHEEL").write_text(f"Wheel-Version: 1.0\nRoot-Is-Purelib: false\nTag: {tag}\n")


@pytest.mark.parametrize(
    ("architecture", "tag", "refused"),
    [
        ("arm64", "cp313-cp313-manylinux_2_17_aarch64.manylinux2014_aarch64", False),
        ("arm64", "cp313-cp313-manylinux_2_17_x86_64.manylinux2014_x86_64", True),
        ("x86_64", "cp313-cp313-manylinux_2_17_aarch64.manylinux2014_aarch64", True),
        ("x86_64", "cp313-cp313-manylinux_2_17_x86_64.manylinux2014_x86_64", False),
        ("x86_64", "py3-none-any", False),
    ],
)
def test_the_stamp_refuses_layers_built_for_another_architecture(tmp_path, architecture, tag, refused):
    """A layer built without ARCH (a container build given none) would ship the wrong native wheels."""
    template = built(tmp_path)
    wheel(tmp_path / "PaymentsLayer" / "python", "pydantic_core", tag)
    if refused:
        with pytest.raises(SystemExit, match="built for"):
            STAMP["stamp"](template, {"Architecture": architecture})
    else:
        STAMP["stamp"](template, {"Architecture": architecture})
