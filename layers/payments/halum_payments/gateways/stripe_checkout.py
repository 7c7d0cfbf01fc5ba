"""Stripe Checkout through stripe-python's StripeClient. Imported only by functions that use Stripe."""

from __future__ import annotations

import http.client
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import stripe

from ..observability import count, logger
from ..secrets import Secret, checked_with

ProviderFailure = Literal["timeout", "unavailable", "rejected", "in_use"]


class ProviderError(Exception):
    """Stripe failed after stripe-python's own bounded retries."""

    def __init__(self, kind: ProviderFailure, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True, slots=True)
class LineItem:
    name: str
    unit_amount: int  # minor units
    quantity: int


@dataclass(frozen=True, slots=True)
class SessionRequest:
    currency: str
    line_items: tuple[LineItem, ...]
    metadata: dict[str, str]
    client_reference_id: str
    success_url: str
    cancel_url: str
    expires_at: int
    idempotency_key: str


# PaymentIntent statuses after a payment attempt ended without money: a declined or failed
# delayed method returns to requires_payment_method; canceled is final.
FAILED_INTENT = frozenset({"requires_payment_method", "canceled"})


@dataclass(frozen=True, slots=True)
class CheckoutSession:
    id: str
    url: str | None
    status: str | None = None  # open | complete | expired
    payment_status: str | None = None  # paid | unpaid | no_payment_required
    amount_total: int | None = None
    currency: str | None = None
    payment_intent: str | None = None
    payment_intent_status: str | None = None  # when the PaymentIntent was expanded
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def paid(self) -> bool:
        return self.status == "complete" and self.payment_status in ("paid", "no_payment_required")

    @property
    def payment_failed(self) -> bool:
        """Complete but unpaid for ever: a delayed method that failed (its PaymentIntent says so)."""
        return self.status == "complete" and self.payment_intent_status in FAILED_INTENT

    @property
    def closed(self) -> bool:
        """Nobody can pay it any more, and it was not paid: expired, or its delayed method failed."""
        return self.status == "expired" or self.payment_failed

    @classmethod
    def of(cls, session: Any) -> CheckoutSession:
        data = session.to_dict() if hasattr(session, "to_dict") else dict(session)
        intent: Any = data.get("payment_intent")
        intent_status = None
        if isinstance(intent, dict):
            intent, intent_status = intent.get("id"), intent.get("status")
        return cls(
            id=data["id"],
            url=data.get("url"),
            status=data.get("status"),
            payment_status=data.get("payment_status"),
            amount_total=data.get("amount_total"),
            currency=data.get("currency"),
            payment_intent=intent,
            payment_intent_status=intent_status,
            metadata=dict(data.get("metadata") or {}),
        )


@dataclass(frozen=True, slots=True)
class EventPage:
    """One page of Stripe's event log, newest first, as plain data (what the webhook receives)."""

    events: list[dict[str, Any]]
    has_more: bool


class BoundedUrllibClient(stripe.HTTPClient):
    """A stripe-python HTTP client (its documented extension point, `HTTPClient`) on the standard
    library's urllib, with a timeout: stripe's own `UrllibClient` has none and would wait for ever,
    and the layer ships no `requests`/`httpx`. Every network failure is a retryable
    `APIConnectionError`: stripe-python retries it with the same idempotency key."""

    name = "urllib.request"

    def __init__(self, timeout: float) -> None:
        super().__init__()
        self._timeout = timeout

    def request(
        self, method: str, url: str, headers: Mapping[str, str] | None, post_data: Any = None, **_: Any
    ) -> tuple[str, int, Mapping[str, str]]:
        data = post_data.encode("utf-8") if isinstance(post_data, str) else post_data
        # The URL is stripe-python's: Stripe's https API, or STRIPE_API_BASE.
        request = urllib.request.Request(url, data=data, headers=dict(headers or {}), method=method.upper())  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:  # noqa: S310
                return response.read().decode("utf-8"), response.status, _lower(response.headers)
        except urllib.error.HTTPError as error:  # Stripe answered: its status and error body
            return error.read().decode("utf-8"), error.code, _lower(error.headers)
        except (OSError, http.client.HTTPException, ValueError) as exc:
            raise stripe.APIConnectionError(
                f"Network error talking to Stripe ({type(exc).__name__})", should_retry=True
            ) from exc

    def request_stream(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("no streaming endpoint is used")

    def close(self) -> None:
        pass


def _lower(headers: Any) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}


class StripeCheckoutGateway:
    """`secret_key` may be a `Secret` (secrets.py): each request then sends the key as it is now,
    and a request Stripe refuses as unauthenticated is sent once more if the key read again has
    changed (a rolled key that has already expired at Stripe)."""

    def __init__(
        self,
        secret_key: str | Secret,
        *,
        api_base: str | None,
        timeout: float,
        max_network_retries: int,
        client: stripe.StripeClient | None = None,
    ) -> None:
        self._key = secret_key if isinstance(secret_key, Secret) else Secret(secret_key)
        self._client = client or stripe.StripeClient(
            self._key.value(),
            base_addresses={"api": api_base} if api_base else None,
            max_network_retries=max_network_retries,
            http_client=BoundedUrllibClient(timeout),
        )

    def create_session(self, request: SessionRequest) -> CheckoutSession:
        params: dict[str, Any] = {
            "mode": "payment",
            "line_items": [
                {
                    "price_data": {
                        "currency": request.currency,
                        "product_data": {"name": item.name},
                        "unit_amount": item.unit_amount,
                    },
                    "quantity": item.quantity,
                }
                for item in request.line_items
            ],
            "metadata": request.metadata,
            "payment_intent_data": {"metadata": request.metadata},
            "client_reference_id": request.client_reference_id,
            "success_url": request.success_url,
            "cancel_url": request.cancel_url,
            "expires_at": request.expires_at,
        }
        session = self._call(
            lambda key: self._client.v1.checkout.sessions.create(
                params=params,  # type: ignore[arg-type]
                options={"api_key": key, "idempotency_key": request.idempotency_key},
            )
        )
        return CheckoutSession.of(session)

    def retrieve_session(self, session_id: str) -> CheckoutSession:
        """The session with its PaymentIntent expanded: how a completed but unpaid session ended."""
        return CheckoutSession.of(
            self._call(
                lambda key: self._client.v1.checkout.sessions.retrieve(
                    session_id, params={"expand": ["payment_intent"]}, options={"api_key": key}
                )
            )
        )

    def intent_metadata(self, intent_id: str) -> dict[str, str]:
        """A PaymentIntent's metadata (our checkout writes its ids there: payment_intent_data); none
        for one Stripe does not know (another account's, or made up)."""
        try:
            intent = self._call(
                lambda key: self._client.v1.payment_intents.retrieve(intent_id, options={"api_key": key})
            )
        except ProviderError as exc:
            if exc.kind == "rejected":
                return {}
            raise
        data = intent.to_dict() if hasattr(intent, "to_dict") else dict(intent)
        return {str(k): str(v) for k, v in (data.get("metadata") or {}).items()}

    def list_events(
        self,
        *,
        types: Sequence[str],
        created_gte: int,
        created_lt: int,
        starting_after: str | None = None,
        limit: int = 100,
    ) -> EventPage:
        """A page of List Events (`GET /v1/events`): the given types created in [gte, lt), newest
        first, after `starting_after` (an event id of the previous page)."""
        params: dict[str, Any] = {
            "types": list(types),
            "created": {"gte": created_gte, "lt": created_lt},
            "limit": limit,
        }
        if starting_after is not None:
            params["starting_after"] = starting_after
        page = self._call(
            lambda key: self._client.v1.events.list(params=params, options={"api_key": key})  # type: ignore[arg-type]
        )
        return EventPage([event.to_dict() for event in page.data], bool(page.has_more))

    def expire_session(self, session_id: str) -> CheckoutSession | None:
        """Expire an open session so that nobody can pay it; the session as it then is: `closed`
        (expired, or its delayed method failed), `paid` (money for a payment given up: it must be
        refunded), or complete with a delayed method still processing. None if Stripe could not
        say (it may still be open): the caller keeps watching it."""
        try:
            return CheckoutSession.of(
                self._call(lambda key: self._client.v1.checkout.sessions.expire(session_id, options={"api_key": key}))
            )
        except ProviderError as exc:
            if exc.kind == "rejected":  # no longer open: expired, or completed
                try:
                    return self.retrieve_session(session_id)
                except ProviderError:
                    return None  # completed or expired, Stripe cannot say which now (simulation seed 114)
            # Still open: it could yet be paid. Reconciliation and PaymentNeedsRefund catch that.
            count("StripeErrors")
            logger.warning("could not expire checkout session", extra={"session": session_id, "reason": exc.kind})
            return None

    def _call(self, operation: Callable[[str], Any]) -> Any:
        """`operation(api_key)`, Stripe's failures as ProviderError."""
        try:
            return checked_with(self._key, operation, stripe.AuthenticationError)
        except stripe.APIConnectionError as exc:
            raise ProviderError("timeout", "Stripe could not be reached") from exc
        except (OSError, http.client.HTTPException) as exc:  # belt and braces: never let a socket error escape
            raise ProviderError("timeout", "Stripe could not be reached") from exc
        except stripe.IdempotencyError as exc:
            if exc.http_status == 409:  # another request with this idempotency key is in flight at Stripe
                raise ProviderError("in_use", "Stripe is still working on this request") from exc
            logger.error("Stripe refused the request", extra={"http_status": exc.http_status, "code": exc.code})
            raise ProviderError("rejected", "Stripe refused the request") from exc
        except (stripe.RateLimitError, stripe.APIError) as exc:
            raise ProviderError("unavailable", f"Stripe is unavailable ({exc.http_status})") from exc
        except stripe.StripeError as exc:
            # Authentication, permission and request errors: retrying the same call cannot help.
            logger.error("Stripe refused the request", extra={"http_status": exc.http_status, "code": exc.code})
            raise ProviderError("rejected", "Stripe refused the request") from exc
