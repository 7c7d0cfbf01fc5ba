"""Reading the caller's own payments: one payment, or one cursor page of them."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..cursors import Cursor, CursorCodec
from ..errors import BadRequest, NotFound
from ..models import Payment, PaymentRow
from ..repositories.counters import CountersRepository
from ..repositories.payments import SORTS, PaymentsRepository, sort_key

_PAYMENT_ID = re.compile(r"[1-9][0-9]{0,17}")


@dataclass(frozen=True, slots=True)
class PageRequest:
    ordering: str = "id"
    status: str | None = None
    method: str | None = None
    page_size: int = 100
    cursor: str | None = None


@dataclass(frozen=True, slots=True)
class Page:
    count: int
    results: list[PaymentRow]
    next_cursor: str | None
    previous_cursor: str | None


class PaymentQueries:
    def __init__(self, payments: PaymentsRepository, counters: CountersRepository, cursors: CursorCodec | None) -> None:
        self._payments = payments
        self._counters = counters
        self._cursors = cursors

    def get_for_user(self, user: int, raw_id: str) -> Payment:
        """Another user's payment, a missing one and a malformed id all look the same: not found."""
        if not _PAYMENT_ID.fullmatch(raw_id or ""):
            raise NotFound()
        payment = self._payments.get(int(raw_id))
        if payment is None or payment.user != user:
            raise NotFound()
        return payment

    def list_for_user(self, user: int, request: PageRequest) -> Page:
        if self._cursors is None:
            raise RuntimeError("PaymentQueries was built without a cursor codec")
        codec = self._cursors
        field = request.ordering.lstrip("-")
        descending = request.ordering.startswith("-")
        sort_attr = SORTS[field]
        cursor = codec.decode(request.cursor) if request.cursor else None
        if cursor is not None and (
            cursor.user != user
            or cursor.ordering != request.ordering
            or cursor.status != request.status
            or cursor.method != request.method
            or (sort_attr != "id" and sort_attr not in cursor.anchor)
        ):
            raise BadRequest("Invalid cursor.")

        forward = cursor is None or cursor.forward
        rows, cut_short = self._payments.page(
            user=user,
            status=request.status,
            method=request.method,
            sort_attr=sort_attr,
            ascending=(not descending) == forward,
            after=cursor.anchor if cursor else None,
            limit=request.page_size + 1,  # one extra row says whether another page exists
        )
        # A short page with more behind it (DynamoDB's 1 MB cap) still links onward: never drop rows.
        more = len(rows) > request.page_size or cut_short
        rows = rows[: request.page_size]
        if not forward:
            rows.reverse()
        has_next = more if forward else True
        has_previous = cursor is not None and (forward or more)

        count = self._counters.payment_count(user, request.status, request.method)

        def make(anchor: PaymentRow, going_forward: bool) -> str:
            key: dict[str, object] = {"id": anchor["id"]}
            if sort_attr != "id":
                key[sort_attr] = sort_key(anchor["created_at"], anchor["id"])
            return codec.encode(Cursor(user, request.ordering, request.status, request.method, going_forward, key))

        next_cursor = make(rows[-1], True) if rows and has_next else None
        previous_cursor = make(rows[0], False) if rows and has_previous else None
        if not rows and cursor is not None:
            # Paged past the end (rows vanished): offer the way back to the start.
            previous_cursor = ""
        return Page(count=count, results=rows, next_cursor=next_cursor, previous_cursor=previous_cursor)
