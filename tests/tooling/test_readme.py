"""The README's table "Where each rule lives" names code that exists.

Each `path.py:name` or `path.py:Class.method` in the table must be a module-level function, class or
assignment (or a method of a class) in that file; paths are under the layer's package, as the README
says (or from the repository's root). Read with `ast`, so nothing is imported or run.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from support import ROOT

README = ROOT / "README.md"
PACKAGE = ROOT / "layers" / "payments" / "halum_payments"
SECTION = "## Where each rule lives"
REFERENCE = re.compile(r"`([\w/.-]+\.py):([\w.]+)`")


def section(text: str, heading: str) -> str:
    start = text.index(heading + "\n")
    end = text.find("\n## ", start + len(heading))
    return text[start : end if end != -1 else len(text)]


def table_rows(text: str) -> list[tuple[str, str]]:
    """(rule, code) of each row of the section's table, header and rule line left out: the code is
    every column after the rule's (its home, and what enforces it)."""
    rows = [line for line in text.splitlines() if line.startswith("|")]
    cells = [[cell.strip() for cell in row.strip("|").split("|")] for row in rows[2:]]
    return [(rule, " ".join(code)) for rule, *code in cells]


def references(text: str) -> list[tuple[str, str]]:
    return [(path, name) for _, code in table_rows(text) for path, name in REFERENCE.findall(code)]


def resolve(path: str) -> Path:
    for base in (PACKAGE, ROOT):
        if (base / path).is_file():
            return base / path
    raise AssertionError(f"{path}: no such file under {PACKAGE.relative_to(ROOT)}/ or the repository's root")


def defined(module: ast.Module, name: str) -> bool:
    """`name` (`function`, `Class`, `CONSTANT` or `Class.method`) is defined in `module`."""
    scope: list[ast.stmt] = module.body
    *owners, last = name.split(".")
    for owner in owners:
        classes = [node for node in scope if isinstance(node, ast.ClassDef) and node.name == owner]
        if not classes:
            return False
        scope = classes[0].body
    return last in names_in(scope)


def names_in(body: list[ast.stmt]) -> set[str]:
    names: set[str] = set()
    for node in body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(target.id for target in node.targets if isinstance(target, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return names


RULES = section(README.read_text(), SECTION)


def test_the_table_has_a_row_per_rule_and_code_in_every_row():
    rows = table_rows(RULES)
    assert len(rows) >= 10, "the rules table is missing or lost its rows"
    for rule, code in rows:
        assert REFERENCE.search(code), f"the row {rule!r} names no `file.py:function`"


@pytest.mark.parametrize(("path", "name"), sorted(set(references(RULES))), ids=lambda value: value)
def test_every_named_function_exists(path, name):
    module = ast.parse(resolve(path).read_text())
    assert defined(module, name), f"README, {SECTION[3:]!r}: {path} defines no {name}"


def test_the_check_finds_what_is_missing():
    module = ast.parse("X = 1\nclass A:\n    def b(self): ...\ndef c(): ...\n")
    assert [defined(module, name) for name in ("X", "A", "A.b", "c")] == [True] * 4
    assert [defined(module, name) for name in ("Y", "A.c", "B.b", "c.d")] == [False] * 4
    text = "## Where each rule lives\n\n| Rule | Code |\n|---|---|\n| r | `money.py:gone`, `x.py:y` |\n## Next\n"
    assert references(section(text, SECTION)) == [("money.py", "gone"), ("x.py", "y")]
