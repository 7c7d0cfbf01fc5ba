"""The benchmark's reference handler: a plain, typical Powertools HTTP API function.

Powertools Logger + APIGatewayHttpResolver with validation + pydantic models + a PyJWT decode of
the caller's Bearer token, written the way the Powertools documentation shows it, plus the boto3
client a typical function creates at import (the issue's "typical handler"). No I/O per request. Our
functions' warm per-request cost is reported as a ratio to this one's (bench/README.md):

  GET  /ref/items/<item_id>   one item        (compared with get_payment)
  GET  /ref/items             a page of 100   (compared with list_payments, 100 rows)
  POST /ref/items             a body in, one item out (compared with checkout and the webhooks)

It runs in the same Lambda-like process as the functions, on the built PaymentsLayer.
"""

from __future__ import annotations

import os
from typing import Annotated, Any

import boto3
import jwt
from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver
from aws_lambda_powertools.event_handler.exceptions import UnauthorizedError
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, Field

logger = Logger(service="reference")
dynamodb = boto3.client("dynamodb")  # a typical function's one client (its cold start pays for it; no I/O here)
app = APIGatewayHttpResolver(enable_validation=True)
SECRET = os.environ["JWT_SECRET"]


class Item(BaseModel):
    id: int
    order: int
    user: int
    amount: str
    method: str
    status: str
    transaction_id: str | None
    created_at: str
    updated_at: str


class ItemPage(BaseModel):
    count: int
    next: str | None
    previous: str | None
    results: list[Item]


class ItemIn(BaseModel):
    shipping_address: Annotated[int, Field(ge=1)]


ROW: dict[str, Any] = {
    "order": 1,
    "amount": "1598.00",
    "method": "COD",
    "status": "pending",
    "transaction_id": None,
    "created_at": "2023-01-15T14:30:00Z",
    "updated_at": "2023-01-15T14:30:00Z",
}


def caller() -> int:
    header = app.current_event.headers.get("authorization") or ""
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise UnauthorizedError("Authentication credentials were not provided.")
    try:
        claims = jwt.decode(token, SECRET, algorithms=["HS256"], options={"require": ["exp", "user_id", "token_type"]})
    except jwt.PyJWTError as exc:
        raise UnauthorizedError("Given token not valid for any token type") from exc
    return int(claims["user_id"])


@app.get("/ref/items/<item_id>")
def get_item(item_id: int) -> Item:
    return Item(id=item_id, user=caller(), **ROW)


@app.get("/ref/items")
def list_items(page_size: Annotated[int, Query(ge=1, le=1000)] = 100) -> ItemPage:
    user = caller()
    results = [Item(id=i, user=user, **ROW) for i in range(1, page_size + 1)]
    return ItemPage(count=len(results), next=None, previous=None, results=results)


@app.post("/ref/items")
def create_item(body: ItemIn) -> Item:
    return Item(id=1, user=caller(), **{**ROW, "order": body.shipping_address})


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
