"""Running one seed: build the world, let the actors loose with the invariants checked after every
step, then bring it to quiescence (faults off, every window passed, final sweeps) and check the rest."""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any

from . import actors
from .clock import VirtualClock
from .config import Config
from .invariants import Invariants
from .scheduler import Scheduler
from .world import MAX_STEPS, Result, Violation, World, build_world, simulated_process, stripe_wire

Scenario = Callable[[World], None]
READ_QUERIES = ("", "status=failed&method=stripe", "ordering=-created_at&page_size=2", "ordering=-id&page_size=3")
MAX_PAGES = 200  # a `next` that never ends stops here (list_count reports what it saw)


class Simulation:
    def __init__(self, config: Config, scenario: Scenario | None = None, *, check_every_step: bool = True) -> None:
        self.config = config
        self.scenario = scenario
        self.check_every_step = check_every_step

    def run(self) -> Result:
        started = time.perf_counter()
        clock = VirtualClock()
        scheduler = Scheduler(clock, random.Random(f"schedule-{self.config.seed}"))
        violations: list[Violation] = []
        error: BaseException | None = None
        stats: dict[str, Any] = {}
        world: World | None = None
        with simulated_process(clock, scheduler, self.config.seed), ExitStack() as wire:
            try:
                world = build_world(self.config, scheduler, clock)
                wire.enter_context(stripe_wire(world.stripe))
                world.invariants = Invariants(world)
                actors.connect_stripe(world)
                if self.scenario is not None:
                    self.scenario(world)
                else:
                    actors.start(world)
                self._drain(world)
                self._quiesce(world)
                world.invariants.final()
            except Violation as found:  # stop_on_first
                violations.append(found)
            except Exception as exc:
                error = exc
            finally:
                scheduler.close()
                if world is not None:
                    stats = _stats(world)
                    if world.invariants is not None:
                        violations = list(world.invariants.found.values()) or violations
                    world.functions.discard()
        trace = world.trace if world is not None else []
        return Result(
            seed=self.config.seed,
            family=self.config.family,
            violations=violations,
            trace_hash=hashlib.sha256("\n".join(trace).encode()).hexdigest()[:16],
            steps=scheduler.steps,
            virtual_seconds=clock.elapsed,
            real_seconds=time.perf_counter() - started,
            stats=stats,
            error=error,
            trace=trace,
            story=_story(world) if world is not None else [],
        )

    def _drain(self, world: World) -> None:
        scheduler = world.scheduler
        while scheduler.step() is not None:
            if world.dirty and self.check_every_step:
                world.dirty = False
                world.invariants.step()
            if scheduler.steps > MAX_STEPS:
                raise RuntimeError(f"more than {MAX_STEPS} steps: a livelock?")

    def _quiesce(self, world: World) -> None:
        """Faults stop, Stripe settles everything it will (expiry, delayed payments), every window
        passes, and the reconciler sweeps until it reports a finished, error-free sweep."""
        world.closing = True
        world.dynamo.enabled = world.stripe.enabled = False
        world.functions.kill_rate = 0.0
        self._drain(world)

        def stripe_closes() -> None:
            stripe = world.stripe
            open_until = [
                stripe.session_state(s)["obj"]["expires_at"]
                for s in stripe.all_sessions()
                if stripe.session_state(s)["obj"]["status"] == "open"
            ]
            if open_until:
                world.sleep(max(max(open_until) - world.clock.now, 0) + 1)
            stripe.expire_due()
            for session in stripe.all_sessions():
                if stripe.session_state(session)["delayed"] == "processing":
                    stripe.act(session, world.rng.choice(("confirm", "decline")))

        world.spawn("stripe-closes", stripe_closes)
        world.spawn("gateway-closes", world.gateway.finish)
        self._drain(world)

        def final_sweeps() -> None:
            after = world.functions.specs["ReconcilePaymentsFunction"]
            minutes = int(world.functions.env["ReconcilePaymentsFunction"].get("RECONCILE_AFTER_MINUTES") or 60)
            world.sleep(minutes * 60 + after.timeout + 600)
            # A sweep that finishes may have resumed where an earlier one stopped: the one after it
            # starts from the beginning. Two finished, error-free sweeps in a row cover everything.
            clean = 0
            for _ in range(12):
                sweep = world.sweep()
                summary = sweep.body if isinstance(sweep.body, dict) else {}
                clean = clean + 1 if summary.get("finished") and not summary.get("stripe_errors") else 0
                if clean == 2:
                    return
                world.sleep(60)

        world.spawn("final-sweeps", final_sweeps)
        self._drain(world)

        def reads() -> None:
            owners = {int(p["user"]) for p in world.state.payments().values()}
            for user in sorted(owners & set(world.users)):
                for query in READ_QUERIES:
                    pages = [world.list_payments(user, query)]
                    while (pages[-1].body or {}).get("next") and len(pages) < MAX_PAGES:
                        following = pages[-1].body["next"].split("?", 1)[1]
                        pages.append(world.list_payments(user, following))
                    back = [pages[-1]]  # and back from the last page through `previous`
                    while len(pages) > 1 and (back[-1].body or {}).get("previous") and len(back) < MAX_PAGES:
                        back.append(world.list_payments(user, back[-1].body["previous"].partition("?")[2]))
                    world.invariants.list_check(user, query, pages, back)

        world.spawn("final-reads", reads)
        self._drain(world)


def _story(world: World) -> list[str]:
    lines = []
    for inv in world.functions.invocations:
        request = {k: v for k, v in inv.request.items() if k in ("method", "path", "user", "key", "kind")}
        body = inv.request.get("body")
        if isinstance(body, bytes):
            body = body[:160].decode(errors="replace")
        event = inv.request.get("event") or {}
        what = f"{event.get('type')} {event.get('id')}" if event else (str(body)[:160] if body else "")
        calls = " ".join(f"{op}:{outcome}" for _, op, outcome in inv.calls)
        lines.append(
            f"[{inv.started - world.clock.start:.3f}-{(inv.ended or 0) - world.clock.start:.3f}] {inv.describe()}"
            f"\n    sent {request} {what}\n    calls {calls}\n    metrics {inv.metrics}"
        )
    return lines


def _stats(world: World) -> dict[str, Any]:
    invocations = world.functions.invocations
    return {
        "invocations": len(invocations),
        "answers": sum(1 for i in invocations if i.status is not None),
        "kills": world.functions.kills,
        "cold_starts": world.functions.cold_starts,
        "dynamodb_faults": dict(world.dynamo.stats.faults),
        "dynamodb_conflicts": world.dynamo.stats.conflicts,
        "token_replays": world.dynamo.stats.token_replays,
        "stripe_requests": world.stripe.stats.requests,
        "stripe_faults": dict(world.stripe.stats.faults),
        "keys_in_use": world.stripe.stats.keys_in_use,
        "sessions": len(world.stripe.all_sessions()),
        "events_lost": len(world.lost_events),
        "notes": dict(world.invariants.notes) if world.invariants else {},
        "step_checks": world.invariants.step_checks if world.invariants else 0,
    }


_warm = False


def warm_up() -> None:
    """Run a small world once per process before any seed. Some imports draw from the global
    `random` (importing stripe does), and the functions import on first use: without this, a seed
    run first in its process would see other random draws than the same seed run later, and a
    replay in a fresh process would not be exact."""
    global _warm  # noqa: PLW0603 - once per process
    if _warm:
        return
    _warm = True
    from . import scenarios

    def everything(world: World) -> None:
        user = world.users[1]
        world.spawn("warm-stripe", lambda: actors.checkout(world, user, scenarios.CHECKOUT, {"shipping_address": 1}))
        world.spawn("warm-cod", lambda: actors.cod_checkout(world, user), delay=5)
        world.spawn("warm-order", lambda: actors.pay_order(world, user), delay=10)
        world.spawn("warm-gateway", lambda: actors.gateway(world), delay=15)
        world.spawn("warm-sweep", world.sweep, delay=20)
        world.spawn("warm-hostile", lambda: actors.hostile(world, 0), delay=25)

    Simulation(Config.quiet(customer_plan="pay", platform_orders=1), everything).run()


def run_seed(seed: int, **overrides: Any) -> Result:
    warm_up()
    config = Config.from_seed(seed)
    for name, value in overrides.items():
        setattr(config, name, value)
    return Simulation(config).run()
