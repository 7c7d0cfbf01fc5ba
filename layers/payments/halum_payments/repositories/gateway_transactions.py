"""Gateway transactions table: each provider transaction id belongs to exactly one payment.

Claimed in the same transaction that records the id on a payment, so one provider payment can
never settle two of ours; also the strongly consistent way to find a payment by provider id.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .dynamo import TableRepository, from_item, put_request


@dataclass(frozen=True, slots=True)
class Claimed:
    payment: int
    order: int
    user: int


def claim_key(method: str, transaction_id: str) -> str:
    return f"{method}#{transaction_id}"


class GatewayTransactionsRepository(TableRepository):
    def record(self, method: str, transaction_id: str, payment: int, order: int, user: int) -> dict[str, Any]:
        return {"transaction_id": claim_key(method, transaction_id), "payment": payment, "order": order, "user": user}

    def claim(self, method: str, transaction_id: str, payment: int, order: int, user: int) -> dict[str, Any]:
        """Put request claiming the id for `payment` (idempotent for the same payment)."""
        request = put_request(self.table, self.record(method, transaction_id, payment, order, user))
        request["ConditionExpression"] = "attribute_not_exists(#t) OR #p = :p"
        request["ExpressionAttributeNames"] = {"#t": "transaction_id", "#p": "payment"}
        request["ExpressionAttributeValues"] = {":p": {"N": str(payment)}}
        return request

    def lookup(self, method: str, transaction_id: str) -> Claimed | None:
        """The payment this provider transaction settled."""
        response = self.client.get_item(
            TableName=self.table,
            Key={"transaction_id": {"S": claim_key(method, transaction_id)}},
            ConsistentRead=True,
        )
        item = response.get("Item")
        if not item:
            return None
        record = from_item(item)
        return Claimed(int(record["payment"]), int(record["order"]), int(record["user"]))
