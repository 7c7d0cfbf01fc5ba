"""DynamoDB round trips per request, counted through botocore's event hooks against moto.

Each flow runs in a fresh Lambda-like process (local/lambda_runtime.py) against the embedded
DynamoDB (moto) and the Stripe stand-in. The process registers handlers for `before-call.dynamodb`
(API calls) and `before-send.dynamodb` (HTTP requests actually sent, retries included) on the
functions' one DynamoDB client; a round trip is one HTTP request sent. Counted: a warm environment's
request, on fresh demo data after a first one (the target is about it); the environment's first
request (a checkout's also reserves its blocks of ids, one UpdateItem per sequence every ten
checkouts); for webhooks, the same event delivered again.

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
    ("COD checkout", "cod", False, 4),
    ("COD checkout + Idempotency-Key", "cod_key", False, 4),
    ("stripe webhook (checkout.session.completed)", "stripe_webhook", True, 4),
    ("gateway webhook (spec example)", "gateway_webhook", True, 4),
    ("reconcile sweep (nothing open)", "reconcile", False, None),
]


def measure(world: World, progress: Any = print) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for flow, name, again, target in FLOWS:
        scenario = SCENARIOS[name]
        proc = world.spawn(scenario.function)
        try:
            proc.receive()

            def count(event: dict[str, Any], proc: Any = proc, scenario: Any = scenario) -> dict[str, Any]:
                counted = proc.request({"op": "count", "event": copy.deepcopy(event)})
                check_status(scenario, counted["response"])
                return counted

            first = count(fresh_event(world, scenario))
            event = fresh_event(world, scenario)
            warm = count(event)
            row: dict[str, Any] = {
                "scenario": name,
                "round_trips": warm["sends"],
                "calls": warm["calls"],
                "target": target,
                "first_round_trips": first["sends"],
                "first_calls": first["calls"],
            }
            if again:
                repeat = count(event)
                row["repeat_round_trips"] = repeat["sends"]
                row["repeat_calls"] = repeat["calls"]
        finally:
            proc.close()
        row["met"] = None if target is None else warm["sends"] <= target
        results[flow] = row
        progress(f"  {flow}: {warm['sends']} ({', '.join(warm['calls'])}); first in an environment {first['sends']}")
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
