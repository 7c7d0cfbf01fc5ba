"""`make bench`: cold start, warm overhead, DynamoDB round trips, peak RSS and layer sizes of the
built functions (run `make build-test-artifacts` first). Prints a table and writes bench/results.json.

    python bench/run.py                       # everything (about 15 minutes on 2 cores)
    python bench/run.py --quick               # fewer runs/requests: a smoke test, not a measurement
    python bench/run.py --only cold,sizes     # some sections

See bench/README.md for the method and what each number means.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import cold
import roundtrips
import sizes
import warm
from common import READ_FUNCTIONS, REFERENCE, ROOT, SCENARIOS, World

SECTIONS = ("cold", "secrets", "warm", "trips", "sizes")
TARGETS = {
    "cold_read": 1.3,
    "cold_other": 1.5,
    "warm_ratio": 0.8,
    "peak_rss_mb": 80,
    "layer_zipped_mb": 8,
}


def cold_target(function: str) -> float | None:
    if function == REFERENCE:
        return None
    return TARGETS["cold_read"] if function in READ_FUNCTIONS else TARGETS["cold_other"]


def environment() -> dict[str, Any]:
    def run(*args: str) -> str:
        try:
            return subprocess.run(args, capture_output=True, text=True, check=False, cwd=ROOT).stdout.strip()
        except OSError:
            return ""

    return {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "loadavg_at_start": os.getloadavg(),
        "git_head": run("git", "rev-parse", "--short", "HEAD"),
        "git_dirty_files": len([line for line in run("git", "status", "--porcelain").splitlines() if line]),
    }


def mark(ok: bool | None) -> str:
    return "" if ok is None else ("ok" if ok else "MISS")


def render_table(results: dict[str, Any]) -> str:
    lines: list[str] = []
    out = lines.append
    if "cold" in results:
        c = results["cold"]
        f = c["floor"]
        runs = results["settings"]["runs"]
        out(
            f"Cold start: wall ms from process start to the first answer; median of {runs} runs, each right after "
            "its own F run"
        )
        out(
            f"  F = fresh 3.13 process creating boto3.client('dynamodb'): {f['median']:.0f} ms "
            f"(p25-p75 {f['p25']:.0f}-{f['p75']:.0f}); CPU {c['floor_cpu_ms']['median']:.0f} ms"
        )
        out(
            f"  {'function':27s} {'cold ms':>7s} {'÷F':>5s} {'p25-p75':>10s} {'CPU ÷F':>6s} {'target':>6s} {'':4s} "
            f"{'import':>6s} {'1st req':>7s}"
        )
        for function, row in c["functions"].items():
            r = row["ratio"]
            spread = "{:.2f}-{:.2f}".format(r["p25"], r["p75"])
            target = f"{row['target']}" if row["target"] else ""
            out(
                f"  {function:27s} {row['wall_ms']['median']:7.0f} {r['median']:5.2f} {spread:>10s} "
                f"{row['cpu_ratio']['median']:6.2f} {target:>6s} {mark(row['met']):4s} "
                f"{row['in_process']['init_ms']:6.0f} {row['in_process']['first_ms']:7.0f}"
            )
    if "secrets" in results:
        c = results["secrets"]
        out("")
        out(
            f"Cold start as deployed: secrets read from Secrets Manager at init (embedded AWS); median of "
            f"{results['settings']['secrets_runs']} runs; F {c['floor']['median']:.0f} ms"
        )
        for function, row in c["functions"].items():
            r = row["ratio"]
            base = results.get("cold", {}).get("functions", {}).get(function)
            delta = f"  (+{r['median'] - base['ratio']['median']:.2f} F vs secrets in the environment)" if base else ""
            out(
                f"  {function:27s} {row['wall_ms']['median']:7.0f} ms  ÷F {r['median']:.2f}  "
                f"import {row['in_process']['init_ms']:.0f}{delta}"
            )
    if "warm" in results:
        w = results["warm"]
        first = next(iter(w.values()))
        out("")
        out(
            f"Warm per-request overhead: repository I/O answered in memory; ms; median over "
            f"{results['settings']['rounds']} rounds of {first['requests_per_round']} requests each"
        )
        out(f"  {'scenario':44s} {'p50':>6s} {'p99':>6s} {'÷ ref':>6s} {'min-max':>10s} {'':4s} {'peak RSS':>8s}")
        for _, row in w.items():
            ratio = row.get("ratio")
            ratio_text = f"{ratio['median']:.2f}" if ratio else ""
            spread = "{:.2f}-{:.2f}".format(ratio["min"], ratio["max"]) if ratio else ""
            out(
                f"  {row['label'][:44]:44s} {row['p50_ms']['median']:6.3f} {row['p99_ms']['median']:6.3f} "
                f"{ratio_text:>6s} {spread:>10s} {mark(row.get('met')):4s} {row['peak_rss_mb']:6.1f} MB"
            )
    if "trips" in results:
        out("")
        out("DynamoDB round trips per request (botocore before-send hooks, against moto)")
        for flow, row in results["trips"].items():
            repeat = f"  (same event again: {row['repeat_round_trips']})" if "repeat_round_trips" in row else ""
            if row["first_round_trips"] != row["round_trips"]:
                repeat += f"  (an environment's first: {row['first_round_trips']})"
            target = f"<= {row['target']}" if row["target"] is not None else ""
            out(
                f"  {flow:46s} {row['round_trips']:2d} {target:>5s} {mark(row['met']):4s} "
                f"{', '.join(row['calls'])}{repeat}"
            )
    if "rss" in results:
        out("")
        n = results["rss"][next(iter(results["rss"]))]["requests"]
        out(
            f"Peak RSS (VmHWM) after a cold start + {n} warm requests, max over scenarios and rounds; "
            f"target <= {TARGETS['peak_rss_mb']} MB"
        )
        for function, row in results["rss"].items():
            out(f"  {function:27s} {row['peak_rss_mb']:6.1f} MB {mark(row['met'])}")
    if "sizes" in results:
        out("")
        out(f"Built layers (zipfile, deflate); target zipped <= {TARGETS['layer_zipped_mb']} MB")
        for name, row in results["sizes"].items():
            out(
                f"  {name:14s} {row['unzipped_mb']:5.1f} MB unzipped  {row['zipped_mb']:5.1f} MB zipped  "
                f"{row['pyc_files']:4d} .pyc  {mark(row['met'])}"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated of {', '.join(SECTIONS)}")
    parser.add_argument("--runs", type=int, default=7, help="cold runs per function (>= 7 for a measurement)")
    parser.add_argument("--rounds", type=int, default=3, help="warm rounds (a fresh process per scenario each)")
    parser.add_argument("--requests", type=int, default=1000, help="timed warm requests per round")
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--secrets-runs", type=int, default=5, help="cold runs per function with Secrets Manager")
    parser.add_argument("--quick", action="store_true", help="--runs 2 --secrets-runs 2 --rounds 1 --requests 200")
    parser.add_argument("--out", default=str(Path(__file__).with_name("results.json")))
    args = parser.parse_args(argv)
    if args.quick:
        args.runs, args.secrets_runs, args.rounds, args.requests = 2, 2, 1, 200
    sections = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections {sorted(unknown)}")

    results: dict[str, Any] = {
        "environment": environment(),
        "targets": TARGETS,
        "settings": {
            "runs": args.runs,
            "secrets_runs": args.secrets_runs,
            "rounds": args.rounds,
            "requests": args.requests,
            "warmup": args.warmup,
        },
    }
    world = World() if set(sections) & {"cold", "secrets", "warm", "trips"} else None
    try:
        if "sizes" in sections:
            print("layer sizes...", flush=True)
            results["sizes"] = sizes.measure()
            for row in results["sizes"].values():
                row["met"] = row["zipped_mb"] <= TARGETS["layer_zipped_mb"]
        if "trips" in sections:
            print("round trips...", flush=True)
            results["trips"] = roundtrips.measure(world)
        if "cold" in sections:
            print(f"cold starts ({args.runs} runs)...", flush=True)
            functions = [*world.function_ids(), REFERENCE]
            results["cold"] = cold.measure(world, functions, args.runs)
            for function, row in results["cold"]["functions"].items():
                row["target"] = cold_target(function)
                row["met"] = None if row["target"] is None else row["ratio"]["median"] <= row["target"]
        if "secrets" in sections:
            print(f"cold starts reading Secrets Manager ({args.secrets_runs} runs)...", flush=True)
            results["secrets"] = cold.measure(world, world.function_ids(), args.secrets_runs, secrets_manager=True)
        if "warm" in sections:
            print(f"warm requests ({args.rounds} rounds x {args.requests})...", flush=True)
            results["warm"] = warm.measure(world, warm.WARM_SCENARIOS, args.rounds, args.requests, args.warmup)
            rss: dict[str, Any] = {}
            for name, row in results["warm"].items():
                if "ratio" in row:
                    row["met"] = row["ratio"]["median"] <= TARGETS["warm_ratio"]
                function = SCENARIOS[name].function
                peak = max(row["peak_rss_mb"], rss.get(function, {}).get("peak_rss_mb", 0))
                rss[function] = {
                    "peak_rss_mb": peak,
                    "met": peak <= TARGETS["peak_rss_mb"],
                    "requests": row["requests_per_round"] + row["warmup"],
                }
            results["rss"] = rss
    finally:
        if world is not None:
            world.close()
    results["environment"]["loadavg_at_end"] = os.getloadavg()
    Path(args.out).write_text(json.dumps(results, indent=2, default=str) + "\n")
    print()
    print(render_table(results))
    print(f"\nwrote {os.path.relpath(args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
