"""`make invoke` / `make start-api` run the functions on the architecture `make build` built for.

samconfig.toml's `[default.global.parameters] parameter_overrides = "Architecture=arm64"` applies to
every sam command: after `make build ARCH=x86_64` a plain `sam local invoke` still resolves arm64 and
would run arm64 images over x86_64 wheels. The Makefile's command lines are taken as `make -n` prints
them and resolved by SAM CLI's own code (its argument and samconfig parsing, SamFunctionProvider:
scripts/sam_local_command.py), against a build made for each architecture.
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from support import ROOT
from support.sam import TOOLS_PYTHON

TARGETS = {
    "invoke": ["FUNCTION=ListPaymentsFunction", "EVENT=events/list_payments/ok.json"],
    "start-api": [],
}


def fake_build(tmp_path: Path, architecture: str) -> Path:
    build = tmp_path / "build"
    build.mkdir()
    shutil.copy(ROOT / "template.yaml", build / "template.yaml")  # what `make build` leaves, for this purpose
    (build / ".architecture").write_text(architecture + "\n")  # written by `make build`
    return build


def sam_command(target: str, build: Path) -> list[str]:
    """The sam arguments of the target's `sam local ...` line, as make would run them."""
    result = subprocess.run(
        ["make", "-n", "--no-print-directory", target, f"BUILD_DIR={build}", *TARGETS[target]],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.replace("\\\n", " ").splitlines()  # recipe lines continued with a backslash
    (line,) = [line for line in lines if " local " in line and "/sam " in line]
    words = shlex.split(line)
    return words[words.index("local") :]


def resolved(arguments: list[str]) -> Any:
    result = subprocess.run(
        [str(TOOLS_PYTHON), str(ROOT / "scripts" / "sam_local_command.py"), *arguments],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


@pytest.mark.parametrize("target", sorted(TARGETS))
@pytest.mark.parametrize("architecture", ["x86_64", "arm64"])
def test_sam_local_runs_what_make_build_built(tmp_path, target, architecture):
    build = fake_build(tmp_path, architecture)
    seen = resolved(sam_command(target, build))
    assert Path(seen["template"]) == build / "template.yaml"
    assert set(seen["architectures"].values()) == {architecture}


def test_without_a_build_the_targets_say_so(tmp_path):
    result = subprocess.run(
        ["make", "--no-print-directory", "invoke", f"BUILD_DIR={tmp_path}", *TARGETS["invoke"]],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    assert "make build" in result.stderr
