"""`python -m simulation`: run seeds, replay one, run the scripted scenarios, measure scale.

make simulate                 # the default seeds (about two minutes on two cores)
make simulate SEEDS=100000    # a soak
make simulate SEED=1234       # replay one seed exactly (prints its trace hash; --trace for the story)
python -m simulation --scenario all
python -m simulation --scale
"""

from __future__ import annotations

import argparse
import functools
import json
import multiprocessing
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

from .config import FAMILIES, Config
from .runner import run_seed

DEFAULT_SEEDS = 200


@dataclass
class Outcome:
    """What a worker process sends back for one seed."""

    seed: int
    family: str
    violations: list[tuple[str, str]]  # (invariant, detail), in the order found
    error: str | None
    trace_hash: str
    replayed_hash: str | None
    steps: int
    real_seconds: float
    stats: dict[str, Any]


def defect_of(invariant: str, detail: str) -> str:
    """Which defect of issue 12 a violation shows (from what the invariant says), for the summary."""
    if invariant == "refused_replay_alarm":
        return "4"
    if invariant == "gateway_transaction_unique":
        return "3" if "ONLINE" in detail else "?"
    if invariant == "sweep_time_limit":
        return "11"
    if invariant == "spurious_conflict":
        return "12"
    if "delayed payment failed" in detail:
        return "10"
    if "before the checkout recorded its session id" in detail:
        return "2"
    if "names no user]" in detail:
        return "6"
    if "signed or well-formed hostile input" in detail:
        return "5"
    if "TransactionConflictException" in detail:
        return "new: attach conflict"
    if invariant == "stripe_converged" and "still pending" in detail:
        return "?"
    if invariant in ("answered_session_completes", "paid_session_settled") and "failed by no_session" in detail:
        return "9"
    if invariant == "answered_session_completes" and "failed by stripe_unavailable" in detail:
        return "1"
    if invariant == "paid_session_settled" and ("failed by superseded" in detail or "stripe_unavailable" in detail):
        return "new: paid session given up, no alarm"
    if invariant == "committed_checkout_answered":
        committed_by = detail.split("committed by ", 1)[-1].split(";", maxsplit=1)[0]
        if "killed" in committed_by:
            return "8 (killed)"
        if "-> 5" in committed_by:
            return "8"
        if "-> 4" in committed_by:
            return "7"
    return "?"


def replay_command(seed: int) -> str:
    return f"make simulate SEED={seed}"


def _run(seed: int) -> Outcome:
    result = run_seed(seed)
    denied = [("iam_allowed", call) for call in _denied_calls()]
    return Outcome(
        seed,
        result.family,
        [(v.invariant, v.detail) for v in result.violations] + denied,
        f"{type(result.error).__name__}: {result.error}" if result.error else None,
        result.trace_hash,
        None,
        result.steps,
        result.real_seconds,
        result.stats,
    )


@functools.cache
def _policies() -> dict[str, list[dict[str, Any]]]:
    """Each function's role in the SAM-translated template (the IAM conformance test's view)."""
    from support.sam import Resolver, function_policies, translated

    from local.template import Template

    template = translated()
    resolver = Resolver(template)
    return {function: function_policies(template, function, resolver) for function in Template().function_ids()}


def _denied_calls() -> list[str]:
    """AWS calls the seed's functions made that their roles would refuse in AWS (an AccessDenied:
    a 500 the simulation's moto never shows); the calls are forgotten for the next seed."""
    from support.iam import RECORDER
    from support.iam_policy import is_allowed

    policies = _policies()
    denied = {
        str(call) for call in RECORDER.calls if not is_allowed(policies[call.function], call.action, call.resource)
    }
    RECORDER.calls.clear()
    return sorted(denied)


def run_many(start: int, count: int, jobs: int, report: str | None = None, first_violation: bool = False) -> int:
    began = time.perf_counter()
    seeds = range(start, start + count)
    outcomes: list[Outcome] = []
    if jobs > 1 and count > 1:
        with multiprocessing.get_context("fork").Pool(jobs) as pool:
            # In seed order when stopping at the first violation, so the seed that stops the run is
            # the lowest failing one whatever the workers' speed (the pool is terminated on exit).
            results = pool.imap(_run, seeds) if first_violation else pool.imap_unordered(_run, seeds, chunksize=1)
            for outcome in results:
                outcomes.append(outcome)
                _progress(outcome, len(outcomes), count)
                if first_violation and (outcome.violations or outcome.error):
                    break
    else:
        for seed in seeds:
            outcomes.append(_run(seed))
            _progress(outcomes[-1], len(outcomes), count)
            if first_violation and (outcomes[-1].violations or outcomes[-1].error):
                break
    # The first failing seed of each invariant is run again: it must replay to the same trace.
    first: dict[str, Outcome] = {}
    for outcome in sorted(outcomes, key=lambda o: o.seed):
        for invariant, _ in outcome.violations:
            first.setdefault(invariant, outcome)
    again = [] if first_violation else sorted({o.seed for o in first.values()})
    by_seed = {o.seed: o for o in outcomes}
    with multiprocessing.get_context("fork").Pool(max(min(jobs, len(again)), 1)) as pool:
        for replayed in pool.imap_unordered(_run, again):
            by_seed[replayed.seed].replayed_hash = replayed.trace_hash
    elapsed = time.perf_counter() - began
    if report:
        rows = [
            {
                "seed": o.seed,
                "family": o.family,
                "trace": o.trace_hash,
                "violations": [{"invariant": i, "defect": defect_of(i, d), "detail": d} for i, d in o.violations],
                "error": o.error,
            }
            for o in sorted(outcomes, key=lambda o: o.seed)
        ]
        with open(report, "w") as out:
            json.dump({"seconds": round(elapsed, 1), "jobs": jobs, "seeds": rows}, out, indent=1)
    return _report(outcomes, elapsed, jobs)


def _progress(outcome: Outcome, done: int, total: int) -> None:
    if outcome.error:
        print(f"  seed {outcome.seed} ({outcome.family}): HARNESS ERROR {outcome.error[:300]}")
    if outcome.violations:
        names = ", ".join(name for name, _ in outcome.violations)
        print(f"  seed {outcome.seed} ({outcome.family}): {names}")
    elif done % 50 == 0:
        print(f"  {done}/{total} seeds")
    sys.stdout.flush()


def _report(outcomes: list[Outcome], elapsed: float, jobs: int) -> int:
    outcomes.sort(key=lambda o: o.seed)
    by_family: Counter[str] = Counter(o.family for o in outcomes)
    failing: dict[str, list[tuple[Outcome, str]]] = defaultdict(list)
    for outcome in outcomes:
        for invariant, detail in outcome.violations:
            failing[invariant].append((outcome, detail))
        if outcome.error:
            failing["harness error"].append((outcome, outcome.error))
    steps = sum(o.steps for o in outcomes)
    requests = sum(o.stats.get("invocations", 0) for o in outcomes)
    print(
        f"\n{len(outcomes)} seeds ({', '.join(f'{f} {by_family[f]}' for f in FAMILIES if by_family[f])}) "
        f"in {elapsed:.1f}s on {jobs} process(es): {steps} steps, {requests} handler invocations"
    )
    notes: Counter[str] = Counter()
    for outcome in outcomes:
        notes.update(outcome.stats.get("notes", {}))
    for note, number in sorted(notes.items()):
        print(f"  note: {note}: {number}")
    replayed = [o for o in outcomes if o.replayed_hash is not None]
    unstable = [o for o in replayed if o.replayed_hash != o.trace_hash]
    for outcome in unstable:
        print(f"  NOT DETERMINISTIC: seed {outcome.seed} traced {outcome.trace_hash}, replayed {outcome.replayed_hash}")
    if replayed and not unstable:
        print(f"  {len(replayed)} failing seeds replayed to the same trace")
    if not failing and not unstable:
        print("all invariants held")
        return 0
    bad = sum(1 for o in outcomes if o.violations or o.error)
    by_defect: dict[str, list[int]] = defaultdict(list)
    for outcome in outcomes:
        for invariant, detail in outcome.violations:
            defect = defect_of(invariant, detail)
            if outcome.seed not in by_defect[defect]:
                by_defect[defect].append(outcome.seed)
    print(f"\n{bad} failing seeds; by defect of issue 12 (as the violations read):")
    for defect, seeds in sorted(by_defect.items(), key=lambda item: (len(item[0]), item[0])):
        print(f"  {defect}: {len(seeds)} seeds, e.g. {', '.join(map(str, seeds[:10]))}")
    print("by invariant:")
    for invariant, found in sorted(failing.items(), key=lambda item: -len(item[1])):
        first, detail = found[0]
        print(f"- {invariant}: {len(found)} seeds, e.g. {', '.join(str(o.seed) for o, _ in found[:10])}")
        print(f"    seed {first.seed} (trace {first.trace_hash}): {detail[:300]}")
        print(f"    replay: {replay_command(first.seed)}")
    return 1


def run_one(seed: int, show: bool) -> int:
    result = run_seed(seed)
    config = Config.from_seed(seed)
    print(
        f"seed {seed} ({config.family}): {result.steps} steps, {result.virtual_seconds:.0f} virtual seconds, "
        f"{result.real_seconds:.2f}s, trace {result.trace_hash}"
    )
    if show:
        print("\n".join(result.story))
        print("\n".join(result.trace))
    print(f"stats: {result.stats}")
    if result.error is not None:
        import traceback

        traceback.print_exception(result.error)
        return 2
    for violation in result.violations:
        print(f"VIOLATION {violation.invariant}: {violation.detail}")
    if result.violations:
        print(f"replay: {replay_command(seed)}")
        return 1
    print("all invariants held")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m simulation", description=__doc__)
    parser.add_argument("--seeds", type=int, default=DEFAULT_SEEDS, help="how many seeds to run")
    parser.add_argument("--start", type=int, default=0, help="the first seed")
    parser.add_argument("--seed", type=int, help="replay exactly this seed")
    parser.add_argument("--trace", action="store_true", help="with --seed: print every request and I/O")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes")
    parser.add_argument("--scenario", help="run a scripted scenario (a name, or 'all')")
    parser.add_argument("--scale", action="store_true", help="conflicts and retries per 1,000 checkouts")
    parser.add_argument("--report", help="also write every seed's outcome to this JSON file")
    parser.add_argument(
        "--first-violation",
        action="store_true",
        help="stop at the first seed (in seed order) that breaks an invariant; it is not replayed (make mutants)",
    )
    args = parser.parse_args(argv)
    from support.iam import RECORDER

    RECORDER.install()  # before any AWS client: every seed's calls are judged against the roles
    if args.scale:
        from .scale import main as scale_main

        return scale_main()
    if args.scenario:
        from .scenarios import main as scenarios_main

        return scenarios_main(args.scenario, show=args.trace)
    if args.seed is not None:
        return run_one(args.seed, args.trace)
    return run_many(args.start, args.seeds, args.jobs, args.report, args.first_violation)
