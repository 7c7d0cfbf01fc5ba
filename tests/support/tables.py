"""What the service wrote, read straight from DynamoDB (consistent reads) by the tests: payments and
orders as the product's own domain objects, everything else as plain Python values."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from halum_payments.models import Order, Payment
from halum_payments.repositories import orders, payments
from halum_payments.repositories.counters import user_payments_key
from halum_payments.repositories.dynamo import from_item, to_item

_checked: set[str] = set()  # the tables whose in-memory reading agreed with a Scan


class Store:
    """The tables of one stack (logical id -> table name), read with GetItem, Query and Scan."""

    def __init__(self, client: Any, tables: dict[str, str]) -> None:
        self.client = client
        self.tables = tables

    # ------------------------------------------------------------------ primitives (raw items)

    def _get(self, logical: str, key: dict[str, Any]) -> dict[str, Any] | None:
        return self.client.get_item(TableName=self.tables[logical], Key=to_item(key), ConsistentRead=True).get("Item")

    def _query(self, logical: str, name: str, value: Any) -> list[dict[str, Any]]:
        request: dict[str, Any] = {
            "TableName": self.tables[logical],
            "KeyConditionExpression": "#k = :v",
            "ExpressionAttributeNames": {"#k": name},
            "ExpressionAttributeValues": to_item({":v": value}),
            "ConsistentRead": True,
        }
        return self._pages(self.client.query, request)

    def _scan(self, logical: str) -> list[dict[str, Any]]:
        return self._pages(self.client.scan, {"TableName": self.tables[logical], "ConsistentRead": True})

    @staticmethod
    def _pages(operation: Callable[..., dict[str, Any]], request: dict[str, Any]) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        while True:
            response = operation(**request)
            items.extend(response.get("Items", []))
            if not response.get("LastEvaluatedKey"):
                return items
            request = {**request, "ExclusiveStartKey": response["LastEvaluatedKey"]}

    def scan(self, logical: str) -> list[dict[str, Any]]:
        return [from_item(item) for item in self._scan(logical)]

    # ------------------------------------------------------------------ what a user or operator sees

    def payment(self, payment_id: int) -> Payment:
        """By id alone, as a test knows it (the table is keyed by user and id): a Scan, test-only."""
        found = [payments.decode(item) for item in self._scan("PaymentsTable") if item["id"] == {"N": str(payment_id)}]
        assert len(found) == 1, f"payment {payment_id} is stored {len(found)} times"
        return found[0]

    def payments(self) -> dict[int, Payment]:
        return {payment.id: payment for payment in map(payments.decode, self._scan("PaymentsTable"))}

    def order(self, order_id: int) -> Order:
        item = self._get("OrdersTable", {"id": order_id})
        assert item is not None, f"order {order_id} does not exist"
        return orders.decode(item)

    def orders(self) -> dict[int, Order]:
        return {order.id: order for order in map(orders.decode, self._scan("OrdersTable"))}

    def stock(self, variant: int) -> int:
        item = self._get("ProductVariantsTable", {"id": variant})
        assert item is not None, f"variant {variant} does not exist"
        return int(from_item(item)["stock"])

    def stocks(self) -> dict[int, int]:
        return {int(v["id"]): int(v["stock"]) for v in self.scan("ProductVariantsTable")}

    def cart(self, user: int) -> dict[int, int] | None:
        """variant -> quantity (None: no cart at all)."""
        item = self._get("CartsTable", {"user": user})
        if item is None:
            return None
        lines: dict[int, int] = {}
        for line in from_item(item).get("items") or []:
            lines[int(line["variant"])] = lines.get(int(line["variant"]), 0) + int(line["quantity"])
        return lines

    def audit(self, payment_id: int) -> list[dict[str, Any]]:
        """The payment's audit rows, oldest first (the table's sort key is `at`)."""
        return [from_item(item) for item in self._query("PaymentAuditTable", "payment", payment_id)]

    def counts(self, user: int) -> dict[str, int]:
        item = self._get("CountersTable", {"name": user_payments_key(user)})
        record = from_item(item) if item else {}
        return {k: int(v) for k, v in record.items() if k != "name" and int(v) != 0}

    # ------------------------------------------------------------------ nothing was written

    def snapshot(self, *, idempotency: bool = True) -> dict[str, list[str]]:
        """Every item of every table, canonically: equal snapshots mean nothing was written.
        `idempotency=False` leaves out the idempotency table (remembered replies, not business).

        Id sequences are left out: like a database sequence, a request that is then refused may
        have reserved ids (gaps are fine); they are no business state.

        Read from the embedded server's memory (a Scan of every table per snapshot would dominate
        the suite's time); the first reading of each table in the session is checked against a Scan."""
        logicals = sorted(logical for logical in self.tables if idempotency or logical != "IdempotencyTable")
        in_memory = self._in_memory(logicals)
        if in_memory is None or not _checked.issuperset(logicals):
            scanned = _canonical({logical: self.scan(logical) for logical in logicals})
            assert in_memory is None or in_memory == scanned, "the in-memory snapshot disagrees with Scan"
            _checked.update(logicals if in_memory is not None else [])
            return scanned
        return in_memory

    def _in_memory(self, logicals: list[str]) -> dict[str, list[str]] | None:
        try:
            from moto.core import DEFAULT_ACCOUNT_ID
            from moto.dynamodb.models import dynamodb_backends

            backend = dynamodb_backends[DEFAULT_ACCOUNT_ID][self.client.meta.region_name]
            items = {
                logical: [item.to_regular_json() for item in backend.tables[self.tables[logical]].all_items()]
                for logical in logicals
            }
        except (ImportError, KeyError, AttributeError):  # another moto, another server: Scans
            return None
        return _canonical(items)

    # ------------------------------------------------------------------ writing as the platform does

    def put(self, logical: str, record: dict[str, Any]) -> None:
        self.client.put_item(TableName=self.tables[logical], Item=to_item(record))

    def set_cart(self, user: int, items: list[dict[str, Any]]) -> None:
        """A cart as the platform writes it (no validation: quantities may be anything)."""
        self.put("CartsTable", {"user": user, "items": items})

    def update_variant(self, variant: int, **values: Any) -> None:
        names = {f"#a{i}": name for i, name in enumerate(values)}
        self.client.update_item(
            TableName=self.tables["ProductVariantsTable"],
            Key=to_item({"id": variant}),
            UpdateExpression="SET " + ", ".join(f"#a{i} = :v{i}" for i in range(len(values))),
            ExpressionAttributeNames=names,
            ExpressionAttributeValues={f":v{i}": to_item({"v": v})["v"] for i, v in enumerate(values.values())},
        )


def _canonical(items: dict[str, list[dict[str, Any]]]) -> dict[str, list[str]]:
    return {
        logical: sorted(
            json.dumps(item, sort_keys=True, default=str)
            for item in table
            if not str(item.get("name", "")).startswith("sequence#")
        )
        for logical, table in items.items()
    }
