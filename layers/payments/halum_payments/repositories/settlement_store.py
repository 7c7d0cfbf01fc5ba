"""Turns a settlement Plan into one TransactWriteItems whose conditions assert the plan's snapshot."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from ..errors import TransientFault, UnreadableRecord
from ..logic.rules import OPEN_STATUSES
from ..logic.settlement import AuditEntry, CommitConflict, GiveBack, Plan, Transition
from ..models import Cart, Order, Payment, PaymentMethod, PaymentRef, PaymentStatus
from . import catalog, request_keys
from . import orders as order_records
from . import payments as payment_records
from .audit import audit_record
from .counters import PAYMENT_SEQUENCE, CountersRepository, IdBlocks, created_deltas, merge_deltas, transition_deltas
from .dynamo import (
    Expression,
    Transaction,
    TransactionCancelled,
    batch_get,
    batch_put,
    dynamodb_client,
    from_item,
    is_condition_failure,
    put_request,
    update_request,
)
from .gateway_transactions import GatewayTransactionsRepository, claim_key
from .tables import Tables

UNREADABLE = Cart(user=0, items=())  # a cart that breaks its contract: nothing is merged into it
HELD_FACTS = ("needs_refund", "amount_mismatch")  # money recorded for a refund, not settled


def fact_key(fact: str) -> str:
    """Where a recorded fact about provider money lives in the GatewayTransactions table, beside
    the claims (`stripe#pi_...`): `fact#needs_refund#ONLINE#txn_1`."""
    return f"fact#{fact}"


class DynamoSettlementStore:
    def __init__(self, tables: Tables, client: Any = None) -> None:
        self.tables = tables
        self._client = client
        self.counters = CountersRepository(tables.counters, client)
        self.ids = IdBlocks(tables.counters, client)
        self.transactions = GatewayTransactionsRepository(tables.gateway_transactions, client)

    @property
    def client(self) -> Any:
        return self._client or dynamodb_client()

    # ------------------------------------------------------------------ reads

    def load(self, order_id: int) -> Order | None:
        response = self.client.get_item(
            TableName=self.tables.orders, Key={"id": {"N": str(order_id)}}, ConsistentRead=True
        )
        item = response.get("Item")
        return order_records.decode(item) if item else None

    def new_payment_id(self) -> int:
        return self.ids.next(PAYMENT_SEQUENCE)

    def payments(self, user: int, payment_ids: list[int]) -> list[Payment]:
        keys = [payment_records.key(user, pid) for pid in payment_ids]
        found = batch_get(self.client, {self.tables.payments: {"Keys": keys}})
        return [payment_records.decode(item) for item in found[self.tables.payments]]

    def payment(self, user: int, payment_id: int) -> Payment | None:
        return payment_records.PaymentsRepository(self.tables.payments, self._client).get(user, payment_id)

    def payment_for_transaction(self, method: PaymentMethod, transaction_id: str) -> Payment | None:
        """The payment a provider transaction settled (claimed in its completing transaction)."""
        claimed = self.transactions.lookup(method, transaction_id)
        return self.payment(claimed.user, claimed.payment) if claimed else None

    def holder(self, method: PaymentMethod, transaction_id: str) -> tuple[int, int] | None:
        """(payment, order) of the money of a provider transaction: the payment it settled, else
        the record that it must be refunded (payment NO_PAYMENT when no payment of ours holds it)."""
        keys = [claim_key(str(method), transaction_id), fact_key(f"needs_refund#{method}#{transaction_id}")]
        table = self.tables.gateway_transactions
        found = batch_get(self.client, {table: {"Keys": [{"transaction_id": key} for key in keys]}})[table]
        records = {item["transaction_id"]["S"]: from_item(item) for item in found}
        record = records.get(keys[0]) or records.get(keys[1])
        return (int(record["payment"]), int(record["order"])) if record else None

    # ------------------------------------------------------------------ writes

    def record(self, entries: list[AuditEntry]) -> None:
        batch_put(self.client, self.tables.payment_audit, [audit_record(e) for e in entries])

    def record_once(self, entry: AuditEntry, fact: str, *, alarmed: bool = False) -> bool:
        """The audit row and the fact it records, in one transaction conditioned on the fact being
        new: a redelivered, replayed or reconciled report of it writes nothing. True if written.
        `alarmed`: the fact's alarm is pending until `alarm_raised` says it went out."""
        record = audit_record(entry)
        marker = {"transaction_id": fact_key(fact), "payment": entry.payment_id, "order": entry.order_id}
        marker["at"] = record["at"]  # the row it names
        if alarmed:
            marker["alarm"] = "pending"
        txn = Transaction()
        txn.add(
            "fact",
            "Put",
            put_request(self.tables.gateway_transactions, marker, condition=[("transaction_id", "not_exists", None)]),
        )
        txn.add("audit", "Put", put_request(self.tables.payment_audit, record))
        try:
            txn.commit(self.client)
        except TransactionCancelled as cancelled:
            if "fact" in cancelled.failed:
                return False
            raise TransientFault(f"recording {fact} was cancelled") from None
        return True

    def alarm_pending(self, fact: str) -> bool:
        """The fact is recorded and its alarm was never said to be raised (its recorder was stopped).
        An UpdateItem that changes nothing, conditioned on it: true again if retried after a lost answer."""
        key = {"transaction_id": fact_key(fact)}
        pending = update_request(
            self.tables.gateway_transactions, key, set_={"alarm": "pending"}, condition=[("alarm", "=", "pending")]
        )
        try:
            self.client.update_item(**pending)
        except ClientError as exc:
            if not is_condition_failure(exc):
                raise
            return False
        return True

    def alarm_raised(self, fact: str) -> None:
        self.client.update_item(
            **update_request(
                self.tables.gateway_transactions, {"transaction_id": fact_key(fact)}, set_={"alarm": "raised"}
            )
        )

    def session_closed(self, user: int, payment_id: int) -> None:
        """Out of the open index, once the payment is given up (never an open payment's entry)."""
        request = update_request(
            self.tables.payments,
            {"user": user, "id": payment_id},
            remove=["open_method"],
            condition=[("status", "in", [str(s) for s in PaymentStatus if s not in OPEN_STATUSES])],
        )
        try:
            self.client.update_item(**request)
        except ClientError as exc:
            if not is_condition_failure(exc):
                raise

    def commit(self, plan: Plan, give_back: GiveBack | None = None) -> None:
        txn = self._transaction(plan)
        if give_back is not None:
            self._give_back(txn, give_back)
        try:
            txn.commit(self.client)
        except TransactionCancelled as cancelled:
            raise self._diagnose(plan, cancelled.failed) from None

    def _transaction(self, plan: Plan) -> Transaction:
        order = plan.order
        txn = Transaction()
        deltas: list[dict[str, int]] = []

        new = plan.new_payment
        if new is not None:
            record = payment_records.encode(new)
            txn.add(
                f"payment:{new.id}",
                "Put",
                put_request(self.tables.payments, record, condition=[("id", "not_exists", None)]),
            )
            deltas.append(created_deltas(new.status, new.method))

        for transition in plan.transitions:
            txn.add(f"payment:{transition.payment_id}", "Update", self._transition_update(plan, transition))
            deltas.append(transition_deltas(transition.from_status, transition.to_status, transition.method))

        txn.add("order", "Update", self._order_update(plan))

        if plan.release_stock:
            for item in order.items:
                # Unconditional: stock going back must never be refused (a deleted variant is
                # recreated as a stub without a sku, which readers treat as "not for sale").
                stock = update_request(self.tables.product_variants, {"id": item.variant}, add={"stock": item.quantity})
                txn.add(f"variant:{item.variant}", "Update", stock)

        if plan.claim is not None:
            method, transaction_id, payment_id = plan.claim
            txn.add("claim", "Put", self.transactions.claim(method, transaction_id, payment_id, order.id, order.user))
            for reason in HELD_FACTS:
                # Money of this transaction held for a refund of another order is that order's:
                # a report of the same transaction for this order cannot spend it again.
                held: dict[str, Any] = {
                    "TableName": self.tables.gateway_transactions,
                    "Key": {"transaction_id": {"S": fact_key(f"{reason}#{method}#{transaction_id}")}},
                    "ConditionExpression": "attribute_not_exists(#t) OR #o = :o",
                    "ExpressionAttributeNames": {"#t": "transaction_id", "#o": "order"},
                    "ExpressionAttributeValues": {":o": {"N": str(order.id)}},
                }
                txn.add(f"claim-held:{reason}", "ConditionCheck", held)

        counters = self.counters.adjust_payment_counts(plan.user, merge_deltas(deltas))
        if counters is not None:
            txn.add("counts", "Update", counters["Update"])
        for index, entry in enumerate(plan.audit):
            txn.add(f"audit:{index}", "Put", put_request(self.tables.payment_audit, audit_record(entry)))
        return txn

    def _transition_update(self, plan: Plan, transition: Transition) -> dict[str, Any]:
        order = plan.order
        set_: dict[str, Any] = {"status": str(transition.to_status), "updated_at": plan.at}
        # A Stripe payment that closes leaves the open index (nothing ever reopens a payment).
        # One given up while its session may still be paid stays there until the session is known
        # closed (`session_closed`).
        closes = payment_records.open_method(transition.method, transition.to_status) is None
        was_open = payment_records.open_method(transition.method, transition.from_status)
        remove = ["open_method"] if closes and was_open and not transition.watch_session else []
        if transition.transaction_id:
            set_["transaction_id"] = transition.transaction_id
        condition: list[tuple[str, str, Any]] = [
            ("status", "=", str(transition.from_status)),
            ("order", "=", order.id),
            ("user", "=", order.user),
        ]
        facts = transition.facts
        extra_condition = None
        expr = Expression()
        if facts is not None:
            if facts.amount is not None:
                condition.append(("amount", "=", facts.amount))
            if facts.currency is not None:
                condition.append(("currency", "=", facts.currency.lower()))
            if facts.session_id is not None:
                # The payment's own session; or, if the event overtook the checkout that records
                # it, a session naming this very checkout attempt (our metadata's key).
                session = expr.name("checkout_session_id")
                extra_condition = f"{session} = {expr.value(facts.session_id)}"
                if facts.checkout_key is not None:
                    key = f"{expr.name('checkout_key')} = {expr.value(facts.checkout_key)}"
                    extra_condition += f" OR (attribute_not_exists({session}) AND {key})"
                set_["checkout_session_id"] = facts.session_id
            if facts.transaction_id is not None:
                condition.append(("transaction_id", "=", facts.transaction_id))
            if facts.without_session:
                condition.append(("checkout_session_id", "not_exists", None))
        request = update_request(
            self.tables.payments,
            payment_records.key(order.user, transition.payment_id),
            set_=set_,
            remove=remove,
            condition=condition,
            expression=expr,
            extra_condition=extra_condition,
        )
        request["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
        return request

    def _order_update(self, plan: Plan) -> dict[str, Any]:
        order = plan.order
        changed = {t.payment_id: PaymentRef(t.method, t.to_status) for t in plan.transitions}
        if plan.new_payment is not None:
            changed[plan.new_payment.id] = PaymentRef(plan.new_payment.method, plan.new_payment.status)
        set_, condition = order_records.payments_changed(order, changed)
        set_["updated_at"] = plan.at
        condition.append(("status", "=", str(order.status)))
        if plan.order_status is not None:
            set_["status"] = str(plan.order_status)
        if plan.completed_payment is not None:
            set_["completed_payment"] = plan.completed_payment
            if plan.completed_transaction:
                set_["completed_transaction"] = plan.completed_transaction
            condition.append(("completed_payment", "not_exists", None))
        if plan.release_stock:
            set_["stock_reserved"] = False
            condition.append(("stock_reserved", "=", True))
        return update_request(self.tables.orders, {"id": order.id}, set_=set_, condition=condition)

    def _give_back(self, txn: Transaction, give_back: GiveBack) -> None:
        """The cart lines back (merged into the cart as it is now, which must not change meanwhile;
        never into a cart we cannot read) and the Idempotency-Key's claim forgotten."""
        cart = self._cart(give_back.user) if give_back.lines else None
        if give_back.lines and cart is not UNREADABLE:
            merged: dict[int, int] = {}
            for item in (*(cart.items if cart else ()), *give_back.lines):
                merged[item.variant] = merged.get(item.variant, 0) + item.quantity
            lines = [{"variant": v, "quantity": q} for v, q in merged.items()]
            if cart is None:
                record = {"user": give_back.user, "items": lines}
                txn.add("cart", "Put", put_request(self.tables.carts, record, condition=[("user", "not_exists", None)]))
            else:
                update = update_request(
                    self.tables.carts,
                    {"user": give_back.user},
                    set_={"items": lines},
                    condition=[("items", "=", cart.raw_items)],
                )
                txn.add("cart", "Update", update)
        if give_back.key is not None:
            txn.add("key", "Delete", request_keys.forget(self.tables.idempotency, give_back.key))

    def _cart(self, user: int) -> Cart | None:
        """The cart as it is now; UNREADABLE if it breaks its contract (its lines are then not given
        back into it: the order is still cancelled and its stock returned; the metric tells the shop)."""
        response = self.client.get_item(
            TableName=self.tables.carts, Key={"user": {"N": str(user)}}, ConsistentRead=True
        )
        item = response.get("Item")
        try:
            return catalog.decode_cart(item) if item else None
        except UnreadableRecord:
            return UNREADABLE

    @staticmethod
    def _diagnose(plan: Plan, failed: dict[str, dict[str, Any] | None]) -> CommitConflict:
        for transition in plan.transitions:
            old = failed.get(f"payment:{transition.payment_id}")
            payment = payment_records.decode(old) if old is not None else None
            if payment is not None and payment.status == transition.from_status and transition.facts:
                return CommitConflict(facts_mismatch=payment)
        return CommitConflict(claimed=any(tag.startswith("claim") for tag in failed))
