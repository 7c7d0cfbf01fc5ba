"""A small evaluator of identity-based IAM policies: is `action` on `resource` allowed?

AWS's rules it implements (IAM User Guide, "Policy evaluation logic" and "IAM JSON policy
elements: Action / Resource / NotAction / NotResource"):
- an explicit Deny wins; otherwise an Allow is needed; otherwise the request is implicitly denied;
- action names are case-insensitive, ARNs are case-sensitive;
- `*` matches any run of characters, `?` exactly one; in an ARN a `*` stays within its
  ':'-separated segment unless it is the segment's last character;
- `NotAction` / `NotResource` match everything except what they list.
Conditions are refused (ValueError): our policies use none, and silently ignoring one would
make the verdict wrong.

Why not an existing evaluator: moto's `moto.iam.access_control.IAMPolicy` (already installed)
turns the pattern into a regular expression with only `*` translated, so our secrets'
`...:secret:<name>-??????` is read as regex quantifiers, `.` matches anything, and actions are
compared case-sensitively; policyuniverse parses and expands policies but does not evaluate a
request; the maintained simulators (e.g. @cloud-copilot/iam-simulate) are Node packages, and
AWS's own simulator (iam:SimulateCustomPolicy) needs an AWS account.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from typing import Any


@functools.cache
def _pattern(pattern: str, arn: bool) -> re.Pattern[str]:
    parts = []
    for index, char in enumerate(pattern):
        if char == "*":
            last_of_segment = index + 1 == len(pattern) or pattern[index + 1] == ":"
            parts.append("[^:]*" if arn and not last_of_segment else ".*")
        elif char == "?":
            parts.append(".")
        else:
            parts.append(re.escape(char))
    return re.compile("^" + "".join(parts) + "$", re.DOTALL if arn else re.IGNORECASE | re.DOTALL)


def matches_action(pattern: str, action: str) -> bool:
    return _pattern(pattern, False).match(action) is not None


def matches_arn(pattern: str, arn: str) -> bool:
    return _pattern(pattern, True).match(arn) is not None


def _listed(statement: Mapping[str, Any], key: str) -> list[str]:
    value = statement[key]
    return [value] if isinstance(value, str) else list(value)


def statement_applies(statement: Mapping[str, Any], action: str, resource: str) -> bool:
    if "Condition" in statement:
        raise ValueError(f"conditions are not evaluated here: {statement}")
    if "Action" in statement:
        action_ok = any(matches_action(p, action) for p in _listed(statement, "Action"))
    else:
        action_ok = not any(matches_action(p, action) for p in _listed(statement, "NotAction"))
    if "Resource" in statement:
        resource_ok = any(matches_arn(p, resource) for p in _listed(statement, "Resource"))
    else:
        resource_ok = not any(matches_arn(p, resource) for p in _listed(statement, "NotResource"))
    return action_ok and resource_ok


def is_allowed(statements: Iterable[Mapping[str, Any]], action: str, resource: str) -> bool:
    """AWS's decision for one request against identity-based policy statements."""
    allowed = False
    for statement in statements:
        if statement_applies(statement, action, resource):
            if statement["Effect"] == "Deny":
                return False
            allowed = allowed or statement["Effect"] == "Allow"
    return allowed


def grants(statements: Iterable[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """(action, resource pattern) pairs the Allow statements grant, as written (for least privilege)."""
    pairs = []
    for statement in statements:
        if statement["Effect"] != "Allow" or "Action" not in statement or "Resource" not in statement:
            continue
        for action in _listed(statement, "Action"):
            for resource in _listed(statement, "Resource"):
                pairs.append((action, resource))
    return pairs
