"""The documentation says what is there: every setting of the configuration model is in the
configuration table of docs/operations.md, and every relative link of the README and docs/ reaches a
file (and, with `#anchor`, a heading of it) that exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from support import ROOT

from halum_payments.config import Settings

OPERATIONS = ROOT / "docs" / "operations.md"
DOCUMENTS = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md"), ROOT / "tests" / "simulation" / "README.md"])
LINK = re.compile(r"\[[^\]\n]+\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6} (.+)$", re.MULTILINE)
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)


def section(text: str, heading: str) -> str:
    start = text.index(heading + "\n")
    end = text.find("\n## ", start + len(heading))
    return text[start : end if end != -1 else len(text)]


def test_every_setting_is_in_the_configuration_table():
    rows = [line for line in section(OPERATIONS.read_text(), "## Configuration").splitlines() if line.startswith("|")]
    table = "\n".join(rows)
    missing = [name.upper() for name in Settings.model_fields if f"`{name.upper()}`" not in table]
    assert missing == [], f"docs/operations.md, Configuration: no row names {missing}"


def anchors(text: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces as hyphens."""
    return {
        re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        for heading in HEADING.findall(FENCE.sub("", text))
    }


def links(path: Path) -> list[str]:
    return [target for target in LINK.findall(FENCE.sub("", path.read_text())) if "://" not in target]


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_relative_link_reaches_what_it_names(document: Path):
    broken = []
    for target in links(document):
        file_part, _, anchor = target.partition("#")
        destination = (document.parent / file_part).resolve() if file_part else document
        if not destination.exists():
            broken.append(f"{target}: no such file")
        elif anchor and destination.suffix == ".md" and anchor not in anchors(destination.read_text()):
            broken.append(f"{target}: no heading #{anchor} in {destination.relative_to(ROOT)}")
    assert broken == [], f"{document.relative_to(ROOT)}: " + "; ".join(broken)


def test_the_anchor_rule_is_githubs():
    text = "## The oracle: the outside world's books\n```\n# not a heading\n```\n### `sam local`, and more\n"
    assert anchors(text) == {"the-oracle-the-outside-worlds-books", "sam-local-and-more"}


def test_the_simulations_invariants_are_the_ones_docs_reliability_lists():
    from simulation.invariants import STATEMENTS

    text = section((ROOT / "docs" / "reliability.md").read_text(), "### Invariants").split("\n### ")[0]
    listed = dict(re.findall(r"^- \*\*(\w+)\*\*: (.+)$", text, re.MULTILINE))
    assert sorted(listed) == sorted(STATEMENTS), "docs/reliability.md, Invariants: the list differs from STATEMENTS"
