"""Domain errors. Logic raises these; each transport maps them to a response in one place
(`http.STATUSES`): no error carries its own HTTP status."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


class ConfigError(RuntimeError):
    """The function's configuration is invalid: raised at cold start, never per request."""


class DomainError(Exception):
    """Base of every error a caller may see. `message` is safe to show to the caller; `extra_body`
    joins it in the answer (DRF's field errors, simplejwt's code and messages); `reason`, when
    set, says more for the log only."""

    def __init__(self, message: str, *, extra_body: Mapping[str, Any] | None = None, reason: str | None = None):
        super().__init__(message)
        self.message = message
        self.extra_body = dict(extra_body or {})
        self.reason = reason or message


class BadRequest(DomainError):
    pass


NON_FIELD_ERRORS = "non_field_errors"  # DRF's key for errors about the whole body


class InvalidInput(BadRequest):
    """A 400 naming the fields at fault, as DRF's ValidationError does: `{"detail": "<field>: <message>; ...",
    "<field>": ["<message>", ...], "non_field_errors": [...]}`."""

    def __init__(self, fields: Mapping[str, Sequence[str]]) -> None:
        detail = "; ".join(
            message if name == NON_FIELD_ERRORS else f"{name}: {message}"
            for name, messages in fields.items()
            for message in messages
        )
        super().__init__(
            detail or "Invalid request.", extra_body={name: list(messages) for name, messages in fields.items()}
        )

    @classmethod
    def field(cls, name: str, message: str) -> InvalidInput:
        return cls({name: [message]})


class NotAuthenticated(DomainError):
    """No usable credentials: 401 with a WWW-Authenticate challenge."""

    def __init__(self, message: str, *, invalid_token: bool = False, **more: Any) -> None:
        super().__init__(message, **more)
        self.invalid_token = invalid_token


# djangorestframework-simplejwt's words (rest_framework_simplejwt 5.5: exceptions.py, tokens.py).
INVALID = "Given token not valid for any token type"
TOKEN_NOT_VALID = "token_not_valid"  # noqa: S105 - an error code, not a secret
TOKEN_INVALID = "Token is invalid"  # noqa: S105 - a message, not a secret; simplejwt's for most failures


class InvalidToken(NotAuthenticated):
    """simplejwt's InvalidToken / AuthenticationFailed: 401 `{"detail", "code", "messages"?}`.

    `message` is the AccessToken's line in `messages` (None: simplejwt sends no `messages`, as for a
    token without a usable user claim); `reason` says precisely what failed, for the log only."""

    def __init__(
        self, reason: str, message: str | None = TOKEN_INVALID, *, detail: str = INVALID, code: str = TOKEN_NOT_VALID
    ) -> None:
        extra: dict[str, Any] = {"code": code}
        if message is not None:
            extra["messages"] = [{"token_class": "AccessToken", "token_type": "access", "message": message}]
        super().__init__(detail, invalid_token=True, extra_body=extra, reason=reason)


class BadSignature(DomainError):
    """A webhook whose signature does not verify (Stripe's convention: 400)."""


class BadGatewaySignature(BadSignature):
    """The generic gateway's signature does not verify (its contract: 401)."""


class NotFound(DomainError):
    def __init__(self, message: str = "Not found.") -> None:
        super().__init__(message)


class MethodNotAllowed(DomainError):
    """The path is served, not with this method: 405 with `Allow`, in DRF's words."""

    def __init__(self, method: str, allowed: Sequence[str]) -> None:
        super().__init__(f'Method "{method}" not allowed.')
        self.allowed = tuple(allowed)


class Conflict(DomainError):
    pass


class OutOfStock(Conflict):
    def __init__(self, product: str, available: int) -> None:
        super().__init__(f"Insufficient stock for {product}: {available} available.")
        self.product = product
        self.available = available


class RetryLater(Conflict):
    """It cannot apply yet, but may once an earlier event arrives (a refund before its payment
    completed): 409, so that the sender delivers it again, and never remembered as final."""


class RequestInProgress(Conflict):
    """A concurrent request doing the same thing is still running; retry shortly (409, Retry-After)."""

    def __init__(self, message: str = "") -> None:
        super().__init__(message or "A request with this idempotency key is still in progress; retry shortly.")


class Unprocessable(DomainError):
    pass


class GatewayNotConfigured(DomainError):
    pass


UNREADABLE_RECORD = "A record this request needs cannot be read right now; the shop has been alerted. Try again later."


class UnreadableRecord(DomainError):
    """A record the shop wrote breaks its contract (records.py): never read by guessing. The shop's
    fault, which a retry helps once the record is fixed: 503 (a webhook's sender retries, nothing is
    remembered), unless logic knows what the customer can do about it (update the cart: 409).
    `owner` is the record's `user` when that much of it is readable, so that another user's broken
    record can be answered as if it did not exist."""

    def __init__(self, table: str, key: Mapping[str, Any], owner: int | None = None) -> None:
        super().__init__(UNREADABLE_RECORD, reason=f"{table} {dict(key)} breaks its contract")
        self.table = table
        self.key = dict(key)
        self.owner = owner


class UpstreamUnavailable(DomainError):
    """The payment provider failed after its own bounded retries."""


class TransientFault(Exception):
    """Our own fault that a retry may fix (throttling, a lost race after all retries)."""
