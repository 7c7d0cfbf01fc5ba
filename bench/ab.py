"""A/B: the same measurements on two builds, interleaved, so that the machine's noise hits both alike.

Used to measure each code change: copy the build before it (`cp -a .aws-sam/test-x86_64/build
/tmp/build-before`), change and `make build-test-artifacts`, then

    python bench/ab.py --a /tmp/build-before cold GetPaymentFunction ListPaymentsFunction --runs 9
    python bench/ab.py --a /tmp/build-before warm detail list100 --rounds 3 --requests 500
    python bench/ab.py --a /tmp/build-before cold GetPaymentFunction --secrets-manager   # secrets as deployed

A build from before a change of the tables (their keys, indexes, or what their items hold) needs
the data its own code writes: `--a-code` names a checkout of A's commit (`git worktree add`), whose
template and seed code make A's tables and data and whose checkout service makes the Stripe
checkout A's webhook is about.

Cold: F, A, B are started in turn, run after run; reported are the medians, each ÷ F (paired),
and B/A (paired). Warm: one process per build, requests sent to each in alternating chunks.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from cold import cold_once, floor_once
from common import BUILD_DIR, World, summary


def cold_ab(
    world: World, a: Path, b: Path, functions: list[str], runs: int, secrets_manager: bool, a_code: Path | None
) -> None:
    for function in functions:
        rows: dict[str, list[float]] = {
            "F": [],
            "A": [],
            "B": [],
            "A/F": [],
            "B/F": [],
            "B/A": [],
            "cpu B/A": [],
            "cpu A/F": [],
            "cpu B/F": [],
        }
        for run in range(runs):
            order = [("A", a), ("B", b)] if run % 2 == 0 else [("B", b), ("A", a)]
            f, f_cpu = floor_once(world, with_cpu=True)
            walls, cpus = {}, {}
            for label, build in order:
                world.code = a_code if label == "A" else None
                wall, answer, _ = cold_once(world, function, build_dir=build, secrets_manager=secrets_manager)
                walls[label], cpus[label] = wall, answer["cpu_ms"]
            rows["cpu B/A"].append(cpus["B"] / cpus["A"])
            rows["cpu A/F"].append(cpus["A"] / f_cpu)
            rows["cpu B/F"].append(cpus["B"] / f_cpu)
            rows["F"].append(f)
            rows["A"].append(walls["A"])
            rows["B"].append(walls["B"])
            rows["A/F"].append(walls["A"] / f)
            rows["B/F"].append(walls["B"] / f)
            rows["B/A"].append(walls["B"] / walls["A"])
        s = {k: summary(v) for k, v in rows.items()}
        print(
            f"{function:28s} F {s['F']['median']:5.0f}  A {s['A']['median']:5.0f} (x{s['A/F']['median']:.2f})  "
            f"B {s['B']['median']:5.0f} (x{s['B/F']['median']:.2f})  B/A {s['B/A']['median']:.3f} "
            f"[{s['B/A']['p25']:.3f}-{s['B/A']['p75']:.3f}]  cpu: A x{s['cpu A/F']['median']:.2f} "
            f"B x{s['cpu B/F']['median']:.2f} B/A {s['cpu B/A']['median']:.3f} "
            f"[{s['cpu B/A']['p25']:.3f}-{s['cpu B/A']['p75']:.3f}]",
            flush=True,
        )


def warm_ab(
    world: World, a: Path, b: Path, scenarios: list[str], rounds: int, requests: int, a_code: Path | None
) -> None:
    """Both builds' processes live side by side; chunks of requests go to one then the other, so
    that both see the same moments of the machine's noise. Reported: p50 and p10 of all requests."""
    from common import SCENARIOS
    from warm import record

    chunk = 25
    for name in scenarios:
        scenario = SCENARIOS[name]
        procs, events = {}, {}
        try:
            for label, build in (("A", a), ("B", b)):
                proc = procs[label] = world.spawn(scenario.function, build)
                world.code = a_code if label == "A" else None
                events[label], _ = record(world, proc, scenario)
                proc.request({"op": "replay", "event": events[label], "n": 50})  # warm up
            times: dict[str, list[float]] = {"A": [], "B": []}
            for index in range(rounds * requests // chunk):
                for label in ("A", "B") if index % 2 == 0 else ("B", "A"):
                    result = procs[label].request({"op": "replay", "event": events[label], "n": chunk})
                    times[label].extend(result["ms"])
        finally:
            for proc in procs.values():
                proc.close()
        sa, sb = summary(times["A"]), summary(times["B"])
        p10 = {k: sorted(v)[len(v) // 10] for k, v in times.items()}
        print(
            f"{name:16s} p50 A {sa['median']:7.3f}  B {sb['median']:7.3f}  B/A {sb['median'] / sa['median']:.3f}   "
            f"p10 A {p10['A']:7.3f}  B {p10['B']:7.3f}  B/A {p10['B'] / p10['A']:.3f}   "
            f"p99 A {sa['p99']:7.3f}  B {sb['p99']:7.3f}  (n={sa['n']})",
            flush=True,
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--a", type=Path, required=True, help="the build before (a copy of a test build folder)")
    parser.add_argument("--b", type=Path, default=BUILD_DIR, help="the build after (default: the test build)")
    parser.add_argument("--a-code", type=Path, help="a checkout of A's commit, when its tables or data differ")
    parser.add_argument("what", choices=["cold", "warm"])
    parser.add_argument("names", nargs="+", help="functions (cold) or scenarios (warm)")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--secrets-manager", action="store_true", help="cold: secrets read from Secrets Manager")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=500)
    args = parser.parse_args(argv)
    world = World()
    started = time.time()
    try:
        if args.what == "cold":
            cold_ab(world, args.a.resolve(), args.b.resolve(), args.names, args.runs, args.secrets_manager, args.a_code)
        else:
            warm_ab(world, args.a.resolve(), args.b.resolve(), args.names, args.rounds, args.requests, args.a_code)
    finally:
        world.close()
    print(f"({time.time() - started:.0f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
