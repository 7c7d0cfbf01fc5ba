"""The two killers of a mutant, run as subprocesses in the campaign's copy of the repository.

1. The simulation: the scripted scenarios (`python -m simulation --scenario all`), then random seeds
   in seed order until the first one that breaks an invariant (`--seeds CAP --first-violation`).
2. The test suite: pytest, `-x`, on the tests that ran the mutated line (per-test coverage of the
   unmutated code, the fastest first).

A killer that runs past its time limit has killed the mutant ("timeout"). Every subprocess runs in
a session of its own and its whole process group is killed on a timeout or an interrupt, so no
mutated code keeps running after the campaign moved on or stopped.

Parsing of the killers' output is pure (tested in tests/tooling)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

SITE_DIR = ".mutants-site"  # in the copy: sitecustomize.py defines CosmicRayTestingException


@dataclass
class Verdict:
    """What one killer did to one mutant."""

    killer: str  # "simulation" or "tests"
    killed: bool
    how: str = ""  # "scenario", "seed", "test", "timeout", "crash", "harness error"; "" when it survived
    where: str = ""  # the scenario's name, "seed 17 (gateway)", the test's node id
    detail: str = ""  # the invariant and what it saw, or the test's failure line
    seconds: float = 0.0
    ran: str = ""  # what ran: "15 scenarios, 40 seeds", "123 tests"

    def to_json(self) -> dict[str, object]:
        return asdict(self)


@dataclass
class Run:
    returncode: int | None  # None: stopped at its time limit
    output: str
    seconds: float


def run(command: Sequence[str], cwd: Path, env: Mapping[str, str], timeout: float) -> Run:
    started = time.monotonic()
    process = subprocess.Popen(
        list(command),
        cwd=cwd,
        env=dict(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        start_new_session=True,
    )
    try:
        output, _ = process.communicate(timeout=timeout)
        return Run(process.returncode, output, time.monotonic() - started)
    except subprocess.TimeoutExpired:
        _kill_group(process)
        output, _ = process.communicate()
        return Run(None, output or "", time.monotonic() - started)
    except BaseException:
        _kill_group(process)
        process.wait()
        raise


def _kill_group(process: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


# ------------------------------------------------------------------ the simulation

SCENARIO_FAILS = re.compile(r"^(?P<name>\S+) \(defect [^)]*\): FAILS")
SCENARIO_ROW = re.compile(r"^\S+ \(defect [^)]*\): (holds|FAILS)", re.MULTILINE)


def scenario_verdict(run_: Run) -> Verdict:
    """The verdict of `python -m simulation --scenario all` on a mutant."""
    ran = f"{len(SCENARIO_ROW.findall(run_.output))} scenarios"
    if run_.returncode is None:
        return Verdict("simulation", True, "timeout", "scenarios", _tail(run_.output), run_.seconds, ran)
    if run_.returncode == 0:
        return Verdict("simulation", False, seconds=run_.seconds, ran=ran)
    lines = run_.output.splitlines()
    for number, line in enumerate(lines):
        found = SCENARIO_FAILS.match(line)
        if found:
            following = lines[number + 1].strip() if number + 1 < len(lines) else ""
            how = "harness error" if following.startswith("HARNESS ERROR") else "scenario"
            return Verdict("simulation", True, how, found["name"], following[:400], run_.seconds, ran)
    return Verdict("simulation", True, "crash", "scenarios", _tail(run_.output), run_.seconds, ran)


def seeds_verdict(run_: Run, report: Mapping[str, Any] | None, cap: int) -> Verdict:
    """The verdict of `python -m simulation --seeds CAP --first-violation --report F` on a mutant."""
    rows = report.get("seeds", []) if report is not None else []
    assert isinstance(rows, list)
    ran = f"{len(rows)} of {cap} seeds" if rows else f"seeds (cap {cap})"
    if run_.returncode is None:
        return Verdict("simulation", True, "timeout", f"seeds (cap {cap})", _tail(run_.output), run_.seconds, ran)
    if run_.returncode == 0:
        return Verdict("simulation", False, seconds=run_.seconds, ran=ran)
    for row in sorted(rows, key=lambda r: r["seed"]):
        where = f"seed {row['seed']} ({row['family']})"
        if row.get("violations"):
            first = row["violations"][0]
            detail = f"{first['invariant']}: {first['detail']}"[:400]
            return Verdict("simulation", True, "seed", where, detail, run_.seconds, ran)
        if row.get("error"):
            return Verdict("simulation", True, "harness error", where, str(row["error"])[:400], run_.seconds, ran)
    return Verdict("simulation", True, "crash", f"seeds (cap {cap})", _tail(run_.output), run_.seconds, ran)


def simulation_commands(python: str, cap: int, jobs: int, report: Path) -> list[list[str]]:
    return [
        [python, "-m", "simulation", "--scenario", "all"],
        [
            python,
            "-m",
            "simulation",
            "--seeds",
            str(cap),
            "--jobs",
            str(jobs),
            "--first-violation",
            "--report",
            str(report),
        ],
    ]


def simulation_env(base: Mapping[str, str]) -> dict[str, str]:
    # PYTHONHASHSEED=0 up front: `python -m simulation` would otherwise start itself again with it.
    return {**killer_env(base), "PYTHONPATH": os.pathsep.join(["tests", SITE_DIR]), "PYTHONHASHSEED": "0"}


def killer_env(base: Mapping[str, str]) -> dict[str, str]:
    """Every killer's environment: the builtin cosmic-ray's ExceptionReplacer names (SITE_DIR's
    sitecustomize), and no bytecode written (a mutated file and the next mutant's can share a size
    and an mtime, and a stale .pyc would run the wrong mutant)."""
    return {**base, "PYTHONPATH": SITE_DIR, "PYTHONDONTWRITEBYTECODE": "1"}


def read_report(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


# ------------------------------------------------------------------ the tests

# Left out of the tests killer (docs/mutation-testing.md says why): tests/build runs the `sam build`
# artefacts, which are not rebuilt from the mutated source; tests/simulation is the other killer;
# tests/tooling tests this tool. tests/e2e runs the handlers in the local server's subprocesses,
# where per-test coverage is not attributed: added only with --e2e.
TEST_PATHS = ("tests/unit", "tests/integration")
E2E_PATHS = ("tests/e2e",)
DURATION = re.compile(r"^(?P<seconds>\d+\.\d+)s (?:setup|call|teardown)\s+(?P<node>\S.*?)\s*$", re.MULTILINE)


def pytest_command(python: str, args_file: Path, test_timeout: int, first_failure: bool = True) -> list[str]:
    return [
        python,
        "-m",
        "pytest",
        "-q",
        "-rfE",
        *(["-x"] if first_failure else []),
        f"--timeout={test_timeout}",
        "-p",
        "no:cacheprovider",
        f"@{args_file}",
    ]


def tests_verdict(run_: Run, count: int) -> Verdict:
    ran = f"{count} tests"
    if run_.returncode is None:
        return Verdict("tests", True, "timeout", "pytest", _tail(run_.output), run_.seconds, ran)
    if run_.returncode == 0:
        return Verdict("tests", False, seconds=run_.seconds, ran=ran)
    failed = failures(run_.output)
    if failed:
        node, why = next(iter(failed.items()))
        return Verdict("tests", True, "test", node, why[:400], run_.seconds, ran)
    return Verdict("tests", True, "crash", "pytest", _tail(run_.output), run_.seconds, ran)


def failures(output: str) -> dict[str, str]:
    """pytest -rfE's short summary: failed or erroring node ids, in order, with their first line.
    A node id has no space outside its parameters' brackets, and those may hold spaces and " - "."""
    found = {}
    for line in output.splitlines():
        kind, _, rest = line.partition(" ")
        if kind not in ("FAILED", "ERROR") or not rest.startswith("tests/"):
            continue
        end = _node_end(rest)
        found[rest[:end]] = rest[end:].removeprefix(" - ").strip()
    return found


def _node_end(text: str) -> int:
    depth = 0
    for index, char in enumerate(text):
        if char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
        elif char == " " and depth <= 0:
            return index
    return len(text)


def durations(output: str) -> dict[str, float]:
    """Seconds per test (setup + call + teardown) from pytest's --durations=0 --durations-min=0."""
    total: dict[str, float] = defaultdict(float)
    for found in DURATION.finditer(output):
        total[found["node"]] += float(found["seconds"])
    return dict(total)


@dataclass
class CoverageMap:
    """Which tests ran which line of the money code (from `coverage json --show-contexts`)."""

    lines: dict[str, dict[int, set[str]]] = field(default_factory=dict)  # file -> line -> test node ids
    at_import: dict[str, set[int]] = field(default_factory=dict)  # lines run only while importing
    seconds: dict[str, float] = field(default_factory=dict)
    broken: set[str] = field(default_factory=set)  # tests that fail on the unmutated code

    @classmethod
    def from_coverage_json(cls, data: Mapping[str, object], root: Path) -> CoverageMap:
        mapping = cls()
        files = data.get("files", {})
        assert isinstance(files, dict)
        for name, report in files.items():
            path = os.path.relpath(Path(root, name), root).replace(os.sep, "/")
            contexts = report.get("contexts", {})
            by_line: dict[int, set[str]] = {}
            imported: set[int] = set()
            for line, names in contexts.items():
                tests = {node_of_context(context) for context in names} - {""}
                if tests:
                    by_line[int(line)] = tests
                else:
                    imported.add(int(line))
            mapping.lines[path] = by_line
            mapping.at_import[path] = imported
        return mapping

    def select(self, path: str, lines: Iterable[int]) -> list[str]:
        """The tests to run against a mutant on these lines, fastest first. A line run only while the
        module was imported (module level) affects every test that ran the file."""
        by_line = self.lines.get(path, {})
        wanted: set[str] = set()
        for line in lines:
            wanted |= by_line.get(line, set())
            if line in self.at_import.get(path, set()):
                wanted |= {test for tests in by_line.values() for test in tests}
        wanted -= self.broken
        return sorted(wanted, key=lambda test: (self.seconds.get(test, 0.0), test))

    def to_json(self) -> dict[str, object]:
        return {
            "lines": {f: {str(n): sorted(t) for n, t in ls.items()} for f, ls in self.lines.items()},
            "at_import": {f: sorted(ls) for f, ls in self.at_import.items()},
            "seconds": self.seconds,
            "broken": sorted(self.broken),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> CoverageMap:
        lines = data["lines"]
        at_import = data["at_import"]
        seconds = data["seconds"]
        broken = data["broken"]
        assert isinstance(lines, dict) and isinstance(at_import, dict)
        assert isinstance(seconds, dict) and isinstance(broken, list)
        return cls(
            {f: {int(n): set(t) for n, t in ls.items()} for f, ls in lines.items()},
            {f: set(ls) for f, ls in at_import.items()},
            {str(k): float(v) for k, v in seconds.items()},
            set(broken),
        )


def node_of_context(context: str) -> str:
    """pytest-cov's --cov-context=test names a context "<node id>|run" (or |setup, |teardown)."""
    return context.rsplit("|", 1)[0] if "|" in context else context


def _tail(output: str, lines: int = 12) -> str:
    return "\n".join(output.strip().splitlines()[-lines:])[-1500:]
