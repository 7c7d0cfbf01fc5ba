"""Domain errors. Logic raises these; each transport maps them to a response in one place."""

from __future__ import annotations


class ConfigError(RuntimeError):
    """The function's configuration is invalid: raised at cold start, never per request."""


class DomainError(Exception):
    """Base of every error a caller may see. `message` is safe to show to the caller."""

    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(DomainError):
    status = 400


class NotAuthenticated(DomainError):
    """No usable credentials: 401 with a WWW-Authenticate challenge."""

    status = 401

    def __init__(self, message: str, *, invalid_token: bool = False) -> None:
        super().__init__(message)
        self.invalid_token = invalid_token


class BadSignature(DomainError):
    """A webhook whose signature does not verify. Status is the sender's contract: Stripe's
    convention is 400, the generic gateway's is 401."""

    status = 400

    def __init__(self, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class NotFound(DomainError):
    status = 404

    def __init__(self, message: str = "Not found.") -> None:
        super().__init__(message)


class Conflict(DomainError):
    status = 409


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
    status = 422


class GatewayNotConfigured(DomainError):
    status = 503


class UpstreamUnavailable(DomainError):
    """The payment provider failed after its own bounded retries; nothing was kept."""

    status = 502


class TransientFault(Exception):
    """Our own fault that a retry may fix (throttling, a lost race after all retries)."""
