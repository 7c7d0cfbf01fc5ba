"""Cold init as Lambda pays it, against the floor F, alternating; and `-X importtime` breakdowns.

A cold sample is the wall time from starting a fresh CPython 3.13 process (local/lambda_runtime.py,
laid out like Lambda, bytecode not written) to its answer to the first request: interpreter start,
importing `app` (the function's module-level set-up included) and serving one realistic request
against the embedded DynamoDB and the Stripe stand-in. F is the same for a function that only
creates `boto3.client("dynamodb")` (reference/floor.py). Every function sample is taken right after an F sample, so
each has its own F (the machine is noisy); the ratio reported is the median of those pairs.

    python bench/cold.py --importtime GetPaymentFunction   # where a function's import time goes
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from common import COLD_FIRST, FLOOR, REFERENCE, SCENARIOS, Proc, World, fresh_event, summary


def floor_once(world: World, with_cpu: bool = False) -> Any:
    proc = world.spawn(FLOOR, first={"op": "cold", "event": {}})
    try:
        proc.receive()  # ready
        answer = proc.receive()
        wall = (time.perf_counter() - proc.started) * 1000
        return (wall, answer["cpu_ms"]) if with_cpu else wall
    finally:
        proc.close()


def cold_once(
    world: World,
    function: str,
    *,
    importtime: bool = False,
    build_dir: Any = None,
    profile: str | None = None,
    secrets_manager: bool = False,
) -> tuple[float, dict[str, Any], Any]:
    scenario = SCENARIOS[COLD_FIRST[function]]
    event = fresh_event(world, scenario)
    env = world.environment(function, build_dir, secrets_manager=secrets_manager and function != REFERENCE)
    if profile:
        env["BENCH_PROFILE"] = profile
    first = {"op": "cold", "event": event}
    proc = Proc(world.python, env, world.layers(function, build_dir), importtime=importtime, first=first)
    try:
        ready = proc.receive()
        answer = proc.receive()
        wall = (time.perf_counter() - proc.started) * 1000
        if scenario.expect is not None and answer.get("status") != scenario.expect:
            raise RuntimeError(f"{function}: first request answered {answer.get('status')}:\n{proc.output()}")
        # boot: the rest of the wall time (interpreter start, the runtime's own set-up, the pipes)
        answer.update(init_ms=ready["initMs"], boot_ms=wall - ready["initMs"] - answer["first_ms"])
        log = proc.output(None) if importtime else None
        return wall, answer, log
    finally:
        proc.close()


def measure(
    world: World, functions: list[str], runs: int, progress: Any = print, secrets_manager: bool = False
) -> dict[str, Any]:
    walls: dict[str, list[float]] = defaultdict(list)
    floors: dict[str, list[float]] = defaultdict(list)
    details: dict[str, list[dict[str, Any]]] = defaultdict(list)
    all_floors: list[float] = []
    floor_cpu: dict[str, list[float]] = defaultdict(list)
    for run in range(runs):
        shift = run % len(functions)
        for function in functions[shift:] + functions[:shift]:  # rotate: no function always first
            f, f_cpu = floor_once(world, with_cpu=True)
            wall, answer, _ = cold_once(world, function, secrets_manager=secrets_manager)
            all_floors.append(f)
            floors[function].append(f)
            floor_cpu[function].append(f_cpu)
            walls[function].append(wall)
            details[function].append(answer)
        progress(f"  cold run {run + 1}/{runs}: F {summary(all_floors[-len(functions) :])['median']:.0f} ms")
    every_floor_cpu = [c for values in floor_cpu.values() for c in values]
    results: dict[str, Any] = {"floor": summary(all_floors), "floor_cpu_ms": summary(every_floor_cpu), "functions": {}}
    for function in functions:
        pairs = [w / f for w, f in zip(walls[function], floors[function], strict=True)]
        cpu = [d["cpu_ms"] for d in details[function]]
        cpu_pairs = [c / f for c, f in zip(cpu, floor_cpu[function], strict=True)]
        results["functions"][function] = {
            "first_request": COLD_FIRST[function],
            "wall_ms": summary(walls[function]),
            "paired_floor_ms": summary(floors[function]),
            "ratio": summary(pairs),
            "ratio_of_medians": summary(walls[function])["median"] / summary(all_floors)["median"],
            "cpu_ms": summary(cpu),
            "cpu_ratio": summary(cpu_pairs),
            "in_process": {
                key: summary([d[key] for d in details[function]])["median"]
                for key in ("boot_ms", "init_ms", "first_ms")
            },
            "cold_VmHWM_mb": summary([d["VmHWM_kb"] / 1024 for d in details[function]])["median"],
        }
    return results


# --------------------------------------------------------------------------- -X importtime
_LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")


def parse_importtime(log: str) -> list[tuple[str, int, int, int]]:
    """(module, self us, cumulative us, depth) for every import in the log."""
    rows = []
    for line in log.splitlines():
        match = _LINE.match(line)
        if match:
            rows.append((match.group(4), int(match.group(1)), int(match.group(2)), len(match.group(3)) // 2))
    return rows


def importtime_report(world: World, function: str, runs: int = 3, top: int = 25) -> dict[str, Any]:
    per_package: dict[str, list[int]] = defaultdict(list)
    per_module: dict[str, list[int]] = defaultdict(list)
    for _ in range(runs):
        _, _, log = cold_once(world, function, importtime=True)
        rows = parse_importtime(log or "")
        packages: dict[str, int] = defaultdict(int)
        for module, self_us, cumulative_us, _depth in rows:
            packages[module.split(".")[0]] += self_us
            per_module[module].append(cumulative_us)
        for package, total in packages.items():
            per_package[package].append(total)
    package_ms = {p: summary(v)["median"] / 1000 for p, v in per_package.items()}
    module_ms = {m: summary(v)["median"] / 1000 for m, v in per_module.items()}
    return {
        "self_ms_by_package": dict(sorted(package_ms.items(), key=lambda kv: -kv[1])[:top]),
        "cumulative_ms_by_module": dict(sorted(module_ms.items(), key=lambda kv: -kv[1])[:top]),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--importtime", metavar="FUNCTION", nargs="+", help="print -X importtime breakdowns")
    parser.add_argument("--profile", metavar="FUNCTION", help="cProfile of one cold start")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--secrets-manager", action="store_true", help="secrets read from Secrets Manager, as in AWS")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("functions", nargs="*")
    args = parser.parse_args(argv)
    world = World()
    try:
        if args.profile:
            with tempfile.NamedTemporaryFile(suffix=".txt", delete=False) as handle:
                path = handle.name
            wall, answer, _ = cold_once(world, args.profile, profile=path)
            print(Path(path).read_text())
            print(f"raw stats: {path}.prof")
            print(
                f"(profiled) wall {wall:.0f} ms, import {answer['init_ms']:.0f} ms, "
                f"first request {answer['first_ms']:.0f} ms"
            )
            return 0
        if args.importtime:
            for function in args.importtime:
                report = importtime_report(world, function, runs=3, top=args.top)
                print(f"== {function}: self time by top-level package (ms, median of 3)")
                for name, ms in report["self_ms_by_package"].items():
                    print(f"  {ms:8.1f}  {name}")
                print(f"== {function}: cumulative time by module (ms)")
                for name, ms in report["cumulative_ms_by_module"].items():
                    print(f"  {ms:8.1f}  {name}")
            return 0
        functions = args.functions or [*world.function_ids()]
        results = measure(world, functions, args.runs, secrets_manager=args.secrets_manager)
        floor = results["floor"]["median"]
        print(f"F = {floor:.0f} ms")
        for function, row in results["functions"].items():
            print(
                f"{function:28s} {row['wall_ms']['median']:7.0f} ms  x{row['ratio']['median']:.2f} "
                f"[{row['ratio']['p25']:.2f}-{row['ratio']['p75']:.2f}]  init {row['in_process']['init_ms']:.0f} "
                f"first {row['in_process']['first_ms']:.0f}"
            )
    finally:
        world.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
