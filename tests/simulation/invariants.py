"""The invariants: what must hold after every step, after every answer, and at quiescence.

State is read from moto's memory (`State`), never through the client the functions use, and judged
against the outside world's books (`ledger.py`: what Stripe and the gateway captured, refunded and
disputed, what stock the shop had, what customers were told) with the rules written out in
`rules.py` from the spec. Nothing here is imported from `layers/`: a wrong rule in the layer cannot
make its own judge agree with it. The money invariants themselves are in `books.py`.
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import events_check
from .books import Books
from .ledger import Promise
from .rules import NEXT, OPEN, PAID, amount, chargeable, may_move
from .state import lines_of

if TYPE_CHECKING:
    from .functions import Invocation
    from .world import World

# name -> the statement, as docs/reliability.md lists them (a test keeps the two equal)
KEY_DAY = 24 * 3600  # docs/api.md: an Idempotency-Key names its checkout for 24 h

STATEMENTS = {
    # after every step
    "stock_conserved": "the shop's stock = stock on the shelf + units held by orders that are not cancelled; "
    "never negative",
    "order_payments_consistent": "an order lists exactly its payments with their statuses, has at most one "
    "paid payment and at most one ONLINE payment, and (unless COD) is confirmed exactly when it has one",
    "counts_match": "each user's counters equal the counts of their payments (the list's `count`)",
    "transitions_allowed": "statuses move only as the spec's lifecycle allows (rules.py)",
    "cart_consumed_with_order": "no cart is consumed without its order; no order exists without its payment",
    "gateway_transaction_unique": "a gateway transaction id (or a PaymentIntent) settles at most one payment",
    "money_on_books": "a paid payment is money its provider captured for it (transaction, order, amount, currency); "
    "its amount is its order's total; refunded only once refunded in full",
    "needless_cancel": "an order is never cancelled while a checkout URL its customer was given is open",
    # after every answer
    "documented_answer": "every answer is a documented status with a JSON body; a 500 only when a fault was "
    "injected, and for a checkout only a DynamoDB fault (Stripe failing a checkout is a 502/503)",
    "handler_crash": "no handler raises out of Powertools (Lambda would answer 502); a sweep only when a fault "
    "was injected into it",
    "spurious_conflict": "a 409 'the order changed / checkout conflicted' (or a 503 without an injected fault) only "
    "when the caller's own order, cart or counts changed",
    "needless_refusal": "a checkout the spec allows (before and after the request) is not refused when nothing was "
    "injected and nothing of the caller's moved",
    "webhook_effect": "a webhook answered 2xx has its event's effect in the tables, or the event is not ours",
    "signed_event_accepted": "an event Stripe signed (its header up to the 2,048 characters docs/api.md reads, "
    "as during a secret roll) is never refused as unsigned or malformed",
    "false_amount_alarm": "no AmountMismatch alarm for a Stripe payment whose amount, currency and session match",
    "refused_replay_alarm": "a refused gateway body sent again raises no new alarm",
    "sweep_time_limit": "the sweep never runs past its time limit (it stops and saves its progress before)",
    "log_read_from_place": "a sweep lists Stripe's log from where the last one stopped, less the 5-minute "
    "overlap: never more than the overlap before an earlier sweep started or before the "
    "end of a read that finished with nothing deferred, and at least the overlap before "
    "the furthest point any earlier sweep listed to; the very first a day back",
    "no_call_per_live_session": "the sweep asks Stripe about a session only 15 minutes after it expired (its "
    "events are in the log until then, listed up to a minute and a half late), and "
    "never about a delayed method's session still processing",
    "watch_ends": "once our webhook acknowledged a session's expiry, no sweep asks Stripe about that session",
    "one_sweep_at_a_time": "two sweeps never work at once: a sweep started while another runs does nothing, "
    "and a sweep does nothing (ReconcileSweepsSkipped) only while another runs",
    "placed_answer_true": "a checkout answered 2xx names an order and payment that exist: the caller's, its "
    "total (COD), or a session Stripe made for that payment and recorded on it, or one it "
    "may still take (open, none recorded yet): never a URL for a payment given up "
    "(Stripe)",
    "broken_record_answered": "a checkout meeting a record the shop broke answers as docs/api.md says (409 naming "
    "the cart, product or own address; 400 for another's address; 503 for an order), places nothing, raises "
    "RecordContractBroken; no RecordContractBroken while nothing is broken",
    "stripe_accepts_our_sessions": "Stripe never refuses a Checkout Session our checkout asks for (its 409 "
    "for a key in flight is contention)",
    "dead_order_released": "an order nothing can pay any more gives its stock back by the first finished sweep after",
    "metrics_published": "an invocation that answers publishes the business metrics of what it wrote: "
    "PaymentsCreated per payment a checkout created, Payments<Status> per payment a settlement moved to it, "
    "one ReconcileSweepDuration (its milliseconds) or ReconcileSweepsSkipped per finished sweep, "
    "ReconcileStripeErrors only above 0 and after a call failed; the alarm of "
    "each money fact it records (needs_refund, amount_mismatch, dispute_opened), PaymentDisputed only for a "
    "dispute opened",
    "sweep_summary_true": "a sweep's summary says what it did: a skipped sweep reports nothing done; `checked` "
    "is every open payment its pages of the open index returned when it finished, no more "
    "than those when it stopped for time; its `outcomes` are statuses or the documented "
    "words (docs/money.md)",
    "foreign_order_hidden": "a checkout of another user's order is answered as one of an order that does not "
    'exist (400 "Order N not found."), never paid (users sometimes guess another\'s '
    "order id)",
    "retry_only_when_it_helps": 'the gateway is asked to come back (Retry-After, or "Retry later.") only for a '
    "refund that arrived before its completion, or a duplicate delivery while the "
    "first is being applied",
    "gateway_answer_true": 'a gateway event is answered "already has a completed payment under another '
    'transaction" only for an order that has one',
    "needless_refund": "a paid session's completion for an open payment of a pending, unpaid order completes "
    "it: it is never held for a refund (PaymentNeedsRefund) unless its metadata was edited",
    # at quiescence
    "audit_trail": "each transition is audited exactly once, in a chain from creation to the current status",
    "captured_money_accounted": "every amount captured is on exactly one paid payment of its order, or alarmed "
    "for refund with an audit record naming it, its amount and its currency, filed "
    "under a payment of its order or under payment 0",
    "refunds_recorded": "a refund at the provider is on the books: refunded in full, or a partial_refund record",
    "disputes_recorded": "every dispute of money a payment holds is recorded (opened, won or lost, with its amount) "
    "and alarmed",
    "answered_session_completes": "a checkout URL answered with 200 and paid before it expires completes its payment, "
    "unless the order was already paid another way",
    "foreign_user_held": "a session whose metadata names another user than its order's settles nothing (a mismatch "
    "alarm holds it for someone to look at)",
    "stripe_converged": "every Stripe payment is settled as Stripe says (paid, failed, expired, refunded)",
    "no_payment_left_open": "no Stripe or gateway payment stays open, no order our checkout placed stays pending",
    "session_asks_order_total": "every Checkout Session our checkout makes asks for exactly its order's total, "
    "in the order's currency",
    "provider_unavailable_true": "a checkout says the payment provider is unavailable only after a call to Stripe "
    "failed in it",
    "promise_kept": "'nothing was charged' stays true; 'it will be refunded' is true (money was charged) and "
    'alarmed. "Your cart is as it was": the checkout wrote the order\'s lines back into the cart '
    "(the customer may use them again before the answer)",
    "committed_checkout_answered": "a committed checkout is never answered as a failure, now or on its keyed retry",
    "idempotent_replay": "an Idempotency-Key replay returns the first answer for 24 hours, never after",
    "list_count": "the list's `count` equals the number of payments it lists, which are exactly the caller's; "
    "`next` never leads to an empty page, and `previous` leads back through the same pages. Pages "
    "follow the query's ordering (ascending id by default; `id`, `-id`, `created_at`, "
    "`-created_at`)",
    "events": "the domain events published are exactly the committed changes: none for a change that did not "
    "commit, none lost, a duplicate only with the same event_id and detail (events_check.py)",
}

ALARMS = ("AmountMismatch", "PaymentNeedsRefund")
CHECKOUT_FUNCTIONS = ("CreateStripeOrderFunction", "CreateCodOrderFunction")
ALARM_OF = {  # docs/money.md: the audit facts someone must act on, and the alarm each raises
    "needs_refund": "PaymentNeedsRefund",
    "amount_mismatch": "AmountMismatch",
    "dispute_opened": "PaymentDisputed",
}
DISPUTE_OPENED = "charge.dispute.created"
STATUS_METRICS = frozenset(f"Payments{status.capitalize()}" for status in NEXT)
MISMATCH_REASONS = frozenset({"amount_mismatch", "mismatch"})  # the audit reason, before and after the fixes
OPENAPI = json.loads((Path(__file__).resolve().parents[2] / "openapi.json").read_text())
CONFLICT_MESSAGES = ("The order changed while paying for it", "Checkout conflicted with concurrent updates")
MAX_LINES = 50  # README: a checkout takes at most 50 different products
NOTHING_CHARGED = "nothing was charged"
WILL_BE_REFUNDED = "will be refunded"


OVERLAP = 5 * 60  # docs/money.md: the log is re-read 5 minutes back
FIRST_LOOKBACK = 24 * 3600  # a day back on the very first run
STRIPE_RETENTION = 30 * 24 * 3600  # Stripe keeps events 30 days
# docs/money.md: a sweep's `outcomes`, by the status it moved payments to or what else became of them.
SWEEP_OUTCOMES = {"pending", "processing", "completed", "failed", "refunded"} | {
    "open",
    "closed",
    "watching",
    "needs_refund",
    "unchanged",
    "ignored",
    "retry_later",
    "mismatch",
    "unknown",
    "conflict",
    "has_session",
}
SESSION_END_GRACE = 15 * 60  # docs/money.md: a pending payment is looked up 15 minutes after its session expired


def documented_statuses(method: str, path: str) -> set[int] | None:
    for template, operations in OPENAPI["paths"].items():
        pattern = template.replace("{id}", "")
        if template == path or ("{id}" in template and path.startswith(pattern) and path != pattern):
            operation = operations.get(method.lower())
            if operation:
                return {int(code) for code in operation.get("responses", {}) if code.isdigit()}
    return None


class Invariants:
    def __init__(self, world: World) -> None:
        from .world import Violation

        self.Violation = Violation
        self.world = world
        state = world.state
        self.seeded_payments = {pid: p["status"] for pid, p in state.payments().items()}
        self.last_status: dict[int, str] = dict(self.seeded_payments)
        self.last_carts = state.carts()
        self.known_orders = set(state.orders())
        self.platform_carts: dict[int, dict[int, int]] = {}
        self.notes: Counter[str] = Counter()
        self.step_checks = 0
        self.found: dict[str, Violation] = {}  # the first violation of each invariant, in order
        self.stop_on_first = False
        self.books = Books(world, self.fail, self._tampered)

    def fail(self, invariant: str, detail: str) -> None:
        raise self.Violation(invariant, detail)

    def _checked(self, *checks: Any) -> None:
        """Run each check; a violation is recorded (the first of its invariant) and the run goes on,
        so one seed reports every invariant it breaks. `stop_on_first` ends the run instead."""
        for check in checks:
            try:
                check()
            except self.Violation as violation:
                self.found.setdefault(violation.invariant, violation)
                if self.stop_on_first:
                    raise

    # ------------------------------------------------------------------ after every step

    def step(self) -> None:
        self.step_checks += 1
        state = self.world.state
        orders = state.orders()
        payments = state.payments()
        self._checked(
            lambda: self.books.stock(orders, state.stock()),
            lambda: self.books.on_books(orders, payments),
            lambda: self.books.cancellations(orders),
            lambda: self._orders(orders, payments),
            lambda: self._transitions(payments),
            lambda: self._counters(payments, state.counters()),
            lambda: self._transactions(payments),
            lambda: self._carts(orders, payments, state.carts()),
        )

    def _orders(self, orders: dict[int, dict[str, Any]], payments: dict[int, dict[str, Any]]) -> None:
        by_order: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for payment in payments.values():
            by_order[int(payment["order"])].append(payment)
            if int(payment["order"]) not in orders:
                self.fail("order_payments_consistent", f"payment {payment['id']} of missing order {payment['order']}")
        for order_id, order in orders.items():
            listed = {int(pid): ref for pid, ref in (order.get("payments") or {}).items()}
            actual = {int(p["id"]): p for p in by_order[order_id]}
            if set(listed) != set(actual):
                self.fail("order_payments_consistent", f"order {order_id} lists {sorted(listed)}, has {sorted(actual)}")
            for pid, ref in listed.items():
                if (ref["status"], ref["method"]) != (actual[pid]["status"], actual[pid]["method"]):
                    self.fail(
                        "order_payments_consistent",
                        f"order {order_id} sees payment {pid} as {ref['status']}, it is {actual[pid]['status']}",
                    )
            online = sorted(pid for pid, p in actual.items() if p["method"] == "ONLINE")
            if len(online) > 1:  # docs/api.md: "The order's ONLINE payment is created or updated"
                self.fail("order_payments_consistent", f"order {order_id} has ONLINE payments {online}")
            completed = [pid for pid, p in actual.items() if p["status"] in PAID]
            if len(completed) > 1:
                self.fail("order_payments_consistent", f"order {order_id} has completed payments {completed}")
            marked = order.get("completed_payment")
            if (int(marked) if marked is not None else None) != (completed[0] if completed else None):
                self.fail(
                    "order_payments_consistent", f"order {order_id} marks {marked} completed; completed: {completed}"
                )
            if order.get("origin") != "cod_checkout" and (order["status"] == "confirmed") != bool(completed):
                self.fail(
                    "order_payments_consistent",
                    f"order {order_id} is {order['status']} with completed payments {completed}",
                )
            if order.get("origin") in ("stripe_checkout", "cod_checkout") and not actual:
                self.fail("cart_consumed_with_order", f"order {order_id} has no payment")

    def _transitions(self, payments: dict[int, dict[str, Any]]) -> None:
        for pid, payment in payments.items():
            status, method = payment["status"], payment["method"]
            before = self.last_status.get(pid)
            if before is None:
                if method != "ONLINE" and status != "pending":
                    self.fail("transitions_allowed", f"payment {pid} ({method}) appeared as {status}")
            elif before != status and not may_move(method, before, status):
                self.fail("transitions_allowed", f"payment {pid} ({method}) went {before} -> {status}")
            self.last_status[pid] = status

    def _counters(self, payments: dict[int, dict[str, Any]], counters: dict[str, dict[str, Any]]) -> None:
        expected: dict[int, Counter[str]] = defaultdict(Counter)
        for payment in payments.values():
            status, method = payment["status"], payment["method"]
            for name in ("all", f"status#{status}", f"method#{method}", f"status#{status}#method#{method}"):
                expected[int(payment["user"])][name] += 1
        for name, item in counters.items():
            if name.startswith("payments#user#"):
                user = int(name.rsplit("#", 1)[1])
                stored = {k: int(v) for k, v in item.items() if k != "name" and int(v) != 0}
                if stored != dict(expected.pop(user, Counter())):
                    self.fail(
                        "counts_match", f"user {user}: counters {stored} != payments {dict(expected.get(user, {}))}"
                    )
        for user, counts in expected.items():
            if counts:
                self.fail("counts_match", f"user {user} has payments {dict(counts)} and no counters")

    def _transactions(self, payments: dict[int, dict[str, Any]]) -> None:
        settled: dict[tuple[str, str], list[int]] = defaultdict(list)
        for pid, payment in payments.items():
            if payment["status"] in PAID and payment.get("transaction_id"):
                settled[(payment["method"], payment["transaction_id"])].append(pid)
        for (method, transaction), pids in settled.items():
            if len(pids) > 1:
                self.fail("gateway_transaction_unique", f"{method} transaction {transaction} settled payments {pids}")

    def cart_written(self, user: int, lines: dict[int, int]) -> None:
        self.platform_carts[user] = dict(lines)

    def _carts(
        self, orders: dict[int, dict[str, Any]], payments: dict[int, dict[str, Any]], carts: dict[int, dict[int, int]]
    ) -> None:
        new_orders = {oid: o for oid, o in orders.items() if oid not in self.known_orders}
        for user in set(carts) | set(self.last_carts):
            before = self.platform_carts.pop(user, None) or self.last_carts.get(user) or {}
            now = carts.get(user) or {}
            if now == before:
                continue
            mine = [o for o in new_orders.values() if int(o["user"]) == user]
            if not now and before:
                if not any(lines_of(o.get("items") or []) == before for o in mine):
                    self.fail("cart_consumed_with_order", f"user {user}'s cart {before} emptied without its order")
                continue
            given_back = {oid for oid, o in orders.items() if int(o["user"]) == user and o["status"] == "cancelled"}
            added = {v: q - before.get(v, 0) for v, q in now.items() if q != before.get(v, 0)}
            if any(q < 0 for q in added.values()) or not given_back:
                self.fail("cart_consumed_with_order", f"user {user}'s cart went {before} -> {now}")
        self.known_orders |= set(new_orders)
        self.last_carts = carts

    # ------------------------------------------------------------------ around every answer

    def before_request(self, request: dict[str, Any]) -> Any:
        if request.get("kind") == "sweep":  # the sessions of delayed methods deciding as it starts
            payments = self.world.state.payments().values()
            return {p.get("checkout_session_id") for p in payments if p["status"] == "processing"}
        if request.get("kind") == "stripe_event":
            obj = ((request.get("event") or {}).get("data") or {}).get("object") or {}
            pid = str((obj.get("metadata") or {}).get("payment_id", ""))
            payment = self.world.state.payments().get(int(pid)) if pid.isdigit() else None
            order = self.world.state.orders().get(int(payment["order"])) if payment else None
            # Whether the payment was open and its order pending and unpaid when the event came.
            payable = bool(
                payment
                and order
                and payment["status"] in OPEN
                and order["status"] == "pending"
                and order.get("completed_payment") is None
            )
            return ("event", bool(payment and payment.get("checkout_session_id")), payable)
        if request.get("kind") != "checkout":
            return None
        request["broken_met"] = self._broken_met(request)
        return (self._snapshot(request), self._allowed(request) and not request["broken_met"])

    def _snapshot(self, request: dict[str, Any]) -> Any:
        """The caller's own items a checkout reads or writes (their counts move with each of their
        payments, so two checkouts of the same user may rightly conflict)."""
        body = json.loads(request["body"]) if isinstance(request.get("body"), str) else {}
        state = self.world.state
        user = int(request.get("user") or 0)
        counts = json.dumps(state.counters().get(f"payments#user#{user}"), sort_keys=True, default=str)
        if body.get("order") is not None:
            order = state.orders().get(int(body["order"]))
            return ("order", order and (order["status"], json.dumps(order.get("payments"), sort_keys=True)), counts)
        cart = state.carts().get(user) or {}
        stock = state.stock()
        return ("cart", cart, {v: stock.get(v) for v in cart}, counts)

    def _allowed(self, request: dict[str, Any]) -> bool:
        """Would the spec let this checkout through, on the tables as they are now? (Its rules: the
        address and the order are the caller's, the cart is not empty and every line is available in
        that quantity, the order has no completed payment and its total is its lines'.)"""
        body = json.loads(request["body"]) if isinstance(request.get("body"), str) else {}
        user = int(request.get("user") or 0)
        state = self.world.state
        if body.get("order") is not None:
            order = state.orders().get(int(body["order"]))
            if order is None or int(order["user"]) != user or order["status"] != "pending":
                return False
            if order.get("completed_payment") is not None or not order.get("items"):
                return False
            if not all(chargeable(i["price"], str(order.get("currency") or "usd")) for i in order["items"]):
                return False
            if Decimal(str(order["total_price"])) != sum(
                (Decimal(str(i["price"])) * int(i["quantity"]) for i in order["items"]), Decimal(0)
            ):
                return False
            payments = state.payments()
            open_stripe = [
                payments[int(pid)] for pid, ref in (order.get("payments") or {}).items()
                if ref["method"] == "stripe" and ref["status"] in OPEN and int(pid) in payments
            ]  # fmt: skip
            # An open Stripe checkout of it that has expired is being settled: not payable right now.
            return all(int(p.get("checkout_expires_at") or 0) > self.world.clock.now + 60 for p in open_stripe)
        address = state.addresses().get(int(body.get("shipping_address") or 0))
        lines = state.carts().get(user) or {}
        variants = state.variants()
        if address is None or int(address["user"]) != user or not lines or len(lines) > MAX_LINES:
            return False
        for variant_id, quantity in lines.items():
            variant = variants.get(variant_id)
            if variant is None or variant.get("is_active") is not True or quantity <= 0:
                return False
            if int(variant.get("stock", 0)) < quantity:
                return False
        return True

    def answered(self, inv: Invocation, before: Any) -> None:
        kind = inv.request.get("kind")
        if kind == "checkout":  # what the caller's orders were when this answer was given
            user = inv.request.get("user")
            inv.request["orders_then"] = {
                oid: o["status"] for oid, o in self.world.state.orders().items() if int(o["user"]) == user
            }
            self._promised(inv)
        checks = [lambda: self._false_alarm(inv, before), lambda: self._contract_alarm(inv)]
        if kind == "stripe_event":
            checks.append(lambda: self._needless_refund(inv, before))
        if kind == "checkout":
            checks.append(lambda: self._provider_unavailable_true(inv))
        if not (inv.throttled or inv.killed or inv.crash):
            checks.append(lambda: self._metrics(inv))
        if kind == "sweep":
            if not inv.faulted:  # a sweep may fail when DynamoDB or Stripe fails it: the next one runs
                checks.append(lambda: self._crash(inv))
            checks.append(lambda: self._sweep(inv))
            checks.append(lambda: self._one_sweep(inv))
            checks.append(lambda: self._sweep_summary(inv))
            checks.append(lambda: self._log_read_from_place(inv))
            checks.append(lambda: self._watch_ends(inv))
            checks.append(lambda: self._no_call_per_live_session(inv, before))
            checks.append(lambda: self.books.released_after_sweep(inv, self.world.state.orders()))
        elif inv.request.get("broken_met") and not (inv.throttled or inv.killed):
            checks += [lambda: self._crash(inv), lambda: self._documented(inv), lambda: self._broken_answer(inv)]
        elif not (inv.throttled or inv.killed):
            checks += [
                lambda: self._crash(inv),
                lambda: self._documented(inv),
                lambda: self._spurious(inv, before),
                lambda: self._needless(inv, before),
            ]
            acknowledged = inv.status is not None and 200 <= inv.status < 300
            if kind == "checkout" and acknowledged:
                checks.append(lambda: self._placed_answer(inv))
            if kind == "checkout":
                checks.append(lambda: self._session_accepted(inv))
                checks.append(lambda: self._cart_as_it_was(inv))
                checks.append(lambda: self._foreign_order(inv))
            if kind == "stripe_event" and inv.request.get("signed"):
                checks.append(lambda: self._signed_accepted(inv))
            if kind == "stripe_event" and acknowledged:
                state = self.world.state
                checks.append(lambda: self.books.stripe_effect(inv, state.payments(), state.audit()))
            if kind == "gateway":
                checks.append(lambda: self._gateway_replay(inv))
                checks.append(lambda: self._gateway_retry_after(inv))
                checks.append(lambda: self._gateway_paid_claim(inv))
                if acknowledged:
                    state = self.world.state
                    checks.append(lambda: self.books.gateway_effect(inv, state.payments(), state.audit()))
        self._checked(*checks)

    def _promised(self, inv: Invocation) -> None:
        """What a checkout's answer told the customer about money, for the books (promise_kept)."""
        if NOTHING_CHARGED in inv.text:
            kind = "nothing_charged"
        elif WILL_BE_REFUNDED in inv.text:
            kind = "will_be_refunded"
        else:
            return
        tables = self.world.state.tables
        key, user = inv.request.get("key"), inv.request.get("user")
        keyed = [  # a keyed retry answers for what the key placed, whichever invocation wrote it
            earlier for record in self.world.checkouts if key is not None and (record.user, record.key) == (user, key)
            for earlier in record.invocations
        ]  # fmt: skip
        payments = [pid for i in (*keyed, inv) for pid in _payments_written(i, tables["PaymentsTable"])]
        body = json.loads(inv.request["body"]) if isinstance(inv.request.get("body"), str) else {}
        if not payments and body.get("order") is not None:
            order = self.world.state.orders().get(int(body["order"])) or {}
            payments = [int(pid) for pid in order.get("payments") or {}]
        self.world.ledger.promises.append(Promise(kind, payments, inv))

    def _provider_unavailable_true(self, inv: Invocation) -> None:
        """Every answer is true: "the payment provider is unavailable" only after a call to Stripe in
        this invocation failed (an error, a timeout), never when Stripe answered every call."""
        if "provider is unavailable" not in inv.text:
            return
        stripe = [outcome for service, _, outcome in inv.calls if service == "stripe"]
        if stripe and all(outcome.startswith("2") for outcome in stripe):
            self.fail("provider_unavailable_true", f"{inv.describe()}; Stripe answered {stripe}")

    def _tampered(self, session_id: Any) -> bool:
        """Did someone edit this session's metadata to name another user? Then a mismatch, with its
        alarm, is the right outcome: nothing proves whose money it is."""
        return self.world.metadata_edits.get(str(session_id)) == "another_user"

    def _false_alarm(self, inv: Invocation, before: Any) -> None:
        if inv.function in ("StripeWebhookFunction", "ReconcilePaymentsFunction") and inv.metric("AmountMismatch"):
            obj = ((inv.request.get("event") or {}).get("data") or {}).get("object") or {}
            if inv.function == "StripeWebhookFunction" and self._tampered(obj.get("id")):
                return
            if inv.function == "ReconcilePaymentsFunction" and self._sweep_mismatches_tampered(inv):
                return
            hint = self._hint(obj, before) if obj else ""
            self.fail(
                "false_amount_alarm", f"{inv.describe()} counted AmountMismatch for a Stripe payment that matches{hint}"
            )

    def _needless_refund(self, inv: Invocation, before: Any) -> None:
        """docs/money.md: money is held for a refund only when it cannot complete a payment (its
        order paid another way or closed, its payment given up, or not the order's total). A paid
        session's completion for an open payment of a pending, unpaid order completes it."""
        event = inv.request.get("event") or {}
        obj = (event.get("data") or {}).get("object") or {}
        paid = event.get("type") == "checkout.session.completed" and obj.get("payment_status") == "paid"
        needless = paid and inv.metric("PaymentNeedsRefund") and before and before[2]
        if needless and not self._tampered(obj.get("id")):  # (a session for the order's total, as we asked)
            self.fail("needless_refund", f"{inv.describe()}: the session paid an open payment of an unpaid order")

    def _hint(self, session: dict[str, Any], before: Any = None) -> str:
        """Why a correct Stripe payment may have been read as a mismatch (for the report)."""
        metadata = session.get("metadata") or {}
        pid = str(metadata.get("payment_id", ""))
        payment = self.world.state.payments().get(int(pid)) if pid.isdigit() else None
        if payment is None:
            return ""
        if not payment.get("checkout_session_id") or (before and before[:2] == ("event", False)):
            return " [the event came before the checkout recorded its session id]"
        if str(metadata.get("user_id")) != str(payment["user"]):
            return f" [its metadata user_id {metadata.get('user_id')!r} names no user]"
        return ""

    def _sweep_mismatches_tampered(self, inv: Invocation) -> bool:
        """The sweep's amount_mismatch audit records (event id `reconciliation:<run>:<payment>`) are
        all for payments whose session names another user."""
        run = inv.body.get("run") if isinstance(inv.body, dict) else None
        prefix = f"reconciliation:{run}:" if run else "reconciliation:"
        payments = self.world.state.payments()
        for pid, rows in self.world.state.audit().items():
            for row in rows:
                ours = row.get("reason") in MISMATCH_REASONS and str(row.get("event_id", "")).startswith(prefix)
                if ours and not self._tampered((payments.get(pid) or {}).get("checkout_session_id")):
                    return False
        return True

    def _metrics(self, inv: Invocation) -> None:
        """docs/operations.md's business metrics, counted again from what the invocation wrote."""
        tables = self.world.state.tables
        expected: Counter[str] = Counter()
        rows = _audit_written(inv, tables["PaymentAuditTable"])
        alarms = Counter(ALARM_OF[row["reason"]] for row in rows if row.get("reason") in ALARM_OF)
        for name, recorded in alarms.items():  # the recorder raises it (a redelivery if it failed or was stopped)
            if inv.metric(name) < recorded and not inv.faulted:
                self.fail("metrics_published", f"{inv.describe()} recorded {recorded} {name} facts: {inv.metrics}")
        kind = (inv.request.get("event") or {}).get("type")
        if inv.function == "StripeWebhookFunction" and inv.metric("PaymentDisputed") and kind != DISPUTE_OPENED:
            self.fail("metrics_published", f"{inv.describe()} raised PaymentDisputed for a {kind}")
        for row in rows:
            created, moved = not isinstance(row.get("from"), str), row.get("to") != row.get("from")
            if created and inv.function in CHECKOUT_FUNCTIONS:
                expected["PaymentsCreated"] += 1
            elif moved and isinstance(row.get("to"), str):  # a fact row (needs_refund...) moves nothing
                expected[f"Payments{row['to'].capitalize()}"] += 1
        if inv.function == "ReconcilePaymentsFunction":
            runs = [name for name, _ in inv.metrics if name in ("ReconcileSweepDuration", "ReconcileSweepsSkipped")]
            if len(runs) != 1:
                self.fail("metrics_published", f"{inv.describe()} published {runs} for one sweep")
            errors = [value for name, value in inv.metrics if name == "ReconcileStripeErrors"]
            # Not only Stripe's: an event whose application failed in DynamoDB is counted too (noted in
            # docs/runbook.md's ReconcileStripeErrors).
            failed = any(outcome not in ("200", "ok") for _, _, outcome in inv.calls)
            if any(value <= 0 for value in errors) or (errors and not failed):
                self.fail(
                    "metrics_published", f"{inv.describe()} counted Stripe errors {errors}; a call failed: {failed}"
                )
            took = ((inv.ended or self.world.clock.now) - inv.started) * 1000
            if runs == ["ReconcileSweepDuration"] and not 0 < inv.metric("ReconcileSweepDuration") <= took + 1:
                self.fail("metrics_published", f"{inv.describe()} took {took:.0f} ms: {inv.metrics}")
        names = set(expected) | {name for name, _ in inv.metrics if name in STATUS_METRICS or name == "PaymentsCreated"}
        for name in sorted(names):
            # A fault after a commit (its answer lost, then throttled past every retry) leaves the
            # change uncounted: the code cannot know it committed. Never counted twice, though.
            if inv.metric(name) != expected[name] and not (inv.faulted and inv.metric(name) < expected[name]):
                self.fail(
                    "metrics_published",
                    f"{inv.describe()} published {name}={inv.metric(name):g}, wrote {expected[name]}",
                )

    def _broken_met(self, request: dict[str, Any]) -> list[tuple[int, str]]:
        """The answers docs/api.md gives for each broken record this checkout reads (any may come first)."""
        broken, state = self.world.broken, self.world.state
        if not broken:
            return []
        body = json.loads(request["body"]) if isinstance(request.get("body"), str) else {}
        user = int(request.get("user") or 0)
        met: list[tuple[int, str]] = []
        if body.get("order") is not None:
            if ("OrdersTable", int(body["order"])) in broken:
                met.append((503, "cannot be read right now"))
            return met
        address = int(body.get("shipping_address") or 0)
        if ("ShippingAddressesTable", address) in broken:
            owner = int(broken["ShippingAddressesTable", address]["user"])
            met.append((409, f"Your shipping address {address} cannot be read") if owner == user else (400, address))
        if ("CartsTable", user) in broken:
            met.append((409, "A line of your cart cannot be read"))
        for variant in (state.carts().get(user) or {}) if ("CartsTable", user) not in broken else ():
            if ("ProductVariantsTable", variant) in broken:
                met.append((409, f"Product {variant} cannot be bought right now"))
        return met

    def _broken_answer(self, inv: Invocation) -> None:
        tables = self.world.state.tables
        met = inv.request["broken_met"]
        answered = any(
            inv.status == status and (str(what) in inv.text if status != 400 else "shipping_address" in inv.text)
            for status, what in met
        )
        if not answered:
            self.fail("broken_record_answered", f"{inv.describe()}: wanted one of {met}")
        if _orders_placed(inv, tables["OrdersTable"]) or _payments_written(inv, tables["PaymentsTable"]):
            self.fail("broken_record_answered", f"{inv.describe()} placed an order on a broken record")
        if not inv.metric("RecordContractBroken"):
            self.fail("broken_record_answered", f"{inv.describe()} met a broken record and raised no alarm")

    def _contract_alarm(self, inv: Invocation) -> None:
        """No alarm for a record that keeps its contract: a checkout's own records are known; for other
        requests, nothing was broken while they ran."""
        end = inv.ended if inv.ended is not None else self.world.clock.now
        if not inv.metric("RecordContractBroken"):
            return
        if inv.request.get("kind") == "checkout":
            unbroken = not inv.request.get("broken_met")
        else:
            unbroken = not any(since <= end and inv.started <= until for since, until in self.world.broken_windows)
        if unbroken:
            self.fail("broken_record_answered", f"{inv.describe()} raised RecordContractBroken; nothing is broken")

    def _session_accepted(self, inv: Invocation) -> None:
        """Stripe refuses a Checkout Session only for a request it finds invalid (an expiry outside 30
        minutes..24 hours, a key reused with other parameters...): ours never are. Its 409 while the
        same key is in flight is contention, not a refusal."""
        for service, path, outcome in inv.calls:
            refused = outcome[:1] == "4" and outcome != "409-idempotency_key_in_use"
            if service == "stripe" and path == "/v1/checkout/sessions" and refused:
                self.fail("stripe_accepts_our_sessions", f"{inv.describe()}: Stripe answered {outcome}")

    def _cart_as_it_was(self, inv: Invocation) -> None:
        """Every answer is true: "your cart is as it was" means the checkout put the lines of the order
        it placed (and gave back) into the caller's cart again (the caller may have used them since)."""
        if "your cart is as it was" not in inv.text:
            return
        orders, user = self.world.state.orders(), int(inv.request["user"])
        written = _carts_written(inv, self.world.state.tables["CartsTable"], user)
        for oid in _orders_placed(inv, self.world.state.tables["OrdersTable"]):
            lines = lines_of(orders[oid].get("items") or []) if oid in orders else {}
            if not any(all(cart.get(v, 0) >= q for v, q in lines.items()) for cart in written):
                self.fail("promise_kept", f"{inv.describe()}: order {oid}'s lines {lines}; carts written {written}")

    def _foreign_order(self, inv: Invocation) -> None:
        """No leak: another user's order is answered as one that does not exist (docs/api.md: 400
        "Order N not found.", as another user's address), never paid, never a 403."""
        body = json.loads(inv.request["body"]) if isinstance(inv.request.get("body"), str) else {}
        order = self.world.state.orders().get(int(body["order"])) if str(body.get("order", "")).isdigit() else None
        theirs = order is not None and int(order["user"]) != int(inv.request.get("user") or 0)
        if inv.faulted and (inv.status or 0) >= 500:
            return  # a fault before the order was read: the documented 5xx
        if theirs and (inv.status != 400 or f"Order {body['order']} not found." not in inv.text):
            self.fail(
                "foreign_order_hidden", f"{inv.describe()}: user {inv.request.get('user')} paying order {body['order']}"
            )

    def _placed_answer(self, inv: Invocation) -> None:
        """README: 201 `{order_id, status, payment_method, payment}` (COD), 200 `{id, url}` of a Checkout
        Session (Stripe). What it names must exist now: a 2xx for a transaction that never committed
        tells the customer a lie."""
        state, body, user = self.world.state, inv.body if isinstance(inv.body, dict) else {}, inv.request.get("user")
        if inv.request.get("path", "").endswith("create-cod/"):
            order = state.orders().get(int(body.get("order_id") or 0))
            payment = state.payments().get(int((body.get("payment") or {}).get("id") or 0))
            if not order or not payment or int(payment["order"]) != int(order["id"]) or int(order["user"]) != user:
                self.fail("placed_answer_true", f"{inv.describe()}: no such order and payment of user {user}")
            elif amount(payment["amount"]) != amount(order["total_price"]):
                self.fail("placed_answer_true", f"{inv.describe()}: payment {payment['id']} is not its order's total")
            return
        session = self.world.ledger.sessions.get(str(body.get("id")))
        payment = state.payments().get(session.payment) if session else None
        if session is None or payment is None or int(payment["user"]) != user:
            self.fail("placed_answer_true", f"{inv.describe()}: no session Stripe made for a payment of user {user}")
            return
        # A URL to pay is true only for the payment's own session, or one it may still take (open, none
        # recorded yet): never a session made for a payment given up before it could be recorded.
        held = payment.get("checkout_session_id")
        if held != session.id and (held is not None or payment["status"] not in OPEN):
            self.fail(
                "placed_answer_true",
                f"{inv.describe()}: payment {payment['id']} is {payment['status']} with session {held}",
            )

    def _signed_accepted(self, inv: Invocation) -> None:
        if inv.status in (400, 401):
            self.fail("signed_event_accepted", f"{inv.describe()}: an event Stripe signed was refused")

    def _one_sweep(self, inv: Invocation) -> None:
        """docs/operations.md: the sweep holds a lease, so a second sweep (a late schedule, a retry, a
        manual run) does nothing while one runs; and only then (ReconcileSweepsSkipped says so)."""
        if inv.metric("ReconcileSweepsSkipped"):
            # A lease lasts at most its holder's time limit (the template's Timeout).
            limit = self.world.functions.specs["ReconcilePaymentsFunction"].timeout
            end = inv.ended if inv.ended is not None else float("inf")
            if not any(  # another sweep running meanwhile (it may have started a moment later and won)
                other is not inv
                and other.function == "ReconcilePaymentsFunction"
                and other.started < end
                and inv.started < other.started + limit
                for other in self.world.functions.invocations
            ):
                self.fail("one_sweep_at_a_time", f"{inv.describe()} skipped its sweep; no other sweep was running")
        if not _worked(inv):
            return
        end = inv.ended if inv.ended is not None else float("inf")
        for other in self.world.sweeps:
            other_end = other.ended if other.ended is not None else float("inf")
            if other is not inv and other.started < end and inv.started < other_end and _worked(other):
                self.fail("one_sweep_at_a_time", f"sweeps {other.describe()} and {inv.describe()} both worked at once")

    def _sweep_summary(self, inv: Invocation) -> None:
        """docs/money.md: the sweep's summary says what it did. A skipped sweep did nothing; `checked`
        is how many open payments it looked at: every one its pages of the open index returned when
        it finished, no more than those when it stopped for time; `outcomes` are counted by the status
        a payment moved to, or by what else became of it (SWEEP_OUTCOMES)."""
        summary = inv.body if inv.status == 200 and isinstance(inv.body, dict) else None
        if summary is None:
            return
        if summary.get("skipped"):
            did = {k: summary.get(k) for k in ("events", "checked", "outcomes", "stripe_errors")}
            if did != {"events": {}, "checked": 0, "outcomes": {}, "stripe_errors": 0}:
                self.fail("sweep_summary_true", f"{inv.describe()}: a skipped sweep reports {did}")
            return
        words = set(summary.get("outcomes") or {}) - SWEEP_OUTCOMES
        if words:
            self.fail(
                "sweep_summary_true", f"{inv.describe()}: outcomes {sorted(words)} are neither statuses nor documented"
            )
        batch = int(self.world.functions.env["ReconcilePaymentsFunction"]["RECONCILE_BATCH_SIZE"])
        returned = sum(
            call.count or 0
            for call in inv.queries
            if call.body.get("IndexName") == "open-created" and call.body.get("Limit") == batch
        )
        checked = summary.get("checked")
        finished = summary.get("finished")
        if not isinstance(checked, int) or not 0 <= checked <= returned or (finished and checked != returned):
            self.fail(
                "sweep_summary_true",
                f"{inv.describe()}: checked {checked}, its pages of open payments held {returned}"
                + (" and it finished" if finished else ""),
            )

    def _log_read_from_place(self, inv: Invocation) -> None:
        """docs/money.md: each run lists the log "from where the last run stopped" minus 5 minutes of
        overlap ("an event may be listed a little after its `created`"), "a day back on the very first
        run", never past Stripe's 30 days. Where a run stops is never past the end of what it listed,
        nor before where the last one started (an event it cannot apply yet holds the place at that
        event, listed by it); a run that read the log to its end with nothing deferred stopped there."""
        reads = self.world.stripe.event_reads
        mine = [(since, at) for who, since, _, at in reads if who is inv]
        if not mine:
            return
        first, now = min(since for since, _ in mine), int(inv.started)
        latest_now = int(min(at for _, at in mine))  # the sweep read its clock before its first read
        earlier = [(who, since, end) for who, since, end, at in reads if who is not inv and at < inv.started]
        starts: dict[int, int] = {}  # each earlier sweep's first `created[gte]`
        for who, since, _ in earlier:
            starts[id(who)] = min(since, starts.get(id(who), since))
        floor = max(starts.values()) - OVERLAP if starts else now - FIRST_LOOKBACK
        for who, _, end in earlier:  # a sweep that read to its end stopped there
            summary = who.body if who is not None and who.status == 200 and isinstance(who.body, dict) else {}
            clean = summary.get("finished") and not (summary.get("events") or {}).get("deferred")
            if clean and end is not None and who.ended is not None and who.ended < inv.started:
                floor = max(floor, end - OVERLAP)
        # Nothing earlier was read past the furthest `created[lt]` listed: the place is never later.
        ends = [end for _, _, end in earlier if end is not None]
        ceiling = max(max(ends) - OVERLAP if ends else latest_now - FIRST_LOOKBACK, latest_now - STRIPE_RETENTION)
        if first < floor - 1 or first > ceiling + 1:
            self.fail(
                "log_read_from_place",
                f"{inv.describe()} listed events from {now - first} s back; "
                + (f"at most {now - floor} s" if first < floor - 1 else f"at least {now - ceiling} s")
                + (" (where an earlier sweep stopped, less the overlap)" if earlier else " (a day: the first sweep)"),
            )

    def _no_call_per_live_session(self, inv: Invocation, processing: set[str]) -> None:
        """Issue 18: the sweep settles from Stripe's event log "with no extra Stripe call per payment".
        It may look up an open payment's session (GET) only once that session could no longer be paid
        and its expiry event is in the log (docs/money.md: "still pending 15 minutes after its session
        expired"), when the log may not hold its events; before that, the log tells. (A
        given-up payment's session is expired instead, and looked up when Stripe refuses to expire it:
        that is the watch watch_ends bounds.) docs/money.md: "a delayed method still processing" is
        settled by its event (from the log if lost): its session is not looked up either."""
        expired = {path.removesuffix("/expire") for service, path, _ in inv.calls if path.endswith("/expire")}
        for service, path, _ in inv.calls:
            parts = path.strip("/").split("/") if service == "stripe" else []
            if parts[:3] != ["v1", "checkout", "sessions"] or len(parts) != 4 or path in expired:
                continue
            if parts[3] in processing:
                self.fail("no_call_per_live_session", f"{inv.describe()} asked Stripe about {parts[3]}, processing")
                return
            expires = int(self.world.stripe.session(parts[3]).get("expires_at") or 0)
            if inv.started + 1 < expires + SESSION_END_GRACE:
                self.fail(
                    "no_call_per_live_session",
                    f"{inv.describe()} asked Stripe about {parts[3]}, "
                    f"{inv.started - expires:.0f} s after its expires_at (not 15 minutes)",
                )
                return

    def _watch_ends(self, inv: Invocation) -> None:
        """Issue 18: a given-up payment whose session is unknown "is watched until known closed".
        Once our webhook acknowledged the session's expiry, no later sweep asks Stripe about it."""
        for service, path, _ in inv.calls:
            parts = path.strip("/").split("/") if service == "stripe" else []
            if parts[:3] != ["v1", "checkout", "sessions"] or len(parts) < 4:
                continue
            for delivery in self.world.stripe_deliveries:
                event = delivery.request.get("event") or {}
                if (
                    event.get("type") == "checkout.session.expired"
                    and ((event.get("data") or {}).get("object") or {}).get("id") == parts[3]
                    and delivery.status is not None
                    and 200 <= delivery.status < 300
                    and delivery.ended is not None
                    and delivery.ended < inv.started
                ):
                    self.fail("watch_ends", f"{inv.describe()} asked Stripe about {parts[3]}, known expired")
                    return

    def _sweep(self, inv: Invocation) -> None:
        if inv.killed == "timeout":
            self.fail("sweep_time_limit", f"sweep {inv.describe()} was stopped by its timeout, its progress unsaved")

    def _crash(self, inv: Invocation) -> None:
        if inv.crash:
            self.fail("handler_crash", inv.describe())

    def _documented(self, inv: Invocation) -> None:
        method, path = inv.request.get("method", ""), inv.request.get("path", "")
        statuses = documented_statuses(method, path)
        if statuses is None or inv.status is None:
            return
        # docs/api.md: a checkout that Stripe fails answers 502/503 with what it means for the order;
        # a 500 there is ours, excused only when DynamoDB failed under it. A webhook's 500 under any
        # injected fault makes its sender retry, which is all it must do (seed 1730 of the soak).
        faulted_here = (
            inv.faulted
            if inv.request.get("kind") != "checkout"
            else any(s == "dynamodb" and o.startswith(("fault-", "lost-")) for s, _, o in inv.calls)
        )
        if inv.status == 500 and faulted_here:
            self.notes["500 after an injected fault"] += 1  # undocumented, reported (not an invariant)
        elif inv.status not in statuses:
            hint = ""
            if any("TransactionConflictException" in outcome for _, _, outcome in inv.calls):
                hint = " [a single-item write met a transaction in flight: TransactionConflictException]"
            elif inv.request.get("kind") == "hostile" or (inv.request.get("event") or {}).get("type") == "hostile":
                hint = " [signed or well-formed hostile input]"
            elif inv.request.get("event"):
                hint = self._hint(((inv.request["event"].get("data") or {}).get("object")) or {})
            self.fail("documented_answer", f"{method} {path}: {inv.describe()} (documented: {sorted(statuses)}){hint}")
        if not inv.headers.get("content-type", "").startswith("application/json") or not isinstance(inv.body, dict):
            self.fail("documented_answer", f"{method} {path}: not a JSON object body: {inv.describe()}")

    def _spurious(self, inv: Invocation, before: Any) -> None:
        contention = (inv.status == 409 and any(m in inv.text for m in CONFLICT_MESSAGES)) or inv.status == 503
        if not contention or before is None or inv.faulted or inv.request.get("kind") != "checkout":
            return
        if self._snapshot(inv.request) == before[0]:
            self.fail("spurious_conflict", f"{inv.describe()} though nothing of the caller's changed")

    def _needless(self, inv: Invocation, before: Any) -> None:
        """needless_refusal, precisely: a checkout refused (any answer but 200/201, or a 409 asking to
        come back) although the spec allowed it before and after the request, no fault was injected into
        it, nothing of the caller's moved meanwhile, none of the caller's own requests overlapped it, and
        its Idempotency-Key (if any) had not been used before."""
        if inv.request.get("kind") != "checkout" or before is None or inv.faulted or inv.status in (None, 200, 201):
            return
        if inv.status == 409 and "retry-after" in inv.headers:
            return  # in progress: the same request is being served; come back
        snapshot, allowed = before
        if not allowed or self._snapshot(inv.request) != snapshot or not self._allowed(inv.request):
            return
        if self._used_key(inv) or self._overlapped(inv):
            return
        self.fail("needless_refusal", f"{inv.describe()} for {inv.request.get('body')} though the spec allowed it")

    def _overlapped(self, inv: Invocation) -> bool:
        """Another request of the same user ran while this one did (the caller's own contention)."""
        user = inv.request.get("user")
        return any(
            other is not inv
            and other.request.get("user") == user
            and other.started < (inv.ended or inv.started)
            and (other.ended is None or other.ended > inv.started)
            for other in self.world.functions.invocations
        )

    def _used_key(self, inv: Invocation) -> bool:
        key, user = inv.request.get("key"), inv.request.get("user")
        return key is not None and any(
            other.id < inv.id and other.request.get("key") == key and other.request.get("user") == user
            for other in self.world.functions.invocations
        )

    def _gateway_paid_claim(self, inv: Invocation) -> None:
        """Every answer is true: "already has a completed payment under another transaction" only
        for an order that has one (docs/api.md: an order completed under another transaction, 409)."""
        if "already has a completed payment under another transaction" not in inv.text:
            return
        try:
            event = json.loads(inv.request.get("raw") or b"{}")
        except ValueError:
            return
        reference = str(event.get("order_reference", ""))
        order = self.world.state.orders().get(int(reference)) if reference.isdigit() else None
        paid = [
            p
            for p in self.world.state.payments().values()
            if order is not None and int(p["order"]) == int(order["id"]) and p["status"] in PAID
        ]
        if not any(p.get("transaction_id") != event.get("payment_id") for p in paid):
            self.fail("gateway_answer_true", f"{inv.describe()}: order {reference}'s paid payments: {paid}")

    def _gateway_retry_after(self, inv: Invocation) -> None:
        """docs/api.md: a sender retries exactly when retrying can help; "a refund that arrives
        before its completion is 409 (retry later)", as is a duplicate delivery while the first is
        being applied ("still in progress"). Nothing else asks the gateway to come back (Retry-After,
        or "Retry later." in the answer)."""
        asks = "retry-after" in inv.headers or "retry later" in inv.text.lower()
        if inv.status != 409 or not asks or "still in progress" in inv.text:
            return
        try:
            event = json.loads(inv.request.get("raw") or b"{}")
        except ValueError:
            event = {}
        if event.get("event_type") != "payment.refunded":
            self.fail(
                "retry_only_when_it_helps", f"{inv.describe()} asked the gateway to retry {event.get('event_type')}"
            )

    def _gateway_replay(self, inv: Invocation) -> None:
        raw = inv.request.get("raw")
        earlier = [g for g in self.world.gateway_sends if g.request.get("raw") == raw and g is not inv]
        # A refusal is a final 4xx; "still in progress" (409 with Retry-After) asks to come back.
        refused = [
            g for g in earlier if g.status is not None and 400 <= g.status < 500 and "retry-after" not in g.headers
        ]
        if refused and any(inv.metric(alarm) for alarm in ALARMS):
            self.fail(
                "refused_replay_alarm",
                f"{inv.describe()} raised {[m for m in inv.metrics if m[0] in ALARMS]} for a body refused before "
                f"({refused[0].describe()})",
            )

    # ------------------------------------------------------------------ at quiescence

    def final(self) -> None:
        self.step()
        state = self.world.state
        payments = state.payments()
        orders = state.orders()
        audit = state.audit()
        self._checked(
            lambda: self._audit(payments, audit),
            lambda: self.books.accounted(payments, audit),
            lambda: self.books.refunds(payments, audit),
            lambda: self.books.disputes(payments, audit),
            lambda: self.books.promises(audit),
            lambda: self.books.settled(orders, payments, audit),
            lambda: self._stripe_truth(payments, orders, audit),
            lambda: self._committed_checkouts(orders, payments),
            self._replays,
            lambda: events_check.published_exactly_the_committed_changes(self.world, self.fail),
            lambda: self._sessions_ask_totals(orders),
        )

    def _sessions_ask_totals(self, orders: dict[int, dict[str, Any]]) -> None:
        """Spec: the payment amount is the order total; Stripe is asked for exactly that, in its currency."""
        for session in self.world.ledger.sessions.values():
            order = orders.get(session.order or 0)
            if order is None:
                self.fail("session_asks_order_total", f"session {session.id} names no order ({session.order})")
                continue
            currency = str(order.get("currency") or "usd").lower()
            if (session.amount, session.currency) != (amount(order["total_price"]), currency):
                self.fail(
                    "session_asks_order_total",
                    f"session {session.id} asks {session.amount} {session.currency} for order {order['id']}, "
                    f"whose total is {order['total_price']} {currency}",
                )

    def _audit(self, payments: dict[int, dict[str, Any]], audit: dict[int, list[dict[str, Any]]]) -> None:
        for pid, payment in payments.items():
            rows = [r for r in audit.get(pid, []) if r.get("to") is not None and r.get("from") != r.get("to")]
            current: str | None = None
            if pid in self.seeded_payments:
                current = self.seeded_payments[pid]  # written by the platform before the run: no trail
            elif not rows:
                self.fail("audit_trail", f"payment {pid} has no audit trail")
            remaining = list(rows)
            method = payment["method"]
            while remaining:
                following = [r for r in remaining if r.get("from") == current]
                if len(following) != 1:
                    self.fail(
                        "audit_trail",
                        f"payment {pid}: after {current} the trail has {len(following)} transitions "
                        f"({[(r.get('from'), r.get('to'), r.get('reason')) for r in rows]})",
                    )
                row = following[0]
                if current is not None and not may_move(method, current, row["to"]):
                    self.fail("audit_trail", f"payment {pid}: audited {current} -> {row['to']}")
                current = row["to"]
                remaining.remove(row)
            if current != payment["status"]:
                self.fail("audit_trail", f"payment {pid} is {payment['status']}; its trail ends at {current}")

    def _stripe_truth(
        self,
        payments: dict[int, dict[str, Any]],
        orders: dict[int, dict[str, Any]],
        audit: dict[int, list[dict[str, Any]]],
    ) -> None:
        stripe = self.world.stripe
        for session_id in stripe.all_sessions():
            state = stripe.session_state(session_id)
            obj, charge = state["obj"], state["charge"]
            made = self.world.ledger.sessions.get(session_id)
            payment = payments.get(made.payment) if made is not None and made.payment is not None else None
            if payment is None:
                continue
            order = orders[int(payment["order"])]
            trail = audit.get(int(payment["id"]), [])
            if charge is not None:
                self._checked(partial(self._paid_session, session_id, obj, payment, order, trail))
            elif payment["status"] in OPEN and (obj["status"] == "expired" or state["delayed"] == "failed"):
                why = "expired" if obj["status"] == "expired" else "its delayed payment failed"
                detail = f"session {session_id} {why}; payment {payment['id']} is still {payment['status']}"
                self._checked(partial(self.fail, "stripe_converged", detail))
        for pid, payment in payments.items():
            if payment["method"] == "stripe" and payment["status"] in OPEN:
                session = payment.get("checkout_session_id")
                paid = session is not None and stripe.session_state(session)["charge"] is not None
                if (
                    paid
                    and self._tampered(session)
                    and any(r.get("reason") in MISMATCH_REASONS for r in audit.get(pid, []))
                ):
                    continue  # paid, held back with its alarm for someone to look at (whose money is it?)
                hint = self._hint(stripe.session_state(session)["obj"]) if session else ""
                self.fail("stripe_converged", f"Stripe payment {pid} is still {payment['status']} at quiescence{hint}")

    def _paid_session(
        self,
        session_id: str,
        obj: dict[str, Any],
        payment: dict[str, Any],
        order: dict[str, Any],
        trail: list[dict[str, Any]],
    ) -> None:
        """A paid session whose URL a customer was given completes its payment, unless the order was
        paid another way (then captured_money_accounted wants its refund alarm)."""
        pid, intent = int(payment["id"]), obj.get("payment_intent")
        settled = payment["status"] in PAID and payment.get("transaction_id") == intent
        held = self._tampered(session_id) and any(r.get("reason") in MISMATCH_REASONS for r in trail)
        if settled and self.world.metadata_edits.get(session_id) == "another_user":
            self.fail(
                "foreign_user_held",
                f"session {session_id}, whose metadata names user {obj.get('metadata', {}).get('user_id')}, settled "
                f"payment {pid} of user {payment['user']}",
            )
        answered = self.world.answered_sessions.get(session_id)
        other = order.get("completed_payment")
        if answered is not None and not settled and (other is None or int(other) == pid) and not held:
            failed_by = next((f"{r.get('reason')} ({r.get('source')})" for r in trail if r.get("to") == "failed"), None)
            how = f"; it was failed by {failed_by}" if failed_by else ""
            self.fail(
                "answered_session_completes",
                f"session {session_id} (answered by {answered.describe()}) was paid; payment {pid} is "
                f"{payment['status']} and order {order['id']} is {order['status']}, paid by nothing else{how}"
                f"{self._hint(obj) if payment['status'] == 'pending' else ''}",
            )

    def _charged(self, order_id: int) -> bool:
        stripe = self.world.stripe
        for session in stripe.all_sessions():
            state = stripe.session_state(session)
            if state["charge"] and str((state["obj"].get("metadata") or {}).get("order_id")) == str(order_id):
                return True
        return False

    def _committed_checkouts(self, orders: dict[int, dict[str, Any]], payments: dict[int, dict[str, Any]]) -> None:
        tables = self.world.state.tables
        for record in self.world.checkouts:
            committed = [
                (inv, order) for inv in record.invocations for order in _orders_placed(inv, tables["OrdersTable"])
            ]
            if not committed:
                continue
            answers = [inv for inv in record.invocations if inv.status is not None and not inv.throttled]
            final = answers[-1] if answers else None
            if final is None or final.status in (200, 201):
                continue
            order_id = committed[-1][1]
            order = orders.get(order_id, {})
            if final.status == 502 and (order.get("status") == "cancelled" or not self._charged(order_id)):
                continue  # "nothing was charged" is true: given back, or no session of it was ever paid
            if final.request.get("orders_then", {}).get(order_id) == "cancelled" and not self._charged(order_id):
                continue  # the order was given up before this answer, which says so truly
            if (
                final.status is not None
                and final.status >= 500
                and final.faulted
                and (record.key is None or final is record.invocations[-1])
            ):
                # Faults outlasted every retry: "please retry" is all an honest answer can say. With a
                # key the client's retries (all spent here) would get the order; without one, not.
                self.notes["committed checkout answered 5xx under injected faults"] += 1
                continue
            if final.status == 409 and order.get("status") == "confirmed" and "already paid" in final.text:
                continue  # paid another way meanwhile (the gateway): true, and nothing to check out again
            if record.key is not None and final is record.invocations[-1] and "in progress" in final.text:
                self.notes["keyed checkout left in progress"] += 1
                continue
            conflicted = any("TransactionConflictException" in o for inv in record.invocations for _, _, o in inv.calls)
            self.fail(
                "committed_checkout_answered",
                (
                    "[a single-item write met a transaction in flight: TransactionConflictException] "
                    if conflicted
                    else ""
                )
                + f"order {order_id} committed by {committed[-1][0].describe()}; "
                f"{'key ' + record.key if record.key else 'no key'}: finally answered {final.describe()}",
            )

    def _replays(self) -> None:
        for record in self.world.checkouts:
            if record.key is None:
                continue
            first_success: Invocation | None = None
            for inv in record.invocations:
                if inv.status is None:
                    continue
                if first_success is None:
                    if inv.status in (200, 201):
                        first_success = inv
                    continue
                if inv.status in (200, 201) and (inv.status, inv.text) != (first_success.status, first_success.text):
                    self.fail(
                        "idempotent_replay",
                        f"key {record.key}: {inv.describe()} after {first_success.describe()}",
                    )
                if 400 <= inv.status < 500 and inv.status != 409:
                    self.fail(
                        "idempotent_replay", f"key {record.key}: {inv.describe()} after {first_success.describe()}"
                    )
        # Concurrent twins and later requests share a key: docs/api.md's "24 h". Within that day their
        # successes agree; a success more than a day after the first names a new checkout.
        by_key: dict[tuple[int, str, str], list[Invocation]] = defaultdict(list)
        for record in self.world.checkouts:
            if record.key is not None:
                by_key[(record.user, record.path, record.key)] += [
                    inv for inv in record.invocations if inv.status is not None
                ]
        for key, answered in by_key.items():
            successes = sorted((inv for inv in answered if inv.status in (200, 201)), key=lambda inv: inv.started)
            if not successes:
                continue
            first = successes[0]
            same_day = [inv for inv in answered if first.started <= inv.started < first.started + KEY_DAY - 60]
            if len({(inv.status, inv.text) for inv in same_day if inv.status in (200, 201)}) > 1:
                self.fail("idempotent_replay", f"key {key[2]} answered differently: {[i.describe() for i in same_day]}")
            refused = [inv for inv in same_day if 400 <= inv.status < 500 and inv.status != 409]
            if refused:
                self.fail("idempotent_replay", f"key {key[2]}: {refused[0].describe()} after {first.describe()}")
            for inv in successes:
                if inv.started > (first.ended or first.started) + KEY_DAY + 60 and inv.text == first.text:
                    self.fail("idempotent_replay", f"key {key[2]} replayed past its 24 h: {inv.describe()}")

    def list_check(self, user: int, query: str, pages: list[Invocation], back: list[Invocation]) -> None:
        """The pages of one listing, followed through `next` at quiescence, then back through `previous`."""
        self._checked(lambda: self._list_check(user, query, pages), lambda: self._list_back(user, query, pages, back))

    def _list_back(self, user: int, query: str, pages: list[Invocation], back: list[Invocation]) -> None:
        def ids(page: Invocation) -> list[int]:
            return [row["id"] for row in (page.body or {}).get("results", [])]

        if len(pages) > 1 and [ids(page) for page in back[::-1]] != [ids(page) for page in pages]:
            self.fail(
                "list_count",
                f"user {user} ?{query}: pages {[ids(p) for p in pages]} read back through `previous` as "
                f"{[ids(p) for p in back[::-1]]}",
            )

    def _list_check(self, user: int, query: str, pages: list[Invocation]) -> None:
        empty = [page for page in pages[1:] if not (page.body or {}).get("results")]
        if empty:  # DRF's pagination: `next` is null on the last page, so it never leads to an empty one
            self.fail("list_count", f"user {user} ?{query}: a `next` link led to an empty page {empty[0].describe()}")
        listed = [row for page in pages for row in (page.body or {}).get("results", [])]
        counts = {(page.body or {}).get("count") for page in pages}
        truth = [p for p in self.world.state.payments().values() if int(p["user"]) == user and _matches(p, query)]
        if counts != {len(listed)} or sorted(r["id"] for r in listed) != sorted(int(p["id"]) for p in truth):
            self.fail(
                "list_count",
                f"user {user} ?{query}: count {counts}, listed {sorted(r['id'] for r in listed)}, "
                f"has {sorted(int(p['id']) for p in truth)}",
            )
            return
        # docs/api.md: "default order ascending id, ?ordering=id|-id|created_at|-created_at".
        ordering = dict(part.partition("=")[::2] for part in query.split("&")).get("ordering") or "id"
        field = ordering.lstrip("-")
        expected = sorted(
            truth, key=lambda p: (p["created_at"], int(p["id"])) if field == "created_at" else int(p["id"])
        )
        expected_ids = [int(p["id"]) for p in (expected[::-1] if ordering.startswith("-") else expected)]
        if [r["id"] for r in listed] != expected_ids:
            self.fail(
                "list_count", f"user {user} ?{query}: listed {[r['id'] for r in listed]}, in order {expected_ids}"
            )


def _matches(payment: dict[str, Any], query: str) -> bool:
    for part in query.split("&"):
        name, _, value = part.partition("=")
        if name in ("status", "method") and payment[name] != value:
            return False
    return True


def _orders_placed(inv: Invocation, orders_table: str) -> list[int]:
    placed = []
    for call in inv.writes:
        if call.op != "TransactWriteItems":
            continue
        for entry in call.body.get("TransactItems", []):
            put = entry.get("Put")
            if put and put.get("TableName") == orders_table:
                placed.append(int(put["Item"]["id"]["N"]))
    return placed


def _carts_written(inv: Invocation, carts_table: str, user: int) -> list[dict[int, int]]:
    """The lines of every cart of `user` an invocation's committed transactions wrote (Put or Update)."""
    written = []
    for call in inv.writes:
        for entry in call.body.get("TransactItems", []) if call.op == "TransactWriteItems" else []:
            for kind in ("Put", "Update"):
                request = entry.get(kind)
                if not request or request.get("TableName") != carts_table:
                    continue
                key = request.get("Item") or request.get("Key") or {}
                if key.get("user") != {"N": str(user)}:
                    continue
                condition = request.get("ConditionExpression", "")  # names the cart as it was, not what it wrote
                values = (
                    [request["Item"].get("items")]
                    if kind == "Put"
                    else [
                        v
                        for k, v in request.get("ExpressionAttributeValues", {}).items()
                        if not re.search(re.escape(k) + r"(?!\w)", condition)
                    ]
                )
                for value in values:
                    if isinstance(value, dict) and "L" in value:
                        items = [{k: next(iter(v.values())) for k, v in i["M"].items()} for i in value["L"]]
                        written.append(lines_of(items))
    return written


def _worked(sweep: Invocation) -> bool:
    """Past its lease: a sweep's work starts with a Query of the open payments, then Stripe's log."""
    return any(service == "stripe" or op == "Query" for service, op, _ in sweep.calls)


def _audit_written(inv: Invocation, audit_table: str) -> list[dict[str, Any]]:
    """The audit rows an invocation wrote, as plain values (`{"S": "completed"}` -> "completed")."""
    rows = []
    for call in inv.writes:
        entries = call.body.get("TransactItems", []) if call.op == "TransactWriteItems" else []
        puts = [e.get("Put") for e in entries]
        if call.op == "PutItem":
            puts.append(call.body)
        for put in puts:
            if put and put.get("TableName") == audit_table:
                rows.append({name: next(iter(value.values())) for name, value in put["Item"].items()})
    return rows


def _payments_written(inv: Invocation, payments_table: str) -> list[int]:
    """The payments an invocation created (its transactions' Puts on the payments table)."""
    created = []
    for call in inv.writes:
        for entry in call.body.get("TransactItems", []) if call.op == "TransactWriteItems" else []:
            put = entry.get("Put")
            if put and put.get("TableName") == payments_table:
                created.append(int(put["Item"]["id"]["N"]))
    return created
