"""Every alarm tells the person it wakes where to start: its AlarmDescription names a section of
docs/runbook.md (`Runbook: docs/runbook.md#<anchor>`), and that section exists and says what the alarm
means, what to look at and what to do. Generic over every AWS::CloudWatch::Alarm of the template as
SAM translates it, so an alarm added later needs its section before the suite passes. The money
alarms' sections come first (a refund owed, an amount that does not match, a dispute, lost events)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from support import ROOT
from support.sam import translated

RUNBOOK = ROOT / "docs" / "runbook.md"
LINK = re.compile(r"Runbook: docs/runbook\.md#([a-z0-9-]+)")
PARTS = ("**What it means**", "**Look at**", "**What to do**")
MONEY = ("paymentneedsrefund", "amountmismatch", "paymentdisputed", "eventsdeadletter")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def sections() -> dict[str, str]:
    """Anchor -> the text of its `## ` section, in document order."""
    found: dict[str, str] = {}
    current = None
    for line in RUNBOOK.read_text().splitlines():
        if line.startswith("## "):
            current = slug(line[3:])
            assert current not in found, f"two sections with the anchor #{current}"
            found[current] = ""
        elif current is not None:
            found[current] += line + "\n"
    return found


def alarms() -> dict[str, Any]:
    cfn = translated({"AlarmEmail": "oncall@example.com"})
    return {n: r["Properties"] for n, r in cfn["Resources"].items() if r["Type"] == "AWS::CloudWatch::Alarm"}


@pytest.mark.parametrize("alarm", sorted(alarms()))
def test_the_alarm_names_a_runbook_section_that_exists(alarm):
    description = alarms()[alarm].get("AlarmDescription")
    assert isinstance(description, str), f"{alarm}: no literal AlarmDescription"
    match = LINK.search(description)
    assert match, f"{alarm}: its description names no runbook section ({description!r})"
    assert match.group(1) in sections(), f"{alarm}: docs/runbook.md has no section #{match.group(1)}"
    assert len(description) <= 1024  # CloudWatch's limit for AlarmDescription


def test_every_runbook_section_says_what_it_means_what_to_look_at_and_what_to_do():
    for anchor, text in sections().items():
        missing = [part for part in PARTS if part not in text]
        assert not missing, f"#{anchor} lacks {missing}"


def test_the_money_alarms_come_first():
    order = list(sections())
    assert order[: len(MONEY)] == list(MONEY)


def test_the_anchor_rule_is_githubs():
    assert slug("PaymentNeedsRefund") == "paymentneedsrefund"
    assert slug("Function errors (any function)") == "function-errors-any-function"
