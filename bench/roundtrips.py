"""DynamoDB round trips per request, counted through botocore's event hooks against moto.

Each function runs in its Lambda-like process (local/lambda_runtime.py) against the embedded DynamoDB
(moto) and the Stripe stand-in, on fresh demo data for every flow. The process registers handlers
for `before-call.dynamodb` (API calls) and `before-send.dynamodb` (HTTP requests actually sent,
retries included) on the functions' one DynamoDB client; a round trip is one HTTP request sent.

    python bench/roundtrips.py
"""

from __future__ import annotations

import copy
import sys
from typing import Any

from common import SCENARIOS, World, check_status, fresh_event

# (flow, scenario, send the same event again right after, target)
FLOWS: list[tuple[str, str, bool, int | None]] = [
    ("detail", "detail", False, 1),
    ("list (2 rows)", "list", False, 2),
    ("list (page of 100)", "list100", False, 2),
    ("checkout (Stripe)", "checkout", False, 4),
    ("checkout (Stripe) + Idempotency-Key", "checkout_key", False, 4),
    ("COD checkout", "cod", False, None),
    ("COD checkout + Idempotency-Key", "cod_key", False, None),
    ("stripe webhook (checkout.session.completed)", "stripe_webhook", True, 4),
    ("gateway webhook (spec example)", "gateway_webhook", True, 4),
    ("reconcile sweep (nothing open)", "reconcile", False, None),
]


def measure(world: World, progress: Any = print) -> dict[str, Any]:
    results: dict[str, Any] = {}
    processes: dict[str, Any] = {}
    try:
        for flow, name, again, target in FLOWS:
            scenario = SCENARIOS[name]
            proc = processes.get(scenario.function)
            if proc is None:
                proc = processes[scenario.function] = world.spawn(scenario.function)
                proc.receive()
            event = fresh_event(world, scenario)
            first = proc.request({"op": "count", "event": copy.deepcopy(event)})
            check_status(scenario, first["response"])
            row: dict[str, Any] = {
                "scenario": name,
                "round_trips": first["sends"],
                "calls": first["calls"],
                "target": target,
            }
            if again:
                repeat = proc.request({"op": "count", "event": event})
                check_status(scenario, repeat["response"])
                row["repeat_round_trips"] = repeat["sends"]
                row["repeat_calls"] = repeat["calls"]
            row["met"] = None if target is None else first["sends"] <= target
            results[flow] = row
            progress(f"  {flow}: {first['sends']} ({', '.join(first['calls'])})")
    finally:
        for proc in processes.values():
            proc.close()
    return results


def main() -> int:
    world = World()
    try:
        measure(world)
    finally:
        world.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
