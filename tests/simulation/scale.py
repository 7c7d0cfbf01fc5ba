"""Scale, with the same model (issue 12's last item): conflicts and retries per 1,000 checkouts at 1,
8 and 64 concurrent users, each user checking out a product of their own (so nothing but the
service's own shared items can make them conflict). No faults: every extra TransactWriteItems is
a conflict-driven retry.

    python -m simulation --scale
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from functools import partial
from typing import Any

from .config import Config
from .runner import Simulation
from .world import COD, World

CHECKOUTS = 1000
LEVELS = (1, 8, 64)


@dataclass
class Measure:
    concurrency: int
    checkouts: int = 0
    placed: int = 0
    refused: dict[int, int] | None = None
    transactions: int = 0
    conflicts: int = 0
    condition_failures: int = 0
    virtual_seconds: float = 0.0
    real_seconds: float = 0.0

    def per_thousand(self, value: int) -> float:
        return 1000 * value / max(self.checkouts, 1)

    @property
    def retries(self) -> int:
        """TransactWriteItems sent beyond one per checkout."""
        return self.transactions - self.checkouts


class ScaleRun(Simulation):
    """Only the checkouts: no quiescence, no invariants between steps (the random runs check those)."""

    def __init__(self, concurrency: int) -> None:
        config = Config.quiet(
            seed=concurrency, users=concurrency, products=concurrency, stock=10**6, customer_plan="abandon"
        )
        super().__init__(config, self._script, check_every_step=False)
        self.concurrency = concurrency
        self.measure = Measure(concurrency, refused={})

    def _quiesce(self, world: World) -> None:
        stats = world.dynamo.stats
        self.measure.transactions = stats.operations["TransactWriteItems"]
        self.measure.conflicts = stats.conflicts
        self.measure.condition_failures = stats.condition_failures
        self.measure.virtual_seconds = world.clock.elapsed

    def _script(self, world: World) -> None:
        world.invariants.step = lambda: None  # measured, not checked
        world.invariants.final = lambda: None
        rounds = -(-CHECKOUTS // self.concurrency)

        def shopper(user: int) -> None:
            for _ in range(rounds):
                world.put_cart(user, {user: 1})  # the user's own product
                answer = world.checkout(world.users[user], COD, {"shipping_address": user}, None)
                self.measure.checkouts += 1
                if answer.status == 201:
                    self.measure.placed += 1
                    forget(world, answer.body["order_id"], answer.body["payment"]["id"])
                else:
                    refused = self.measure.refused or {}
                    refused[answer.status or 0] = refused.get(answer.status or 0, 0) + 1
                world.sleep(world.rng.uniform(0.0, 0.01))  # closed loop: always this many checkouts in flight

        for user in sorted(world.users):
            world.spawn(f"shopper{user}", partial(shopper, user))

    def run_measure(self) -> Measure:
        started = time.perf_counter()
        result = self.run()
        if result.error is not None:
            raise result.error
        self.measure.real_seconds = time.perf_counter() - started
        return self.measure


def main() -> int:
    rows: list[dict[str, Any]] = []
    for level in LEVELS:
        m = ScaleRun(level).run_measure()
        rows.append(
            {
                "concurrent users": level,
                "checkouts": m.checkouts,
                "refused": dict(sorted((m.refused or {}).items())),
                "conflicts /1000": round(m.per_thousand(m.conflicts + m.condition_failures), 1),
                "  TransactionConflict": round(m.per_thousand(m.conflicts), 1),
                "  condition failed": round(m.per_thousand(m.condition_failures), 1),
                "retries /1000": round(m.per_thousand(m.retries), 1),
                "transactions /checkout": round(m.transactions / max(m.checkouts, 1), 2),
                "real s": round(m.real_seconds, 1),
            }
        )
        print(rows[-1])
        sys.stdout.flush()
    print("\n| " + " | ".join(rows[0]) + " |")
    print("|" + "---|" * len(rows[0]))
    for row in rows:
        print("| " + " | ".join(str(v) for v in row.values()) + " |")
    return 0


def forget(world: World, order: int, payment: int) -> None:
    """Drop a placed order's items from moto (not through DynamoDB: no request, no I/O point).
    moto copies every table a transaction touches, so the tables must stay small for 1,000
    checkouts; the contention measured is on the items every checkout shares, which stay."""
    tables = world.dynamo.backend().tables
    names = world.state.tables
    for logical, key in (("OrdersTable", order), ("PaymentsTable", payment), ("PaymentAuditTable", payment)):
        table = tables[names[logical]]
        for hash_key in [k for k in table.items if str(k.value) == str(key)]:
            del table.items[hash_key]
