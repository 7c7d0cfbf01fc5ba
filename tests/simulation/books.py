"""The money invariants: the service's tables judged against the outside world's books (ledger.py),
with the rules written out in rules.py. Called by `Invariants` (invariants.py) after every step,
after every answer and at quiescence.

The books contract (docs/money.md; what the service records of money that moved):
every audit row about money has `reason` and `details`, where details name the money with
`provider`, `transaction_id` (the PaymentIntent or the gateway's transaction) and `currency`, and
amounts as decimal strings: `amount` (the money in question) and, for refunds, `refunded`
(cumulative). Reasons: `needs_refund`, `partial_refund`, the row moving a payment to `refunded`,
`dispute_opened`, `dispute_funds_withdrawn`, `dispute_funds_reinstated`, `dispute_won`, `dispute_lost`;
`amount_mismatch` / `mismatch` for money whose facts do not match the order (alarmed, held for review).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from .ledger import Money
from .rules import CLOSED_ORDER, OPEN, PAID, PROVIDER_OF, SHOP_CURRENCY, amount, items_total
from .stripe_world import LISTING_LAG

if TYPE_CHECKING:
    from .functions import Invocation
    from .world import World

REFUND_ALARM = "PaymentNeedsRefund"
MISMATCH_ALARM = "AmountMismatch"
HELD_REASONS = frozenset({"needs_refund", "amount_mismatch", "mismatch"})  # money alarmed, not settled
SLACK_SECONDS = 5.0  # an event on its way, a request in flight


Fail = Callable[[str, str], None]
DISPUTE_REASONS = {
    "charge.dispute.created": "dispute_opened",
    "charge.dispute.funds_withdrawn": "dispute_funds_withdrawn",
    "charge.dispute.funds_reinstated": "dispute_funds_reinstated",
    "charge.dispute.closed.won": "dispute_won",
    "charge.dispute.closed.lost": "dispute_lost",
}


def _names_dispute(row: dict[str, Any], reason: str, dispute: str) -> bool:
    return row.get("reason") == reason and (row.get("details") or {}).get("dispute") == dispute


def money_rows(audit: dict[int, list[dict[str, Any]]]) -> Iterable[dict[str, Any]]:
    for rows in audit.values():
        yield from rows


def names(row: dict[str, Any], money: Money) -> bool:
    """Does this audit row name that money (its transaction, or for Stripe its session)?"""
    details = row.get("details") or {}
    named = {str(v) for v in details.values() if isinstance(v, (str, int))}
    return money.transaction in named or (money.session is not None and money.session in named)


def states(row: dict[str, Any], money: Money) -> bool:
    """Does this audit row state that money's amount and currency as the provider captured them?"""
    details = row.get("details") or {}
    try:
        stated = amount(details.get("amount", "-1"))
    except ArithmeticError:
        return False
    return stated == money.amount and str(details.get("currency", "")).lower() == money.currency.lower()


def refunded_of(row: dict[str, Any]) -> Decimal | None:
    value = (row.get("details") or {}).get("refunded")
    try:
        return amount(value) if value is not None else None
    except ArithmeticError:
        return None


class Books:
    def __init__(self, world: World, fail: Fail, tampered: Callable[[Any], bool]) -> None:
        self.world = world
        self.fail = fail
        self.tampered = tampered
        self.seeded_orders = set(world.state.orders())
        self.last_order_status: dict[int, str] = {oid: o["status"] for oid, o in world.state.orders().items()}

    @property
    def ledger(self) -> Any:
        return self.world.ledger

    def placed_by_checkout(self, order_id: int, order: dict[str, Any]) -> bool:
        """Orders the service placed (every order not in the seed): their stock is ours to hold."""
        return order_id not in self.seeded_orders

    # ------------------------------------------------------------------ after every step

    def stock(self, orders: dict[int, dict[str, Any]], stock: dict[int, int]) -> None:
        """stock_conserved: what the shop had = what is on the shelf + what orders that are not
        cancelled hold (sold, or still payable). A cancelled order gives its stock back at once."""
        held: dict[int, int] = {}
        for oid, order in orders.items():
            if self.placed_by_checkout(oid, order) and order["status"] not in CLOSED_ORDER:
                for item in order.get("items") or []:
                    held[int(item["variant"])] = held.get(int(item["variant"]), 0) + int(item["quantity"])
        for variant, seeded in self.ledger.seeded_stock.items():
            now = stock.get(variant, 0)
            if now < 0 or now + held.get(variant, 0) != seeded:
                self.fail(
                    "stock_conserved",
                    f"variant {variant}: stock {now} + held by orders not cancelled {held.get(variant, 0)} "
                    f"!= the shop's {seeded}",
                )

    def on_books(self, orders: dict[int, dict[str, Any]], payments: dict[int, dict[str, Any]]) -> None:
        """money_on_books: a paid (completed or refunded) payment is money a provider captured for it:
        the same transaction, order, amount and currency; its amount is its order's total; it is
        refunded only once that provider refunded all of it."""
        for pid, payment in payments.items():
            if payment["status"] not in PAID:
                continue
            provider = PROVIDER_OF.get(payment["method"])
            money = self.ledger.captured(provider, payment.get("transaction_id")) if provider else None
            order = orders.get(int(payment["order"])) or {}
            currency = str(payment.get("currency") or SHOP_CURRENCY)
            problem = None
            bogus = (payment.get("transaction_id"), int(payment["order"])) in self.ledger.bogus
            if money is None:
                problem = f"no {provider or payment['method']} money was captured under {payment.get('transaction_id')}"
            elif money.order != int(payment["order"]) and bogus:
                # The gateway signed a report giving this order a transaction it captured for another,
                # and that report came first: nothing can tell it from the truth. The real money, when
                # it comes, must be held with an alarm (captured_money_accounted).
                continue
            elif money.order != int(payment["order"]):
                problem = f"its money ({money.describe()}) was paid for another order"
            elif (money.amount, money.currency) != (amount(payment["amount"]), currency):
                problem = f"{payment['amount']} {currency} recorded, {money.amount} {money.currency} captured"
            elif amount(payment["amount"]) != amount(order.get("total_price", -1)):
                problem = f"amount {payment['amount']} is not its order's total {order.get('total_price')}"
            elif payment["status"] == "refunded" and not money.fully_refunded:
                problem = f"refunded, but the provider refunded {money.refunded} of {money.amount}"
            if problem:
                self.fail("money_on_books", f"payment {pid} ({payment['method']}, {payment['status']}): {problem}")
        for oid, order in orders.items():
            if oid not in self.seeded_orders and amount(order["total_price"]) != items_total(order.get("items") or []):
                self.fail("money_on_books", f"order {oid}'s total {order['total_price']} is not the sum of its lines")

    def cancellations(self, orders: dict[int, dict[str, Any]]) -> None:
        """needless_cancel: an order is cancelled only when nothing can pay it any more: never while a
        checkout URL a customer was given is still open at Stripe."""
        now = self.world.clock.now
        for oid, order in orders.items():
            before = self.last_order_status.get(oid)
            self.last_order_status[oid] = order["status"]
            if order["status"] != "cancelled" or before == "cancelled":
                continue
            for made in self.ledger.sessions_of(oid):
                answer = self.world.answered_sessions.get(made.id)
                state = self.world.stripe.session_state(made.id)["obj"]
                if answer is not None and state["status"] == "open" and made.expires_at > now:
                    self.fail(
                        "needless_cancel",
                        f"order {oid} was cancelled while session {made.id} (answered by {answer.describe()}) "
                        "was open for its customer to pay",
                    )

    # ------------------------------------------------------------------ after a sweep

    def released_after_sweep(self, sweep: Invocation, orders: dict[int, dict[str, Any]]) -> None:
        """dead_order_released: an order our checkout placed that nothing can pay any more (every
        session of it closed unpaid at Stripe, every gateway transaction for it failed) gives its
        stock back by the end of the first finished, error-free sweep that starts after that (after
        Stripe lists the session's closing, for a Stripe payment: List Events is up to LISTING_LAG late)."""
        summary = sweep.body if isinstance(sweep.body, dict) else {}
        if sweep.status is None or not summary.get("finished") or summary.get("stripe_errors"):
            return
        for oid, order in orders.items():
            if order["status"] != "pending" or not self.placed_by_checkout(oid, order):
                continue
            dead_since = self.dead_since(oid, order)
            stripe = any(ref["method"] == "stripe" for ref in (order.get("payments") or {}).values())
            if dead_since is not None and dead_since + SLACK_SECONDS + stripe * LISTING_LAG < sweep.started:
                sessions = {
                    made.id: (made.payment, self.world.stripe.session_state(made.id)["obj"]["status"])
                    for made in self.ledger.sessions_of(oid)
                }
                self.fail(
                    "dead_order_released",
                    f"order {oid} is still pending with its stock {sweep.started - dead_since:.0f} s after nothing "
                    f"could pay it any more (payments {order.get('payments')}, sessions {sessions}); "
                    f"sweep {sweep.describe()} left it",
                )

    def dead_since(self, oid: int, order: dict[str, Any]) -> float | None:
        """When the last way to pay this order closed (outside world), or None if one is still open."""
        closed_at: list[float] = []
        stripe = self.world.stripe
        payments = {int(p): ref for p, ref in (order.get("payments") or {}).items()}
        sessions = {made.payment: made for made in self.ledger.sessions_of(oid)}
        for pid, ref in payments.items():
            if ref["method"] == "stripe":
                made = sessions.get(pid)
                if made is None:
                    return None  # no session yet: its checkout (or a retry) may still open one
                state = stripe.session_state(made.id)
                if state["charge"] is not None or state["delayed"] == "processing":
                    return None
                if state["obj"]["status"] == "open":
                    return None
                closed_at.append(stripe.closed_at.get(made.id, made.expires_at))
            elif ref["method"] == "ONLINE":
                txns = [t for t in self.world.gateway.transactions.values() if t.order == oid]
                if not txns or any(t.status != "failed" for t in txns):
                    return None
                closed_at.append(max(t.failed_at for t in txns))
            else:
                return None
        return max(closed_at) if closed_at else None

    # ------------------------------------------------------------------ after a webhook's 2xx

    def stripe_effect(self, inv: Invocation, payments: dict[int, dict[str, Any]], audit: Any) -> None:
        """webhook_effect (Stripe): a 2xx means the event's effect is in the tables, or it is provably
        not ours (no session our checkout asked for, no money of ours)."""
        event = inv.request.get("event") or {}
        kind, obj = str(event.get("type")), (event.get("data") or {}).get("object") or {}
        if kind == "charge.refunded":
            self._refund_effect(inv, "stripe", str(obj.get("payment_intent")), obj, payments, audit)
            return
        if kind.startswith("charge.dispute."):
            self._dispute_effect(inv, kind, obj, payments, audit)
            return
        made = self.ledger.sessions.get(str(obj.get("id")))
        payment = payments.get(made.payment) if made is not None and made.payment is not None else None
        if payment is None or self.tampered(obj.get("id")):
            return  # not a session our checkout asked for (or whose money nobody can attribute)
        trail = audit.get(int(payment["id"]), [])
        alarmed = any(r.get("reason") in HELD_REASONS for r in trail)
        paid = kind == "checkout.session.async_payment_succeeded" or (
            kind == "checkout.session.completed" and obj.get("payment_status") == "paid"
        )
        status = payment["status"]
        if paid:
            ok = (status in PAID and payment.get("transaction_id") == obj.get("payment_intent")) or alarmed
        elif kind == "checkout.session.completed":
            ok = status != "pending" or alarmed
        elif kind in ("checkout.session.expired", "checkout.session.async_payment_failed"):
            ok = status not in OPEN
        else:
            return
        if not ok:
            self.fail(
                "webhook_effect",
                f"{kind} {event.get('id')} for payment {payment['id']} answered {inv.status} ({inv.text[:100]}); "
                f"the payment is {status}",
            )

    def gateway_effect(self, inv: Invocation, payments: dict[int, dict[str, Any]], audit: Any) -> None:
        """webhook_effect (gateway): a 2xx means the reported transaction's state is in the tables."""
        try:
            body = json.loads(inv.request.get("raw") or b"{}")
        except ValueError:
            return
        txn, status = str(body.get("payment_id")), str(body.get("status"))
        order = int(body["order_reference"]) if str(body.get("order_reference", "")).isdigit() else None
        online = [p for p in payments.values() if p["method"] == "ONLINE" and int(p["order"]) == order]
        mine = [p for p in online if p.get("transaction_id") == txn]
        if status == "refunded":
            self._refund_effect(inv, "gateway", txn, body, payments, audit)
            return
        if status == "completed":
            ok = any(p["status"] in PAID for p in mine)
        elif status == "processing":
            ok = any(p["status"] != "pending" for p in online)
        elif status == "failed":
            ok = not any(p["status"] in OPEN for p in mine)
        else:
            return
        if not ok:
            shown = [(p["id"], p.get("transaction_id"), p["status"]) for p in online]
            self.fail(
                "webhook_effect",
                f"gateway payment.{status} {txn} for order {order} answered {inv.status} ({inv.text[:100]}); "
                f"the order's ONLINE payments: {shown}",
            )

    def _refund_effect(
        self, inv: Invocation, provider: str, txn: str, obj: dict[str, Any], payments: Any, audit: Any
    ) -> None:
        money = self.ledger.captured(provider, txn)
        if money is None:
            return  # no money of ours under that transaction
        paid = [p for p in payments.values() if p.get("transaction_id") == txn and p["status"] in PAID]
        if not paid:
            return  # held for a refund, never settled: nothing of ours to mark
        payment = paid[0]
        if money.fully_refunded or payment["status"] == "refunded":
            ok = payment["status"] == "refunded"
        else:
            rows = [r for r in audit.get(int(payment["id"]), []) if r.get("reason") == "partial_refund"]
            ok = any((refunded_of(r) or 0) >= money.refunded for r in rows)
        if not ok:
            self.fail(
                "webhook_effect",
                f"{provider} refund of {txn} ({money.refunded} of {money.amount}) answered {inv.status}; payment "
                f"{payment['id']} is {payment['status']} with no partial_refund row for it",
            )

    def _dispute_effect(self, inv: Invocation, kind: str, obj: dict[str, Any], payments: Any, audit: Any) -> None:
        money = self.ledger.captured("stripe", str(obj.get("payment_intent")))
        paid = self._paid(money, payments) if money is not None else None
        if paid is None:
            return  # not money of ours that a payment holds
        reason = DISPUTE_REASONS.get(kind) or DISPUTE_REASONS.get(f"{kind}.{obj.get('status')}")
        if reason is None:
            return
        if not any(_names_dispute(r, reason, str(obj.get("id"))) for r in audit.get(int(paid["id"]), [])):
            self.fail(
                "webhook_effect",
                f"{kind} {obj.get('id')} for payment {paid['id']} answered {inv.status}; no {reason} record names it",
            )

    def _paid(self, money: Money, payments: dict[int, dict[str, Any]]) -> dict[str, Any] | None:
        """The paid payment that holds this money, if one does."""
        return next(
            (
                p
                for p in payments.values()
                if p.get("transaction_id") == money.transaction
                and PROVIDER_OF.get(p["method"]) == money.provider
                and p["status"] in PAID
            ),
            None,
        )

    # ------------------------------------------------------------------ at quiescence

    def disputes(self, payments: dict[int, dict[str, Any]], audit: dict[int, list[dict[str, Any]]]) -> None:
        """disputes_recorded: every dispute of money a payment holds is on the books (opened, and how
        it closed, naming the dispute and its amount) and was alarmed (`PaymentDisputed`)."""
        alarms = sum(inv.metric("PaymentDisputed") for inv in self.world.functions.invocations)
        opened = 0
        for money in self.ledger.money.values():
            paid = self._paid(money, payments)
            if paid is None:
                continue
            rows = audit.get(int(paid["id"]), [])
            for dispute in money.disputes.values():
                opened += 1
                wanted = ["dispute_opened"] + ([f"dispute_{dispute.status}"] if dispute.status != "open" else [])
                for reason in wanted:
                    found = [r for r in rows if _names_dispute(r, reason, dispute.id)]
                    if not found or amount((found[0].get("details") or {}).get("amount", -1)) != dispute.amount:
                        self.fail(
                            "disputes_recorded",
                            f"{money.describe()}: dispute {dispute.id} ({dispute.status}, {dispute.amount}) has no "
                            f"{reason} record with its amount on payment {paid['id']}",
                        )
        if alarms < opened:
            self.fail("disputes_recorded", f"{opened} disputes opened, PaymentDisputed counted {alarms:.0f}")

    def accounted(self, payments: dict[int, dict[str, Any]], audit: dict[int, list[dict[str, Any]]]) -> None:
        """captured_money_accounted: every amount a provider captured is on exactly one paid payment
        of its order (the same transaction), or alarmed for refund with an audit record naming it, its
        amount and its currency, filed under a payment of its order or under payment 0."""
        alarms = self._alarms()
        rows = list(money_rows(audit))
        for money in self.ledger.money.values():
            settled = [
                p
                for p in payments.values()
                if p.get("transaction_id") == money.transaction
                and PROVIDER_OF.get(p["method"]) == money.provider
                and int(p["order"]) == money.order
                and p["status"] in PAID
            ]
            if len(settled) == 1:
                continue
            if settled:
                self.fail("captured_money_accounted", f"{money.describe()} is on payments {[p['id'] for p in settled]}")
            # A signed report of the same transaction for another order, with no money behind it, may have
            # been recorded first (the fact is one per transaction): its record names the transaction, with
            # the report's amount. Nothing can tell it from the truth; the runbook asks the provider.
            forged = any(transaction == money.transaction for transaction, _ in self.ledger.bogus)
            recorded = [
                r for r in rows if r.get("reason") in HELD_REASONS and names(r, money) and (states(r, money) or forged)
            ]
            misfiled = [
                pid
                for pid, filed in audit.items()
                for r in filed
                if r in recorded
                and str(r.get("order")) == str(money.order)  # (not another order's report of that transaction)
                and pid != 0
                and int((payments.get(pid) or {"order": -1})["order"]) != money.order
            ]
            if misfiled:  # docs/money.md: under the payment it came for, or payment 0 when none of ours holds it
                self.fail("captured_money_accounted", f"{money.describe()} is recorded under payments {misfiled}")
            if recorded and alarms:
                continue
            session = f"; session metadata edited: {self.world.metadata_edits.get(money.session or '')}"
            self.fail(
                "captured_money_accounted",
                f"{money.describe()} is on no payment and "
                + (
                    "no audit record names it, its amount and currency"
                    if not recorded
                    else "no refund alarm was raised"
                )
                + (session if money.session in self.world.metadata_edits else ""),
            )

    def refunds(self, payments: dict[int, dict[str, Any]], audit: dict[int, list[dict[str, Any]]]) -> None:
        """refunds_recorded: money refunded at its provider is on the books: the payment refunded when
        in full, a partial_refund record with the cumulative amount otherwise (and still completed)."""
        for money in self.ledger.money.values():
            if not money.refunded:
                continue
            ours = (money.transaction, money.order)  # a payment of another order under it holds a bogus claim
            paid = [p for p in payments.values() if (p.get("transaction_id"), int(p["order"])) == ours]
            paid = [p for p in paid if p["status"] in PAID]
            if not paid:
                continue  # alarmed money (see captured_money_accounted): refunding it is the cure
            payment = paid[0]
            if money.fully_refunded:
                if payment["status"] != "refunded":
                    self.fail(
                        "refunds_recorded",
                        f"{money.describe()} was refunded in full; payment {payment['id']} is {payment['status']}",
                    )
                continue
            rows = [r for r in audit.get(int(payment["id"]), []) if r.get("reason") == "partial_refund"]
            if payment["status"] != "completed" or not any(refunded_of(r) == money.refunded for r in rows):
                self.fail(
                    "refunds_recorded",
                    f"{money.describe()}: {money.refunded} refunded; payment {payment['id']} is {payment['status']} "
                    f"with partial refunds {[refunded_of(r) for r in rows]}",
                )

    def promises(self, audit: dict[int, list[dict[str, Any]]]) -> None:
        """promise_kept: "nothing was charged" is true for ever after; "it will be refunded" is true
        (money was charged for the checkout) and alarmed."""
        alarms = self._alarms()
        for promise in self.ledger.promises:
            if promise.kind == "nothing_charged":
                charged = [m for pid in promise.payments for m in self.ledger.charged_payment(pid)]
                if charged:
                    self.fail(
                        "promise_kept",
                        f"{promise.invocation.describe()} said nothing was charged; {charged[0].describe()}",
                    )
            elif promise.kind == "will_be_refunded":
                if not any(self.ledger.charged_payment(pid) for pid in promise.payments):
                    self.fail("promise_kept", f"{promise.invocation.describe()} promised a refund; nothing was charged")
                rows = [r for pid in promise.payments for r in audit.get(pid, []) if r.get("reason") == "needs_refund"]
                if not rows or not alarms:
                    self.fail("promise_kept", f"{promise.invocation.describe()} promised a refund; nothing alarms it")

    def settled(
        self, orders: dict[int, dict[str, Any]], payments: dict[int, dict[str, Any]], audit: dict[int, Any]
    ) -> None:
        """no_payment_left_open: at quiescence (Stripe and the gateway have closed everything) no Stripe
        or gateway payment stays open unless it is held with an alarm for someone to look at (money
        whose facts do not match), and no order our checkout placed stays pending unless such a held
        payment is what keeps it."""
        alarmed = self._alarms() > 0
        held = {pid for pid in payments if any(r.get("reason") in HELD_REASONS for r in audit.get(pid, []))}
        for pid, payment in payments.items():
            if payment["method"] != "COD" and payment["status"] in OPEN and not (pid in held and alarmed):
                self.fail("no_payment_left_open", f"{payment['method']} payment {pid} is still {payment['status']}")
        for oid, order in orders.items():
            if order["status"] != "pending" or oid in self.seeded_orders:
                continue
            waiting = {int(p) for p, ref in (order.get("payments") or {}).items() if ref["status"] in OPEN}
            tampered = any(self.tampered(s.id) for s in self.ledger.sessions_of(oid))
            if not tampered and not (waiting and waiting <= held and alarmed):
                self.fail(
                    "no_payment_left_open",
                    f"order {oid} ({order.get('origin')}) is still pending with payments {order.get('payments')}",
                )

    def _alarms(self) -> float:
        return sum(inv.metric(REFUND_ALARM) + inv.metric(MISMATCH_ALARM) for inv in self.world.functions.invocations)
