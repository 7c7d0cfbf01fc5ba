"""Reading the caller's own payments: one payment, or one cursor page of them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from ..cursors import INVALID_CURSOR, Cursor, CursorCodec
from ..errors import BadRequest, NotFound
from ..models import Payment, PaymentOut, payment_out


@dataclass(frozen=True, slots=True)
class PageQuery:
    """One read of a user's payments: up to `limit` matching rows after the `after` position."""

    user: int
    status: str | None
    method: str | None
    by_created: bool
    ascending: bool
    after: dict[str, Any] | None
    limit: int


class PaymentReader(Protocol):
    def get(self, user: int, payment_id: int) -> Payment | None: ...

    def page(self, query: PageQuery) -> tuple[list[Payment], dict[str, Any] | None]:
        """The rows, and where DynamoDB stopped reading if it did before `limit` rows."""
        ...

    def list_position(self, payment: Payment, by_created: bool) -> dict[str, Any]: ...


class PaymentCounts(Protocol):
    def payment_count(self, user: int, status: str | None, method: str | None) -> int: ...


@dataclass(frozen=True, slots=True)
class PageRequest:
    ordering: str = "id"
    status: str | None = None
    method: str | None = None
    page_size: int = 100
    cursor: str | None = None

    @property
    def by_created(self) -> bool:
        return self.ordering.lstrip("-") == "created_at"

    @property
    def descending(self) -> bool:
        return self.ordering.startswith("-")


@dataclass(frozen=True, slots=True)
class Page:
    count: int
    results: list[PaymentOut]
    next_cursor: str | None
    previous_cursor: str | None  # "" links back to the first page


class PaymentQueries:
    def __init__(self, payments: PaymentReader, counts: PaymentCounts, cursors: CursorCodec | None) -> None:
        self._payments = payments
        self._counts = counts
        self._cursors = cursors

    def get_for_user(self, user: int, payment_id: int) -> Payment:
        """Another user's payment and a missing one look the same: not found (the read is keyed by
        the caller, so another user's payment is not even reachable)."""
        payment = self._payments.get(user, payment_id)
        if payment is None:
            raise NotFound()
        return payment

    def list_for_user(self, user: int, request: PageRequest) -> Page:
        codec = self._codec()
        cursor = self._cursor(codec, user, request)
        forward = cursor is None or cursor.forward
        payments, stopped_at, more = self._read(user, request, cursor, forward)
        before, after = self._edges(payments, request, stopped_at, forward)
        links = _Links(codec, user, request)
        has_next = more or not forward
        has_previous = cursor is not None and (forward or more)
        previous_cursor = links.make(before, False) if has_previous else None
        if cursor is not None and not payments and stopped_at is None:
            previous_cursor = ""  # paged past the end (rows vanished): offer the way back to the start
        return Page(
            count=self._counts.payment_count(user, request.status, request.method),
            results=[payment_out(payment) for payment in payments],
            next_cursor=links.make(after, True) if has_next else None,
            previous_cursor=previous_cursor,
        )

    def _read(
        self, user: int, request: PageRequest, cursor: Cursor | None, forward: bool
    ) -> tuple[list[Payment], dict[str, Any] | None, bool]:
        """The page's rows in the order shown, where DynamoDB stopped reading (if it did before a
        page was full), and whether more rows lie beyond them."""
        query = PageQuery(
            user,
            request.status,
            request.method,
            request.by_created,
            ascending=request.descending != forward,
            after=cursor.anchor if cursor else None,
            limit=request.page_size + 1,  # one more than a page says whether another page exists
        )
        payments, stopped_at = self._payments.page(query)
        # More behind this page: the extra row, or DynamoDB stopped early (its 1 MB page).
        more = len(payments) > request.page_size or stopped_at is not None
        shown = payments[: request.page_size]
        return (shown if forward else shown[::-1]), stopped_at, more

    @staticmethod
    def _cursor(codec: CursorCodec, user: int, request: PageRequest) -> Cursor | None:
        """The request's cursor, if it is one we minted for this very listing (the page size may change)."""
        cursor = codec.decode(request.cursor) if request.cursor else None
        if cursor is None:
            return None
        if cursor.user != user:
            raise BadRequest("Invalid cursor: it was issued to another user.")
        if (cursor.ordering, cursor.status, cursor.method) != (request.ordering, request.status, request.method):
            raise BadRequest(
                f"Invalid cursor: it was issued for {_listing(cursor)}. Send it with the same ordering and filters, "
                "or start again without a cursor."
            )
        if request.by_created and "created_sort" not in cursor.anchor:
            raise BadRequest(INVALID_CURSOR)  # signed by us, yet not a position in this ordering
        return cursor

    def _edges(
        self, payments: list[Payment], request: PageRequest, stopped_at: dict[str, Any] | None, forward: bool
    ) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """Where the previous and the next pages start: the page's first and last rows, or where
        DynamoDB stopped reading when it found no row."""
        if payments:
            first = self._payments.list_position(payments[0], request.by_created)
            return first, self._payments.list_position(payments[-1], request.by_created)
        return (None, stopped_at) if forward else (stopped_at, None)

    def _codec(self) -> CursorCodec:
        if self._cursors is None:
            raise RuntimeError("PaymentQueries was built without a cursor codec")
        return self._cursors


@dataclass(frozen=True, slots=True)
class _Links:
    codec: CursorCodec
    user: int
    request: PageRequest

    def make(self, position: dict[str, Any] | None, forward: bool) -> str | None:
        if position is None:
            return None
        request = self.request
        cursor = Cursor(self.user, request.ordering, request.status, request.method, forward, position)
        return self.codec.encode(cursor)


def _listing(cursor: Cursor) -> str:
    """The listing a cursor belongs to, as its query parameters name it."""
    status = f"status={cursor.status}" if cursor.status else "no status"
    method = f"method={cursor.method}" if cursor.method else "no method"
    return f"ordering={cursor.ordering}, {status}, {method}"
