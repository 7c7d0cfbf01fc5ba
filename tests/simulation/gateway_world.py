"""The generic payment gateway, modelled: its transactions (each for one order, captured once, maybe
refunded in parts) and the signed events it sends about them, retried until acknowledged as a
gateway's webhook sender does. Money it captures is written into the outside world's books before
the event announcing it is sent, whatever our service answers.

Besides honest events it sends what an imperfect gateway (or someone holding its secret) sends:
exact replays of earlier bodies, and a transaction already reported for one order reported again
for another (no money moved for the second: a bogus claim).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from .rules import SHOP_CURRENCY

if TYPE_CHECKING:
    from .functions import Invocation
    from .world import World

RETRY_DELAYS = (5.0, 30.0, 120.0, 600.0, 1800.0, 3600.0)


@dataclass
class Transaction:
    id: str
    order: int
    status: str = "processing"  # processing | completed | failed
    amount: Decimal = Decimal(0)  # what was captured (completed)
    refunded: Decimal = Decimal(0)  # cumulative
    failed_at: float = 0.0


class Gateway:
    def __init__(self, world: World) -> None:
        self.world = world
        self.transactions: dict[str, Transaction] = {}
        self._next = 0

    def seeded(self, transaction: str, order: int, amount: Decimal) -> None:
        """A transaction the platform recorded before the run (paid through the gateway)."""
        self.transactions[transaction] = Transaction(transaction, order, "completed", amount)
        self.world.ledger.gateway_captured(transaction, order, amount, SHOP_CURRENCY, self.world.clock.now)

    def open(self, order: int) -> Transaction:
        self._next += 1
        txn = Transaction(f"gw_{self.world.config.seed}_{self._next}", order)
        self.transactions[txn.id] = txn
        return txn

    # ------------------------------------------------------------------ what happens at the gateway

    def processing(self, txn: Transaction, total: Decimal) -> Invocation | None:
        return self.send(self.body(txn, "processing", total))

    def capture(self, txn: Transaction, amount: Decimal) -> Invocation | None:
        """The payer's money is taken (maybe not the order's total), then the gateway says so."""
        txn.status, txn.amount = "completed", amount
        self.world.ledger.gateway_captured(txn.id, txn.order, amount, SHOP_CURRENCY, self.world.clock.now)
        return self.send(self.body(txn, "completed", amount))

    def fail(self, txn: Transaction, total: Decimal) -> Invocation | None:
        txn.status, txn.failed_at = "failed", self.world.clock.now
        return self.send(self.body(txn, "failed", total))

    def refund(self, txn: Transaction, amount: Decimal) -> Invocation | None:
        """Give back `amount` more of a captured transaction; the event carries the cumulative
        amount refunded on the transaction (as Stripe's `amount_refunded` does)."""
        txn.refunded += amount
        self.world.ledger.gateway_refunded(txn.id, txn.refunded)
        return self.send(self.body(txn, "refunded", txn.refunded))

    def bogus(self, txn: Transaction, order: int, total: Decimal) -> Invocation | None:
        """A captured transaction reported as paying another order too: no money moved for it."""
        self.world.ledger.bogus.append((txn.id, order))
        claim = Transaction(txn.id, order, "completed", total)
        return self.send(self.body(claim, "completed", total))

    # ------------------------------------------------------------------ the wire

    def body(self, txn: Transaction, status: str, amount: Decimal) -> bytes:
        return json.dumps(
            {
                "event_type": f"payment.{status}",
                "payment_id": txn.id,
                "order_reference": str(txn.order),
                "amount": f"{amount:.2f}",
                "status": status,
                "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.world.clock.now)),
            }
        ).encode()

    def send(self, raw: bytes) -> Invocation | None:
        """Deliver until acknowledged or refused: a gateway retries what was not answered, a 5xx,
        and a 409 that asks to come back (Retry-After). Returns the last answer."""
        world = self.world
        answer: Invocation | None = None
        for wait in (*RETRY_DELAYS, None):
            answer = world.send_gateway(raw)
            if not _retry(answer):
                return answer
            if wait is None:
                world.gateway_lost.append(raw)
                return answer
            world.sleep(wait * world.rng.uniform(0.8, 1.2))
        return answer

    def finish(self) -> None:
        """At quiescence the gateway settles what it left processing, and delivers what it lost."""
        rng = self.world.rng
        for raw in list(self.world.gateway_lost):
            self.world.gateway_lost.remove(raw)
            self.send(raw)
        for txn in list(self.transactions.values()):
            if txn.status == "processing":
                order = self.world.state.orders().get(txn.order)
                total = Decimal(str(order["total_price"])) if order else Decimal("1.00")
                if rng.random() < 0.5:
                    self.capture(txn, total)
                else:
                    self.fail(txn, total)


def _retry(answer: Invocation) -> bool:
    if answer.status is None or answer.status >= 500:  # no answer (stopped, throttled), or our fault
        return True
    return answer.status == 409 and "retry-after" in answer.headers


def order_total(order: dict[str, Any]) -> Decimal:
    return Decimal(str(order["total_price"]))
