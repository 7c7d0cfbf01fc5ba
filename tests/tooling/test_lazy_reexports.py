"""The layer build's lazy re-exports: same names, imported on first use, anything else refused."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from layers.lazy_reexports import MARKER, NotReexportOnly, lazy_source, main, make_lazy

INIT = '''"""A package that re-exports."""

from .heavy import Heavy, helper as renamed
from . import light
from pkg.other import Other

__all__ = ["Heavy", "renamed", "light", "Other"]
'''


def _package(root: Path) -> Path:
    package = root / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text(INIT)
    (package / "heavy.py").write_text("import json\nLOADED = True\nclass Heavy: ...\ndef helper(): return 42\n")
    (package / "light.py").write_text("VALUE = 1\n")
    (package / "other.py").write_text("class Other: ...\n")
    (package / "unlisted.py").write_text("VALUE = 2\n")
    return package


def _run(root: Path, code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
        env={"PYTHONPATH": str(root), "PYTHONDONTWRITEBYTECODE": "1"},
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_the_rewritten_package_exports_the_same_names_and_imports_them_on_first_use(tmp_path: Path) -> None:
    _package(tmp_path)
    assert make_lazy(tmp_path, "pkg") is True
    output = _run(
        tmp_path,
        """
        import sys
        import pkg
        print("pkg.heavy" in sys.modules, sorted(pkg.__all__), pkg.__doc__)
        from pkg import Heavy, renamed, light, Other
        print("pkg.heavy" in sys.modules, Heavy.__module__, renamed(), light.VALUE, Other.__module__)
        print(pkg.unlisted.VALUE, "Heavy" in dir(pkg))
        try:
            pkg.missing
        except AttributeError as exc:
            print("AttributeError", exc)
        """,
    )
    assert output.splitlines() == [
        "False ['Heavy', 'Other', 'light', 'renamed'] A package that re-exports.",
        "True pkg.heavy 42 1 pkg.other",
        "2 True",
        "AttributeError module 'pkg' has no attribute 'missing'",
    ]


def test_a_package_already_rewritten_is_left_alone(tmp_path: Path) -> None:
    package = _package(tmp_path)
    make_lazy(tmp_path, "pkg")
    rewritten = (package / "__init__.py").read_text()
    assert MARKER in rewritten
    assert make_lazy(tmp_path, "pkg") is False
    assert (package / "__init__.py").read_text() == rewritten


@pytest.mark.parametrize(
    "source",
    [
        "from .heavy import *\n",
        "from .heavy import Heavy\nHeavy.registered = True\n",
        "import os\nfrom .heavy import Heavy\n",
        "from .heavy import Heavy\n__all__ = ['Heavy', 'Ghost']\n",
    ],
    ids=["star import", "side effect", "plain import", "__all__ names a name it does not import"],
)
def test_anything_but_re_exports_fails_the_build(source: str) -> None:
    with pytest.raises(NotReexportOnly):
        lazy_source(source, "pkg")


def test_the_build_step_exits_non_zero_on_a_file_it_cannot_rewrite(tmp_path: Path, capsys) -> None:
    package = _package(tmp_path)
    (package / "__init__.py").write_text("from .heavy import Heavy\nprint('side effect')\n")
    assert main([str(tmp_path), "pkg"]) == 1
    assert "is not a re-export" in capsys.readouterr().err


# The rewrite is a measured trick on another library's files (cold start -8 to -15%, bench/ab.py):
# it is checked against the very version it was measured with, and fails here, loudly, on an
# upgrade, before a build would.
MEASURED_WITH = "3.37.0"
REWRITTEN = [
    "aws_lambda_powertools.event_handler",
    "aws_lambda_powertools.utilities.data_classes",
    "aws_lambda_powertools.utilities.parameters",
]


def test_the_powertools_version_is_the_one_the_rewrite_was_measured_with() -> None:
    from importlib.metadata import version

    assert version("aws-lambda-powertools") == MEASURED_WITH, (
        "Powertools changed: check that layers/payments/Makefile's LAZY_REEXPORTS still rewrite "
        "re-export-only files, re-measure the cold start with bench/ab.py, then update MEASURED_WITH"
    )
    requirement = (Path(__file__).resolve().parents[2] / "layers/payments/requirements.txt").read_text()
    assert f"aws-lambda-powertools=={MEASURED_WITH}" in requirement


@pytest.mark.parametrize("package", REWRITTEN)
def test_the_installed_powertools_files_the_build_rewrites_are_still_re_export_only(package: str) -> None:
    import importlib.util

    spec = importlib.util.find_spec(package)
    assert spec is not None and spec.origin is not None
    source = Path(spec.origin).read_text()
    lazy_source(source, package)  # raises NotReexportOnly if Powertools made it anything else
