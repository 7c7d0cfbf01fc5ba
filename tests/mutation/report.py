"""The campaign's score, its text report and its JSON report (pure: tested in tests/tooling)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

THRESHOLD = 0.90  # issue 18: the simulation alone kills at least 90% of the mutants not argued equivalent


@dataclass
class Outcome:
    """One mutant's run: its verdicts and, if it did not even compile or import, why."""

    id: str
    file: str
    line: int
    function: str
    operator: str
    occurrence: int
    diff: str
    simulation: dict[str, Any] | None = None  # killers.Verdict.to_json()
    tests: dict[str, Any] | None = None
    incompetent: str = ""  # "SyntaxError: ..." / "ImportError: ...": killed, counted apart
    seconds: float = 0.0

    @property
    def killed_by_simulation(self) -> bool:
        return bool(self.incompetent) or bool(self.simulation and self.simulation["killed"])

    @property
    def killed_by_tests(self) -> bool:
        return bool(self.incompetent) or bool(self.tests and self.tests["killed"])

    @property
    def killed(self) -> bool:
        return self.killed_by_simulation or self.killed_by_tests

    @property
    def status(self) -> str:
        if self.incompetent:
            return "incompetent"
        if self.killed_by_simulation:
            return "killed by simulation"
        if self.killed_by_tests:
            return "killed by tests"
        return "survived"

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "file": self.file,
            "line": self.line,
            "function": self.function,
            "operator": self.operator,
            "occurrence": self.occurrence,
            "status": self.status,
            "simulation": self.simulation,
            "tests": self.tests,
            "incompetent": self.incompetent,
            "seconds": round(self.seconds, 1),
            "diff": self.diff,
        }


@dataclass
class Score:
    total: int  # mutants run (not argued equivalent)
    by_simulation: int
    by_both: int
    by_tests: int | None  # when the tests ran on every mutant (--tests-for-all)
    incompetent: int
    timeouts: int
    survivors: list[Outcome] = field(default_factory=list)

    @property
    def simulation_ratio(self) -> float:
        return self.by_simulation / self.total if self.total else 1.0

    @property
    def met(self) -> bool:
        """Issue 18's done-when: the simulation alone >= 90%, simulation and tests kill all."""
        return self.simulation_ratio >= THRESHOLD and not self.survivors


def score(outcomes: Sequence[Outcome], tests_for_all: bool) -> Score:
    timeouts = sum(1 for o in outcomes for v in (o.simulation, o.tests) if v and v["killed"] and v["how"] == "timeout")
    return Score(
        total=len(outcomes),
        by_simulation=sum(o.killed_by_simulation for o in outcomes),
        by_both=sum(o.killed for o in outcomes),
        by_tests=sum(o.killed_by_tests for o in outcomes) if tests_for_all else None,
        incompetent=sum(bool(o.incompetent) for o in outcomes),
        timeouts=timeouts,
        survivors=[o for o in outcomes if not o.killed],
    )


def weighted(outcomes: Sequence[Outcome], population: Mapping[str, int]) -> tuple[float, float]:
    """The kill ratios (simulation alone, simulation+tests) estimated for the whole population: the
    sample takes at least one mutant of every file, so small files are over-represented; each run
    mutant stands for population[file] / (mutants run in that file)."""
    run: Counter[str] = Counter(o.file for o in outcomes)
    total = sim = both = 0.0
    for o in outcomes:
        weight = population.get(o.file, 0) / run[o.file]
        total += weight
        sim += weight * o.killed_by_simulation
        both += weight * o.killed
    return (sim / total, both / total) if total else (1.0, 1.0)


def percent(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "n/a"


def score_lines(s: Score) -> list[str]:
    lines = [
        f"simulation alone kills {s.by_simulation}/{s.total} ({percent(s.by_simulation, s.total)}) of mutants "
        f"not argued equivalent; simulation+tests kill {s.by_both}/{s.total} ({percent(s.by_both, s.total)})",
    ]
    if s.by_tests is not None:
        lines.append(f"tests alone kill {s.by_tests}/{s.total} ({percent(s.by_tests, s.total)})")
    lines.append(
        f"  (counted as killed: {s.incompetent} incompetent mutants that do not compile or import, "
        f"{s.timeouts} killer runs stopped at their time limit)"
    )
    if s.incompetent:
        competent = s.total - s.incompetent
        sim, both = s.by_simulation - s.incompetent, s.by_both - s.incompetent
        lines.append(
            f"  without the incompetent ones: simulation {sim}/{competent} ({percent(sim, competent)}), "
            f"simulation+tests {both}/{competent} ({percent(both, competent)})"
        )
    return lines


def weighted_lines(outcomes: Sequence[Outcome], meta: Mapping[str, Any]) -> list[str]:
    population = meta.get("population_per_file")
    if not population or not outcomes or meta.get("partial") or meta.get("sample_rule") == "the whole population":
        return []
    sim, both = weighted(outcomes, population)
    return [
        f"  weighted by each file's population (the sample's estimate for all {meta['population']} mutants): "
        f"simulation {sim:.1%}, simulation+tests {both:.1%}"
    ]


def how_killed(outcomes: Sequence[Outcome]) -> list[str]:
    """Which part of each killer did the killing: scenarios by name, seeds by number."""
    scenarios: Counter[str] = Counter()
    seeds: list[int] = []
    other: Counter[str] = Counter()
    tests: Counter[str] = Counter()
    for o in outcomes:
        v = o.simulation
        if o.incompetent:
            continue
        if v and v["killed"]:
            if v["how"] == "scenario":
                scenarios[v["where"]] += 1
            elif v["how"] in ("seed", "harness error") and v["where"].startswith("seed "):
                seeds.append(int(v["where"].split()[1]))
            else:
                other[f"simulation {v['how']}"] += 1
        elif o.tests and o.tests["killed"]:
            tests[o.tests["how"]] += 1
    lines = []
    if scenarios:
        lines.append(
            f"  by a scenario: {sum(scenarios.values())} ("
            + ", ".join(f"{c} {n}" for n, c in sorted(scenarios.items(), key=lambda i: (-i[1], i[0])))
            + ")"
        )
    if seeds:
        lines.append(f"  by a seed, scenarios having held: {len(seeds)} (first failing seeds: {sorted(seeds)})")
    for what, count in sorted(other.items()):
        lines.append(f"  by a {what}: {count}")
    if tests:
        lines.append(
            "  by the tests only, the simulation having held: "
            + ", ".join(f"{c} ({how})" for how, c in sorted(tests.items()))
        )
    return lines


def survivor_lines(survivors: Sequence[Outcome]) -> list[str]:
    lines = []
    for o in survivors:
        ran = " / ".join(v["ran"] for v in (o.simulation, o.tests) if v and v.get("ran"))
        lines.append(f"- {o.file}:{o.line} {o.function} [{o.operator}]")
        lines.append(f"  id: {o.id}")
        if ran:
            lines.append(f"  held: {ran}")
        lines.extend(f"    {line}" for line in o.diff.splitlines() if not line.startswith(("---", "+++")))
    return lines


def text(meta: Mapping[str, Any], outcomes: Sequence[Outcome], s: Score) -> str:
    lines = [
        "",
        f"Mutation testing of the money code ({meta['tool']}), {meta['source']}",
        f"population: {meta['population']} mutants in {meta['files']} files (enumerated but no mutants: "
        + (", ".join(f"{n} {why}" for why, n in sorted(meta["left_out"].items())) or "none")
        + ")",
        f"sample: {meta['sample']} ({meta['sample_rule']}); {meta['equivalent_in_sample']} of them argued equivalent "
        f"(tests/mutation/equivalent.toml): {s.total} run"
        + (
            f", {meta['not_run']} not run (the time budget of {meta['budget_minutes']} min was spent: they are "
            "not counted; the score is the run ones')"
            if meta.get("not_run")
            else ""
        ),
        f"simulation: the scenarios, then seeds 0-{meta['seeds'] - 1} until the first violation; "
        f"tests: {meta['tests_rule']}",
        f"wall time: {meta['wall_seconds'] / 60:.1f} min (baseline {meta['baseline_seconds'] / 60:.1f} min)"
        + (
            f"; load average {meta['load_average'][0]} at the start, {meta['load_average'][1]} at the end"
            if meta.get("load_average")
            else ""
        ),
        "",
        *score_lines(s),
        *weighted_lines(outcomes, meta),
        *how_killed(outcomes),
    ]
    for unmatched in meta.get("unmatched_equivalents", []):
        lines.append(f"WARNING: equivalent.toml names {unmatched}, which matches no mutant any more")
    lines.append("")
    if s.survivors:
        lines.append(
            f"{len(s.survivors)} survivors (kill each, or argue it equivalent in tests/mutation/equivalent.toml):"
        )
        lines.extend(survivor_lines(s.survivors))
    else:
        lines.append("no survivors")
    verdict = "met" if s.met else "NOT met"
    if meta.get("partial"):
        verdict += " on the mutants run (a partial run: the bar is judged on a whole campaign)"
    lines.append(f"\nissue 18's bar (simulation alone >= {THRESHOLD:.0%}, simulation+tests kill all): {verdict}")
    return "\n".join(lines) + "\n"


def json_report(meta: Mapping[str, Any], outcomes: Sequence[Outcome], s: Score) -> dict[str, Any]:
    return {
        **meta,
        "score": {
            "run": s.total,
            "killed_by_simulation": s.by_simulation,
            "killed_by_simulation_or_tests": s.by_both,
            "killed_by_tests": s.by_tests,
            "incompetent": s.incompetent,
            "timeouts": s.timeouts,
            "survived": len(s.survivors),
            "simulation_ratio": round(s.simulation_ratio, 4),
            "met": s.met,
        },
        "survivors": [o.id for o in s.survivors],
        "mutants": [o.to_json() for o in outcomes],
    }
