"""What is in the tables, read straight from moto's in-memory backend (test code: no request, no
Scan through the recorded client, no I/O point), as plain Python values."""

from __future__ import annotations

from collections import defaultdict
from decimal import Context, Decimal
from typing import Any

# DynamoDB's numbers (38 digits), read exactly.
NUMBERS = Context(prec=38)


class State:
    def __init__(self, backend: Any, tables: dict[str, str]) -> None:
        self._backend = backend
        self.tables = tables  # template logical id -> table name

    def items(self, logical: str) -> list[dict[str, Any]]:
        table = self._backend.tables[self.tables[logical]]
        return [{name: _value(attr) for name, attr in item.attrs.items()} for item in table.all_items()]

    def orders(self) -> dict[int, dict[str, Any]]:
        return {int(o["id"]): o for o in self.items("OrdersTable")}

    def payments(self) -> dict[int, dict[str, Any]]:
        return {int(p["id"]): p for p in self.items("PaymentsTable")}

    def variants(self) -> dict[int, dict[str, Any]]:
        return {int(v["id"]): v for v in self.items("ProductVariantsTable")}

    def addresses(self) -> dict[int, dict[str, Any]]:
        return {int(a["id"]): a for a in self.items("ShippingAddressesTable")}

    def stock(self) -> dict[int, int]:
        return {int(v["id"]): int(v.get("stock", 0)) for v in self.items("ProductVariantsTable")}

    def carts(self) -> dict[int, dict[int, int]]:
        carts: dict[int, dict[int, int]] = {}
        for cart in self.items("CartsTable"):
            lines: dict[int, int] = defaultdict(int)
            for item in cart.get("items") or []:
                lines[int(item["variant"])] += int(item["quantity"])
            carts[int(cart["user"])] = dict(lines)
        return carts

    def audit(self) -> dict[int, list[dict[str, Any]]]:
        trail: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for row in self.items("PaymentAuditTable"):
            trail[int(row["payment"])].append(row)
        return trail

    def counters(self) -> dict[str, dict[str, Any]]:
        return {str(c["name"]): c for c in self.items("CountersTable")}

    def claims(self) -> dict[str, dict[str, Any]]:
        return {str(c["transaction_id"]): c for c in self.items("GatewayTransactionsTable")}


def lines_of(items: list[dict[str, Any]]) -> dict[int, int]:
    lines: dict[int, int] = defaultdict(int)
    for item in items:
        lines[int(item["variant"])] += int(item["quantity"])
    return dict(lines)


def amount(value: Any) -> Decimal:
    return Decimal(str(value))


def _value(attr: Any) -> Any:
    """A moto DynamoType as the layer's `from_attr` reads it (numbers as Decimal), without the JSON
    round trip and deep copies of moto's own `to_json` (the invariants read every table often)."""
    kind, value = attr.type, attr.value
    if kind == "S":
        return value
    if kind == "N":
        return NUMBERS.create_decimal(value)
    if kind == "M":
        return {k: _value(v) for k, v in value.items()}
    if kind == "L":
        return [_value(v) for v in value]
    if kind == "BOOL":
        return value
    if kind == "NULL":
        return None
    if kind == "SS":
        return set(value)
    if kind == "NS":
        return {NUMBERS.create_decimal(v) for v in value}
    return value
