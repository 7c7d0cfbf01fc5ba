"""Warm per-request overhead with repository I/O answered in memory, and peak RSS.

For each scenario a fresh Lambda-like process (local/lambda_runtime.py) imports the built function
(its cold start), serves the scenario's request once (the first request of an environment: clients
created, stripe imported, blocks of ids reserved), then once more for real on fresh data, against
the embedded DynamoDB and the Stripe stand-in, recording every DynamoDB client call and Stripe
gateway call with its answer. It then serves that request `warmup + requests` more times with those
answers replayed from memory (the client's methods and the gateway's are replaced in the process,
and the blocks of ids are as the recorded request found them before each replay), so
what is timed is our code, Powertools, pydantic, PyJWT and stripe-python's signature check: the
per-request overhead, not the network. Copying the recorded answers is not counted. The
reference handler (bench/reference/app.py) runs the same way, in the same round, its requests
interleaved with the scenarios' in chunks; the ratio compares a scenario's p50 with its
reference's p50 in the same round. VmHWM (peak RSS) is read at the end of each round, after the
cold start and `warmup + requests` (>= 1,000) warm requests.

    python bench/warm.py list100 ref_list100 --requests 300        # some scenarios
    python bench/warm.py --profile list100 --requests 500          # cProfile of warm requests
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

from common import SCENARIOS, World, check_status, fresh_event, summary

WARM_SCENARIOS = [
    "detail",
    "list100",
    "checkout",
    "checkout_key",
    "cod",
    "cod_key",
    "stripe_webhook",
    "gateway_webhook",
    "reconcile",
]
REFERENCES = ["ref_detail", "ref_list100", "ref_post"]


def record(world: World, proc: Any, scenario: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """Wait for the process's cold start and serve the scenario's request once, then serve it again
    on fresh data recording every DynamoDB and Stripe answer: what is recorded and replayed is a
    warm environment's request (a checkout takes an id from the blocks the first one reserved).
    Returns the event and the recording."""
    proc.receive()
    check_status(scenario, proc.request({"event": fresh_event(world, scenario)})["result"])
    event = fresh_event(world, scenario)
    recorded = proc.request({"op": "record", "event": event})
    check_status(scenario, recorded["response"])
    return event, recorded


def run_scenario(
    world: World, name: str, requests: int, warmup: int, profile: str | None = None, build_dir: Any = None
) -> dict[str, Any]:
    scenario = SCENARIOS[name]
    proc = world.spawn(scenario.function, build_dir)
    try:
        event, recorded = record(world, proc, scenario)
        op = {"op": "profile", "path": profile, "top": 45} if profile else {"op": "replay"}
        result = proc.request({**op, "event": event, "n": requests, "warmup": warmup}, timeout=1200)
        check_status(scenario, {"statusCode": result["status"]} if scenario.expect else None)
        times = summary(result["ms"])
        return {
            "p50_ms": times["median"],
            "p99_ms": times["p99"],
            "min_ms": times["min"],
            "requests": times["n"],
            "recorded_calls": recorded["tape"],
            "VmHWM_mb": result["VmHWM_kb"] / 1024,
            "VmRSS_mb": result["VmRSS_kb"] / 1024,
        }
    finally:
        proc.close()


def start_scenario(world: World, name: str, warmup: int) -> tuple[Any, dict[str, Any], list[str]]:
    """A fresh process for the scenario: cold start, one real request recorded, `warmup` replays."""
    scenario = SCENARIOS[name]
    proc = world.spawn(scenario.function)
    try:
        event, recorded = record(world, proc, scenario)
        proc.request({"op": "replay", "event": event, "n": warmup})
    except BaseException:
        proc.close()
        raise
    return proc, event, recorded["tape"]


def measure(
    world: World, names: list[str], rounds: int, requests: int, warmup: int, progress: Any = print, chunk: int = 25
) -> dict[str, Any]:
    """Each round: one fresh process per scenario (and reference), all alive together; requests
    go to them in chunks of `chunk`, in turn, so every scenario and its reference meet the same
    moments of the machine's noise. p50/p99 per round; the ratio is p50 ÷ its reference's p50 in
    the same round; the reported value is the median over rounds."""
    wanted = list(dict.fromkeys(names + [SCENARIOS[n].compare_with for n in names if SCENARIOS[n].compare_with]))
    samples: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for round_ in range(rounds):
        procs: dict[str, Any] = {}
        try:
            events, tapes = {}, {}
            for name in wanted:
                procs[name], events[name], tapes[name] = start_scenario(world, name, warmup)
            times: dict[str, list[float]] = {name: [] for name in wanted}
            for index in range(max(requests // chunk, 1)):
                shift = index % len(wanted)
                for name in wanted[shift:] + wanted[:shift]:
                    result = procs[name].request({"op": "replay", "event": events[name], "n": chunk})
                    check_status(SCENARIOS[name], {"statusCode": result["status"]} if SCENARIOS[name].expect else None)
                    times[name].extend(result["ms"])
            for name in wanted:
                memory = procs[name].request({"op": "memory"})
                t = summary(times[name])
                samples[name].append(
                    {
                        "p50_ms": t["median"],
                        "p99_ms": t["p99"],
                        "requests": t["n"],
                        "recorded_calls": tapes[name],
                        "VmHWM_mb": memory["VmHWM_kb"] / 1024,
                    }
                )
        finally:
            for proc in procs.values():
                proc.close()
        progress(
            f"  warm round {round_ + 1}/{rounds}: " + ", ".join(f"{n} {samples[n][-1]['p50_ms']:.2f}" for n in wanted)
        )
    results: dict[str, Any] = {}
    for name in wanted:
        rows = samples[name]
        scenario = SCENARIOS[name]
        entry: dict[str, Any] = {
            "function": scenario.function,
            "label": scenario.label,
            "p50_ms": summary([r["p50_ms"] for r in rows]),
            "p99_ms": summary([r["p99_ms"] for r in rows]),
            "requests_per_round": rows[0]["requests"],
            "warmup": warmup,
            "recorded_calls": rows[0]["recorded_calls"],
            "peak_rss_mb": max(r["VmHWM_mb"] for r in rows),
            "peak_rss_mb_median": summary([r["VmHWM_mb"] for r in rows])["median"],
        }
        if scenario.compare_with:
            reference = samples[scenario.compare_with]
            ratios = [r["p50_ms"] / ref["p50_ms"] for r, ref in zip(rows, reference, strict=True)]
            entry["reference"] = scenario.compare_with
            entry["ratio"] = summary(ratios)
        results[name] = entry
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scenarios", nargs="*", help=f"default: {' '.join(WARM_SCENARIOS)}")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--profile", metavar="SCENARIO")
    args = parser.parse_args(argv)
    world = World()
    try:
        if args.profile:
            with tempfile.NamedTemporaryFile(suffix=".txt", delete=False) as handle:
                path = handle.name
            row = run_scenario(world, args.profile, args.requests, args.warmup, profile=path)
            print(Path(path).read_text())
            print(f"(profiled) p50 {row['p50_ms']:.3f} ms over {row['requests']} requests")
            return 0
        results = measure(world, args.scenarios or WARM_SCENARIOS, args.rounds, args.requests, args.warmup)
        for name, row in results.items():
            ratio = f"x{row['ratio']['median']:.2f}" if "ratio" in row else ""
            print(
                f"{name:16s} p50 {row['p50_ms']['median']:7.3f} ms  p99 {row['p99_ms']['median']:7.3f} ms  "
                f"{ratio:6s} rss {row['peak_rss_mb']:.1f} MB  calls {row['recorded_calls']}"
            )
    finally:
        world.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
