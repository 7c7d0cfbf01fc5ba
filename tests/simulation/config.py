"""One run's configuration, drawn from its seed. Seeds cycle through families of configurations
(calm, DynamoDB faults, Stripe faults, kills, eager sweeps, the gateway, rushes, chaos) so that
any run of consecutive seeds covers all of them."""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field
from typing import Any

from .dynamodb import DynamoFaults
from .stripe_world import StripeFaults

FAMILIES = ("calm", "dynamodb", "stripe", "kills", "sweeper", "gateway", "rush", "chaos")


@dataclass
class Config:
    seed: int
    family: str = "calm"
    users: int = 3
    products: int = 4
    actions_per_user: int = 3
    think_seconds: float = 20.0  # mean pause between a user's actions
    platform_orders: int = 2  # pending orders written by the platform (paid with {"order": N})
    platform_paid: float = 0.3  # share of them already paid through the gateway before the run
    reconcile_after_minutes: int | None = None  # None: the template's default (60)
    checkout_expires_minutes: int | None = None  # None: the template's default (30)
    gateway_max_age_seconds: int | None = None  # None: the template's default (no check)
    sweep_every_minutes: float = 15.0
    extra_sweeps: int = 0  # sweeps at random moments on top of the schedule
    sweep_race: float = 0.0  # share of Stripe checkouts during which a sweep starts
    dynamo: DynamoFaults = field(default_factory=DynamoFaults)
    stripe: StripeFaults = field(default_factory=StripeFaults)
    kill_rate: float = 0.0  # share of invocations stopped at a random I/O point
    event_loss: float = 0.0  # a Stripe event never delivered (the endpoint was down past Stripe's retries)
    event_dup: float = 0.05
    event_late: float = 0.1  # delivered minutes late (reordered)
    early_pay: float = 0.0  # share of sessions paid within a second of their creation (wallets)
    metadata_edit: float = 0.0  # share of sessions whose metadata is edited in the Dashboard
    refunds: float = 0.1  # share of paid sessions refunded later (full or partial)
    disputes: float = 0.08  # share of the other paid sessions disputed by the cardholder (won or lost)
    gateway_events: int = 0
    txn_pool: int = 4  # gateway transaction ids are drawn from this many
    hostile: int = 0  # signed-but-hostile inputs (huge numbers, overflowing token expiry)
    reprices: int = 0  # the shop changes a product's price this many times during the run
    rush: int = 0  # users paying different existing orders at the same instant
    backlog: int = 0  # abandoned Stripe checkouts at the start: a long sweep
    impatient: float = 0.1  # share of Stripe checkouts raced by a {"order": N} of the same order
    double_submit: float = 0.15
    event_delay: tuple[float, float] = (0.05, 3.0)  # a delivery's usual delay (seconds)
    stock: int | None = None  # every product's stock (None: drawn, small, so sold-out races happen)
    customer_plan: str | None = None  # every customer does this with their URL (None: drawn)
    customer_delay: float | None = None

    @classmethod
    def quiet(cls, seed: int = 0, **overrides: Any) -> Config:
        """Nothing random happens on its own: the scenarios script what they need."""
        cfg = cls(
            seed=seed,
            family="scenario",
            users=1,
            products=3,
            platform_orders=0,
            event_dup=0.0,
            event_late=0.0,
            refunds=0.0,
            disputes=0.0,
            impatient=0.0,
            double_submit=0.0,
            event_delay=(0.05, 0.2),
            stock=50,
            customer_plan="abandon",
        )
        for name, value in overrides.items():
            setattr(cfg, name, value)
        return cfg

    @classmethod
    def from_seed(cls, seed: int) -> Config:
        rng = random.Random(f"config-{seed}")
        family = FAMILIES[seed % len(FAMILIES)]
        cfg = cls(seed=seed, family=family)
        cfg.users = rng.randint(2, 5)
        cfg.products = rng.randint(3, 6)
        cfg.actions_per_user = rng.randint(2, 4)
        cfg.platform_orders = rng.randint(1, 3)
        cfg.extra_sweeps = rng.randint(0, 2)
        cfg.early_pay = rng.choice((0.0, 0.1, 0.3))
        cfg.gateway_events = rng.randint(0, 3)
        cfg.event_loss = rng.choice((0.0, 0.05, 0.2))
        if rng.random() < 0.35:
            cfg.reconcile_after_minutes = 0
        if family == "dynamodb":
            cfg.dynamo = DynamoFaults(
                throttle=rng.choice((0.02, 0.05, 0.1)),
                server_error=rng.choice((0.0, 0.02)),
                lost=rng.choice((0.02, 0.05, 0.1)),
                bursts=rng.choice((0.0, 0.2, 0.4)),
            )
        elif family == "stripe":
            cfg.stripe = StripeFaults(
                server_error=rng.choice((0.05, 0.15, 0.3)),
                lost=rng.choice((0.05, 0.15)),
                slow=rng.choice((0.0, 0.05, 0.15)),
                slow_episodes=rng.choice((0.0, 0.2)),
            )
            cfg.impatient = 0.4
        elif family == "kills":
            cfg.kill_rate = rng.choice((0.05, 0.15, 0.3))
            cfg.dynamo = DynamoFaults(lost=0.02)
        elif family == "sweeper":
            cfg.reconcile_after_minutes = 0
            cfg.sweep_every_minutes = rng.choice((2.0, 5.0))
            cfg.extra_sweeps = rng.randint(2, 6)
            cfg.sweep_race = 0.3
            cfg.stripe = StripeFaults(slow=rng.choice((0.1, 0.3)), slow_episodes=rng.choice((0.0, 0.3, 0.6)))
            cfg.backlog = rng.choice((0, 15, 30))
            cfg.checkout_expires_minutes = rng.choice((30, 120, 240))
            if cfg.backlog:
                cfg.stock = 200  # the backlog's checkouts all go through
            cfg.event_loss = rng.choice((0.1, 0.3))
        elif family == "gateway":
            cfg.gateway_events = rng.randint(6, 14)
            cfg.txn_pool = rng.randint(2, 4)
            # A deployment that refuses gateway bodies older than a day (PaymentWebhookMaxAgeSeconds).
            cfg.gateway_max_age_seconds = 86400 if seed % 16 == 5 else None
        elif family == "rush":
            cfg.rush = rng.randint(6, 10)
            cfg.users = max(cfg.users, cfg.rush)
            cfg.platform_orders = 2
        elif family == "chaos":
            cfg.dynamo = DynamoFaults(throttle=0.03, server_error=0.01, lost=0.03, bursts=0.1)
            cfg.stripe = StripeFaults(server_error=0.1, lost=0.05, slow=0.05)
            cfg.kill_rate = 0.05
            cfg.metadata_edit = 0.1
            cfg.gateway_events = rng.randint(2, 6)
            cfg.hostile = 2
            cfg.event_loss = 0.1
        if family in ("calm", "chaos"):
            cfg.metadata_edit = max(cfg.metadata_edit, rng.choice((0.0, 0.1)))
            cfg.hostile = max(cfg.hostile, rng.randint(0, 2))
        if family in ("calm", "rush"):
            cfg.reprices = rng.randint(0, 3)
        return cfg

    def describe(self) -> dict[str, Any]:
        return asdict(self)
