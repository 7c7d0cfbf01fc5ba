"""`make mutants`: a mutation campaign over the money code with cosmic-ray (docs/mutation-testing.md).

Runs in cosmic-ray's own venv (.tools/cosmic-ray); the killers run in the project's .venv, in a
throw-away copy of the working tree (.mutants/work), never in the developer's files:

1. copy the working tree (tracked and untracked files, not the ignored ones) to .mutants/work;
2. `cosmic-ray init`'s enumeration of the money code into .mutants/session.sqlite (the population);
3. stable ids, the annotation filter, the deterministic sample, the argued equivalents (plan.py);
4. the baseline on the unmutated copy: the scenarios and the capped seeds must hold; per-test
   coverage of the money code (cached in .mutants/ by the content of the copy);
5. per mutant: cosmic-ray's `use_mutation` writes it into the copy (and restores the file when
   the block ends, also on an interrupt); the simulation kills it or not, then (if it held) the
   tests that ran the mutated line; the result goes to the session database as well;
6. the score and the survivors on stdout, everything in .mutants/report.json.
"""

from __future__ import annotations

import argparse
import difflib
import fnmatch
import glob
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from cosmic_ray.commands.init import init as cosmic_ray_init
from cosmic_ray.mutating import mutate_code, use_mutation
from cosmic_ray.plugins import get_operator
from cosmic_ray.work_db import WorkDB, use_db
from cosmic_ray.work_item import TestOutcome, WorkerOutcome, WorkResult

from . import killers, plan
from .report import Outcome, json_report, score, text

ROOT = Path(__file__).resolve().parents[2]
STATE = ROOT / ".mutants"
EQUIVALENTS = ROOT / "tests" / "mutation" / "equivalent.toml"
NOT_IN_COVERAGE_KEY = (".venv", ".tools", killers.SITE_DIR, "tests/mutation", "tests/tooling", "docs")
DEFAULT_SAMPLE = 40
DEFAULT_SEEDS = 32
# The machine is shared: with other sessions' tests and simulations beside it, the same campaign
# takes two to three times as long. Past the budget no mutant is started (a survivor takes up to
# about LAST_START minutes), so `make mutants` ends within the hour whatever the load; the mutants
# run in an order that keeps every file represented however many of them were run.
DEFAULT_BUDGET_MINUTES = 57
LAST_START = 3
TOOL = "cosmic-ray " + __import__("importlib.metadata").metadata.version("cosmic-ray")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make mutants", description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sample", default=str(DEFAULT_SAMPLE), help="how many mutants to draw, or 'all'")
    parser.add_argument("--seeds", type=int, default=DEFAULT_SEEDS, help="the cap on seeds per mutant")
    parser.add_argument("--jobs", type=int, default=2, help="the simulation's worker processes")
    parser.add_argument("--only", action="append", default=[], help="run only mutants whose id matches (glob)")
    parser.add_argument("--files", action="append", default=[], help="mutate only these files (glob)")
    parser.add_argument("--survivors", action="store_true", help="run only the survivors of the last report")
    parser.add_argument(
        "--tests-for-all",
        action="store_true",
        help="run the tests on every mutant, not only on those the simulation misses",
    )
    parser.add_argument("--e2e", action="store_true", help="add tests/e2e to the tests run against each mutant")
    parser.add_argument(
        "--simulation-only",
        action="store_true",
        help="run only the simulation killer (no coverage baseline, no tests): the simulation's score, quickly",
    )
    parser.add_argument("--list", action="store_true", help="print the sample's ids and stop")
    parser.add_argument(
        "--budget-minutes",
        type=int,
        default=DEFAULT_BUDGET_MINUTES,
        help="start no mutant after this many minutes less 3 (0: no limit); the rest are reported as not run",
    )
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)  # a `kill` restores the mutated file, as Ctrl-C does

    began = time.monotonic()
    load_before = os.getloadavg()[1]
    python = str(ROOT / ".venv" / "bin" / "python")
    work = STATE / "work"
    print(f"copying the working tree to {work.relative_to(ROOT)}", flush=True)
    source = copy_tree(ROOT, work)
    os.chdir(work)

    mutants, left_out, files = population(STATE / "session.sqlite", args.files)
    equivalents = plan.load_equivalents(EQUIVALENTS)
    unmatched = plan.unmatched_equivalents(equivalents, mutants)
    size = None if args.sample == "all" else int(args.sample)
    sample = plan.draw(mutants, size)
    chosen = plan.interleave([m for m in sample if m.id not in equivalents])
    chosen = select(chosen, args)
    chosen, unmade = makeable(chosen)
    for mutant, why in unmade:
        print(f"WARNING: cosmic-ray cannot make {mutant.id} ({why}): not run")
    print(
        f"population {len(mutants)} mutants in {files} files (left out: {describe(left_out)}); "
        f"sample {len(sample)}; {len(sample) - len([m for m in sample if m.id not in equivalents])} argued "
        f"equivalent; running {len(chosen)}",
        flush=True,
    )
    for entry in unmatched:
        print(f"WARNING: tests/mutation/equivalent.toml names {entry}, which matches no mutant any more")
    if args.list:
        print("\n".join(f"{m.id}  ({m.file}:{m.line})" for m in chosen))
        return 0

    baseline_started = time.monotonic()
    timeouts, coverage = baseline(python, args, source)
    baseline_seconds = time.monotonic() - baseline_started

    outcomes = []
    with use_db(str(STATE / "session.sqlite"), WorkDB.Mode.open) as db:
        chosen_jobs = {m.site.job_id for m in chosen}
        skipped = [item.job_id for item in db.pending_work_items if item.job_id not in chosen_jobs]
        if skipped:
            db.set_multiple_results(skipped, WorkResult(worker_outcome=WorkerOutcome.SKIPPED, output="not sampled"))
        for number, mutant in enumerate(chosen, 1):
            if args.budget_minutes and time.monotonic() - began > (args.budget_minutes - LAST_START) * 60:
                not_run = chosen[number - 1 :]
                print(f"the time budget ({args.budget_minutes} min) is spent: {len(not_run)} mutants not run")
                db.set_multiple_results(
                    [m.site.job_id for m in not_run],
                    WorkResult(worker_outcome=WorkerOutcome.SKIPPED, output="time budget spent"),
                )
                break
            outcome = run_mutant(mutant, python, args, timeouts, coverage)
            outcomes.append(outcome)
            db.set_result(mutant.site.job_id, work_result(outcome))
            _progress(number, len(chosen), outcome, began)

    meta = {
        "tool": TOOL,
        "source": source,
        "population": len(mutants),
        "population_per_file": dict(Counter(m.file for m in mutants)),
        "files": files,
        "left_out": dict(left_out),
        "sample": len(sample),
        "sample_rule": sample_rule(size),
        "equivalent_in_sample": len(sample) - len([m for m in sample if m.id not in equivalents]),
        "not_run": len(chosen) - len(outcomes),
        "budget_minutes": args.budget_minutes,
        "equivalents": len(equivalents),
        "unmatched_equivalents": unmatched,
        "seeds": args.seeds,
        "jobs": args.jobs,
        "selection": {"only": args.only, "files": args.files, "survivors": args.survivors},
        "partial": bool(args.only or args.files or args.survivors or args.simulation_only),
        "tests_rule": tests_rule(args),
        "wall_seconds": round(time.monotonic() - began, 1),
        "baseline_seconds": round(baseline_seconds, 1),
        # The machine is shared: the 5-minute load average at the start and the end says how much
        # of it the campaign had (2 cores: a load of 2 is the campaign alone).
        "load_average": [round(load_before, 1), round(os.getloadavg()[1], 1)],
    }
    result = score(outcomes, args.tests_for_all)
    print(text(meta, outcomes, result))
    (STATE / "report.json").write_text(json.dumps(json_report(meta, outcomes, result), indent=1) + "\n")
    print(f"report: {(STATE / 'report.json').relative_to(ROOT)}; cosmic-ray's session: .mutants/session.sqlite")
    return 0 if result.met or (meta["partial"] and not result.survivors) else 1


def describe(left_out: Counter[str]) -> str:
    return ", ".join(f"{n} {why}" for why, n in sorted(left_out.items())) or "none"


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def sample_rule(size: int | None) -> str:
    if size is None:
        return "the whole population"
    return (
        f"deterministic: per file, the mutants with the lowest sha256('{plan.SAMPLE_SEED}', stable id); "
        f"at least one per file, the rest in proportion to each file's population"
    )


def tests_rule(args: argparse.Namespace) -> str:
    if args.simulation_only:
        return "not run (--simulation-only)"
    paths = [*killers.TEST_PATHS, *(killers.E2E_PATHS if args.e2e else ())]
    scope = "every mutant" if args.tests_for_all else "the mutants the simulation misses"
    return f"pytest -x on {scope}: the tests of {', '.join(paths)} that ran the mutated line, fastest first"


# ------------------------------------------------------------------ the copy and the population


def copy_tree(root: Path, work: Path) -> str:
    """A fresh copy of the working tree: what git tracks or would track, as it is on disk now (so a
    developer's uncommitted change is measured too). The venvs are linked, not copied. Returns a
    description of the source (commit, and whether the tree had changes)."""
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=root,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        origin = root / name
        if origin.is_file() and not origin.is_symlink():
            target = work / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, target)
    for venv in (".venv", ".tools"):
        (work / venv).symlink_to(root / venv)
    # cosmic-ray's ExceptionReplacer writes `except CosmicRayTestingException:` (a handler that
    # never matches) and leaves the name to be defined: the killers' interpreters get it as a builtin.
    site = work / killers.SITE_DIR
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        "import builtins\n\n\nclass CosmicRayTestingException(Exception):\n    pass\n\n\n"
        "builtins.CosmicRayTestingException = CosmicRayTestingException\n"
    )
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, check=False
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"], cwd=root, capture_output=True, text=True, check=False
    ).stdout.strip()
    return f"commit {head}" + (" with uncommitted changes" if dirty else "")


def money_files(patterns: Sequence[str]) -> list[str]:
    found: set[str] = set()
    for entry in plan.MONEY_CODE:
        if entry.endswith(".py"):
            found.update(glob.glob(entry))
        else:
            found.update(glob.glob(f"{entry}/**/*.py", recursive=True))
    chosen = sorted(f for f in found if not f.endswith("__init__.py"))
    if patterns:
        chosen = [f for f in chosen if any(fnmatch.fnmatch(f, p) for p in patterns)]
    return chosen


def population(db_path: Path, patterns: Sequence[str]) -> tuple[list[plan.Mutant], Counter[str], int]:
    """cosmic-ray's enumeration of the money code (its default operators), with stable ids."""
    files = money_files(patterns)
    with use_db(str(db_path), WorkDB.Mode.create) as db:
        cosmic_ray_init([Path(f) for f in files], db, {})
        items = list(db.work_items)
    sites = []
    for item in items:
        (spec,) = item.mutations
        sites.append(
            plan.Site(
                str(spec.module_path),
                spec.operator_name,
                spec.occurrence,
                tuple(spec.start_pos),
                tuple(spec.end_pos),
                item.job_id,
            )
        )
    sources = {f: plan.SourceIndex.of(Path(f).read_text()) for f in files}
    mutants, left_out = plan.filter_sites(plan.stable_ids(sites, sources), sources)
    # Recorded as skipped, so cosmic-ray's own reports (cr-report) agree with ours.
    kept = {m.site.job_id for m in mutants}
    with use_db(str(db_path), WorkDB.Mode.open) as db:
        dropped = [s.job_id for s in sites if s.job_id not in kept]
        if dropped:
            db.set_multiple_results(dropped, WorkResult(worker_outcome=WorkerOutcome.SKIPPED, output="not a mutant"))
    return mutants, left_out, len(files)


def makeable(chosen: list[plan.Mutant]) -> tuple[list[plan.Mutant], list[tuple[plan.Mutant, str]]]:
    """cosmic-ray 8.7's ExceptionReplacer fails on some handlers (a dotted name in a tuple): such a
    mutant cannot be made, and is left out with a warning."""
    ok, unmade = [], []
    for mutant in chosen:
        try:
            made = mutate_code(
                Path(mutant.file).read_text(), get_operator(mutant.site.operator)(), mutant.site.occurrence
            )
        except Exception as exc:
            unmade.append((mutant, f"{type(exc).__name__}: {exc}"))
            continue
        if made is None:
            unmade.append((mutant, "no mutation at this occurrence"))
        else:
            ok.append(mutant)
    return ok, unmade


def select(chosen: list[plan.Mutant], args: argparse.Namespace) -> list[plan.Mutant]:
    if args.survivors:
        if not (STATE / "report.json").exists():
            sys.exit("--survivors: no .mutants/report.json yet (run make mutants first)")
        last = json.loads((STATE / "report.json").read_text())
        wanted = set(last["survivors"])
        chosen = [m for m in chosen if m.id in wanted]
    if args.only:
        chosen = [m for m in chosen if any(fnmatch.fnmatch(m.id, p) for p in args.only)]
    return chosen


# ------------------------------------------------------------------ the baseline


def baseline(python: str, args: argparse.Namespace, source: str) -> tuple[dict[str, float], killers.CoverageMap]:
    """The unmutated copy must pass what the mutants are judged by; this also sets the time limits."""
    env = killers.simulation_env(os.environ)
    scenarios_cmd, seeds_cmd = killers.simulation_commands(python, args.seeds, args.jobs, STATE / "seeds.json")
    print("baseline: the scenarios and the capped seeds on the unmutated code", flush=True)
    scenarios = killers.run(scenarios_cmd, Path.cwd(), env, 900)
    if scenarios.returncode != 0:
        sys.exit(f"the scenarios fail on the unmutated code; fix that first:\n{scenarios.output[-3000:]}")
    seeds = killers.run(seeds_cmd, Path.cwd(), env, 3600)
    if seeds.returncode != 0:
        sys.exit(f"seeds 0-{args.seeds - 1} fail on the unmutated code; fix that first:\n{seeds.output[-3000:]}")
    print(f"  scenarios {scenarios.seconds:.0f}s, {args.seeds} seeds {seeds.seconds:.0f}s", flush=True)
    timeouts = {
        "scenarios": max(60.0, 4 * scenarios.seconds),
        "seeds": max(120.0, 3 * seeds.seconds),
    }
    return timeouts, killers.CoverageMap() if args.simulation_only else coverage_map(python, args)


def coverage_map(python: str, args: argparse.Namespace) -> killers.CoverageMap:
    paths = [*killers.TEST_PATHS, *(killers.E2E_PATHS if args.e2e else ())]
    digest = hashlib.sha256()
    for name in sorted(glob.glob("**/*", recursive=True)):
        # What the tests run and read; not this tool, its equivalents file nor the docs.
        if Path(name).is_file() and not name.startswith(NOT_IN_COVERAGE_KEY) and not name.endswith(".md"):
            digest.update(name.encode() + b"\0" + Path(name).read_bytes())
    digest.update(" ".join(paths).encode())
    cached = STATE / f"coverage-{digest.hexdigest()[:16]}.json"
    if cached.exists():
        print(f"baseline: per-test coverage from {cached.relative_to(ROOT)}", flush=True)
        return killers.CoverageMap.from_json(json.loads(cached.read_text()))
    print(f"baseline: per-test coverage of the money code by {', '.join(paths)} (cached once made)", flush=True)
    with tempfile.TemporaryDirectory() as scratch:
        data = Path(scratch, "coverage")
        env = {**killers.killer_env(os.environ), "COVERAGE_FILE": str(data)}
        command = [
            python, "-m", "pytest", *paths, "-q", "-rfE", "-p", "no:cacheprovider",
            "--cov=layers/payments/halum_payments", "--cov=functions", "--cov-context=test", "--cov-report=",
            "--durations=0", "--durations-min=0",
        ]  # fmt: skip
        run = killers.run(command, Path.cwd(), env, 3600)
        exported = Path(scratch, "coverage.json")
        killers.run(
            [python, "-m", "coverage", "json", "--show-contexts", f"--data-file={data}", "-o", str(exported)],
            Path.cwd(),
            env,
            600,
        )
        mapping = killers.CoverageMap.from_coverage_json(json.loads(exported.read_text()), Path.cwd())
    mapping.seconds = killers.durations(run.output)
    mapping.broken = set(killers.failures(run.output))
    print(f"  {len(mapping.seconds)} tests in {run.seconds:.0f}s", flush=True)
    for test in sorted(mapping.broken):
        print(f"  WARNING: {test} fails on the unmutated code: left out of every selection")
    cached.write_text(json.dumps(mapping.to_json()))
    return mapping


# ------------------------------------------------------------------ one mutant


def run_mutant(
    mutant: plan.Mutant,
    python: str,
    args: argparse.Namespace,
    timeouts: dict[str, float],
    coverage: killers.CoverageMap,
) -> Outcome:
    started = time.monotonic()
    site = mutant.site
    operator = get_operator(site.operator)()
    outcome = Outcome(
        mutant.id, mutant.file, mutant.line, mutant.function, plan.short_operator(site.operator), site.occurrence, ""
    )
    with use_mutation(Path(site.path), operator, site.occurrence) as (original, mutated):
        if mutated is None:
            raise RuntimeError(f"cosmic-ray made no mutation for {mutant.id}")
        outcome.diff = diff(original, mutated, site.path)
        try:
            compile(mutated, site.path, "exec")
        except SyntaxError as exc:
            outcome.incompetent = f"SyntaxError: {exc}"
        if not outcome.incompetent:
            outcome.simulation = simulation(python, args, timeouts).to_json()
            if outcome.simulation["how"] in ("crash", "harness error"):
                outcome.incompetent = import_error(python, site.path)
        wanted = args.tests_for_all or not outcome.killed_by_simulation
        if not outcome.incompetent and wanted and not args.simulation_only:
            outcome.tests = tests(python, mutant, coverage, args).to_json()
    outcome.seconds = time.monotonic() - started
    return outcome


def simulation(python: str, args: argparse.Namespace, timeouts: dict[str, float]) -> killers.Verdict:
    env = killers.simulation_env(os.environ)
    report = STATE / "seeds.json"
    report.unlink(missing_ok=True)
    scenarios_cmd, seeds_cmd = killers.simulation_commands(python, args.seeds, args.jobs, report)
    verdict = killers.scenario_verdict(killers.run(scenarios_cmd, Path.cwd(), env, timeouts["scenarios"]))
    if verdict.killed:
        return verdict
    seeds = killers.seeds_verdict(
        killers.run(seeds_cmd, Path.cwd(), env, timeouts["seeds"]), killers.read_report(report), args.seeds
    )
    seeds.seconds += verdict.seconds
    seeds.ran = f"{verdict.ran}, {seeds.ran}"
    return seeds


def tests(python: str, mutant: plan.Mutant, coverage: killers.CoverageMap, args: argparse.Namespace) -> killers.Verdict:
    first, last = mutant.lines
    selected = coverage.select(mutant.file, range(first, last + 1))
    if args.e2e:
        selected += list(killers.E2E_PATHS)
    if not selected:
        return killers.Verdict("tests", False, detail="no test runs this line", ran="0 tests")
    args_file = STATE / "tests.args"
    args_file.write_text("\n".join(selected) + "\n")
    budget = 60 + 3 * sum(coverage.seconds.get(t, 1.0) for t in selected) + (600 if args.e2e else 0)
    env = killers.killer_env(os.environ)
    run = killers.run(killers.pytest_command(python, args_file, 120), Path.cwd(), env, budget)
    return killers.tests_verdict(run, len(selected))


def import_error(python: str, path: str) -> str:
    """Why a mutated layer module does not import ("" if it does: then the kill was behaviour)."""
    parts = Path(path).with_suffix("").parts
    if parts[:2] != ("layers", "payments"):
        return ""  # a handler imports only under its function's environment: the simulation judged it
    module = ".".join(parts[2:])
    env = {**killers.killer_env(os.environ), "PYTHONPATH": os.pathsep.join([killers.SITE_DIR, "layers/payments"])}
    run = killers.run([python, "-c", f"import {module}"], Path.cwd(), env, 120)
    if run.returncode == 0:
        return ""
    return (run.output.strip().splitlines() or ["import failed"])[-1][:300]


def diff(original: str, mutated: str, path: str) -> str:
    return "\n".join(
        difflib.unified_diff(
            original.splitlines(), mutated.splitlines(), fromfile=f"a/{path}", tofile=f"b/{path}", n=1, lineterm=""
        )
    )


def work_result(outcome: Outcome) -> WorkResult:
    if outcome.incompetent:
        test_outcome = TestOutcome.INCOMPETENT
    else:
        test_outcome = TestOutcome.KILLED if outcome.killed else TestOutcome.SURVIVED
    return WorkResult(
        worker_outcome=WorkerOutcome.NORMAL,
        test_outcome=test_outcome,
        output=json.dumps(outcome.to_json(), indent=1),
        diff=outcome.diff,
    )


def _progress(number: int, total: int, outcome: Outcome, began: float) -> None:
    elapsed = time.monotonic() - began
    verdict = next((v for v in (outcome.simulation, outcome.tests) if v and v["killed"]), None)
    how = f" ({verdict['how']}: {verdict['where']})" if verdict else ""
    print(
        f"[{number}/{total}] {outcome.status}{how} {outcome.seconds:.0f}s  {outcome.file}:{outcome.line} "
        f"{outcome.operator}  | {elapsed / 60:.1f} min",
        flush=True,
    )


def entry() -> None:
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        # use_mutation's `finally` has put the file back; the copy is rebuilt by the next run anyway.
        sys.exit("interrupted: the mutated file in .mutants/work was restored")
