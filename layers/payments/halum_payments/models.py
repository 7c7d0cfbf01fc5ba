"""Domain records (plain dataclasses, cheap to build) and the API's pydantic shapes."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Literal, NamedTuple, cast

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictInt, WithJsonSchema, model_validator
from pydantic.config import JsonDict
from pydantic.json_schema import GetJsonSchemaHandler, JsonSchemaValue
from pydantic_core.core_schema import CoreSchema, union_schema
from typing_extensions import TypedDict  # pydantic reads typing.TypedDict only from Python 3.12

from .money import format_amount


class PaymentStatus(StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    REFUNDED = "refunded"


class PaymentMethod(StrEnum):
    COD = "COD"
    STRIPE = "stripe"
    ONLINE = "ONLINE"


class PaymentOrdering(StrEnum):
    """The list's `ordering` (a leading `-` is descending); member names are the generated clients'."""

    ID = "id"
    ID_DESC = "-id"
    CREATED_AT = "created_at"
    CREATED_AT_DESC = "-created_at"


class OrderStatus(StrEnum):
    PENDING = "pending"
    CONFIRMED = "confirmed"
    SHIPPED = "shipped"
    DELIVERED = "delivered"
    CANCELLED = "cancelled"
    FAILED = "failed"


class OrderOrigin(StrEnum):
    STRIPE_CHECKOUT = "stripe_checkout"
    COD_CHECKOUT = "cod_checkout"
    PLATFORM = "platform"  # written by another service; we never reserved its stock


@dataclass(slots=True)  # not frozen: a list page builds a hundred, and frozen fields cost 2.5x to set
class Payment:
    id: int
    order: int
    user: int
    amount: Decimal
    currency: str
    method: PaymentMethod
    status: PaymentStatus
    transaction_id: str | None
    created_at: str
    updated_at: str
    checkout_session_id: str | None = None
    checkout_url: str | None = None
    checkout_expires_at: int | None = None  # epoch seconds, fixed at creation so Stripe retries match
    # Names this checkout attempt to Stripe (idempotency key and session metadata), unique across
    # deployments sharing a Stripe account: an event naming it is provably about this payment.
    checkout_key: str | None = None


class PaymentRef(NamedTuple):
    """What an order knows of each of its payments, kept in the same transactions."""

    method: PaymentMethod
    status: PaymentStatus


@dataclass(frozen=True, slots=True)
class OrderItem:
    variant: int
    quantity: int
    price: Decimal
    sku: str = ""
    name: str = ""

    @property
    def subtotal(self) -> Decimal:
        return self.price * self.quantity


@dataclass(frozen=True, slots=True)
class Order:
    id: int
    user: int
    shipping_address: int | None
    status: OrderStatus
    total_price: Decimal
    currency: str
    items: tuple[OrderItem, ...]
    created_at: str
    updated_at: str
    origin: OrderOrigin = OrderOrigin.PLATFORM
    stock_reserved: bool = False
    payments: dict[int, PaymentRef] = field(default_factory=dict)
    completed_payment: int | None = None
    completed_transaction: str | None = None
    shipping: dict[str, Any] = field(default_factory=dict)


def payment_for(
    order: Order,
    payment_id: int,
    method: PaymentMethod,
    status: PaymentStatus,
    at: str,
    transaction_id: str | None = None,
) -> Payment:
    """A new payment of `order`: for exactly its total, in its currency, by its owner."""
    return Payment(
        id=payment_id,
        order=order.id,
        user=order.user,
        amount=order.total_price,
        currency=order.currency,
        method=method,
        status=status,
        transaction_id=transaction_id,
        created_at=at,
        updated_at=at,
    )


@dataclass(frozen=True, slots=True)
class Variant:
    id: int
    sku: str
    name: str
    price: Decimal
    stock: int
    is_active: bool
    # The stored `price` as the shop wrote it (a number or a decimal string, docs/data-model.md):
    # the order's check that the price did not move compares it verbatim, as DynamoDB compares types.
    raw_price: Any = None

    @property
    def label(self) -> str:
        return f"{self.name} ({self.sku})"


@dataclass(frozen=True, slots=True)
class Address:
    id: int
    user: int
    full_name: str
    phone: str
    address_line: str
    city: str
    postal_code: str
    country: str

    def snapshot(self) -> dict[str, Any]:
        """The address as the order keeps it (its owner is the order's)."""
        # Spelled out: dataclasses.asdict copies recursively, a cost bench/warm.py --profile shows on every checkout.
        return {
            "id": self.id,
            "full_name": self.full_name,
            "phone": self.phone,
            "address_line": self.address_line,
            "city": self.city,
            "postal_code": self.postal_code,
            "country": self.country,
        }


class CartItem(NamedTuple):
    variant: int
    quantity: int


@dataclass(frozen=True, slots=True)
class Cart:
    user: int
    items: tuple[CartItem, ...]
    raw_items: Any = None  # the stored list, compared verbatim when the cart is emptied


@dataclass(frozen=True, slots=True)
class RequestKey:
    """A caller's Idempotency-Key for a checkout: the request it named (a fingerprint of the body),
    when this request came (epoch seconds) and until when a claim made now names it."""

    user: int
    key: str
    request: str
    issued_at: int
    expires_at: int


# ---------------------------------------------------------------- API shapes


class ApiModel(BaseModel):
    # Each function uses a few of these shapes: build a model's validator and serialiser when it
    # is first used, not at import, so no function's cold start pays for the others' shapes.
    model_config = ConfigDict(defer_build=True)


_ID_DIGITS = re.compile(r"[1-9][0-9]{0,17}")


def _canonical_id(value: Any) -> int:
    """An id in a path as its canonical decimal digits only: pydantic's lax int would also take `+1`, ` 1`,
    `1_0` and `1.0` (which Django's `<int:pk>` does not match either) and `01`; each names no payment."""
    if isinstance(value, str) and _ID_DIGITS.fullmatch(value):
        return int(value)
    raise ValueError("Not an id.")


# A resource id in a path, documented as the integer it is (declare it with Powertools' `Path()`); anything
# else is refused before any read (the error mapping answers a path that names no resource with 404).
PathId = Annotated[
    int, BeforeValidator(_canonical_id), WithJsonSchema({"type": "integer", "minimum": 1, "exclusiveMaximum": 10**18})
]

AMOUNT_PATTERN = r"^\d+\.\d{2}$"  # DRF's DecimalField(max_digits=10, decimal_places=2) as a string
TIMESTAMP: JsonDict = {"format": "date-time"}
PAGE_URL = Annotated[str, Field(json_schema_extra={"format": "uri"})]


# Plain values, not a model: a page of them serialises straight to JSON (pydantic-core), and no
# model is built per row, per request or at cold start.
class PaymentOut(TypedDict):
    """The payment JSON of the spec, field for field."""

    id: int
    order: int
    user: int
    amount: Annotated[
        str,
        Field(
            pattern=AMOUNT_PATTERN,
            description="A decimal string with exactly two places (never a JSON number: no float rounding).",
            examples=["1598.00"],
        ),
    ]
    method: PaymentMethod
    status: PaymentStatus
    transaction_id: str | None
    created_at: Annotated[str, Field(examples=["2023-01-15T14:30:00Z"], json_schema_extra=TIMESTAMP)]
    updated_at: Annotated[str, Field(examples=["2023-01-15T14:30:00Z"], json_schema_extra=TIMESTAMP)]


def payment_out(payment: Payment) -> PaymentOut:
    """A payment as the API shows it (the one mapping from the domain to the API)."""
    # The enums as their plain str values (equal to the members): pydantic-core serialises a str
    # five times faster than an enum member; a list of 100 went from 0.48 to 0.29 ms (bench/ab.py).
    return {
        "id": payment.id,
        "order": payment.order,
        "user": payment.user,
        "amount": format_amount(payment.amount),
        "method": cast(PaymentMethod, str(payment.method)),
        "status": cast(PaymentStatus, str(payment.status)),
        "transaction_id": payment.transaction_id,
        "created_at": payment.created_at,
        "updated_at": payment.updated_at,
    }


PAGE_LINK = (
    "The absolute URL of the {} page, or null at that end. Follow it exactly as given (its `cursor` is opaque "
    "and bound to the caller, the ordering and the filters); never build one."
)


PAGE_CURSOR = (
    "The `cursor` of the `{0}` link, for a client that pages with the `cursor` query parameter (a generated "
    "one): send it with the same `ordering`, `status` and `method` to get the {0} page. Null when `{0}` is{1}."
)


class PaymentPage(TypedDict):
    """A page of the caller's payments; `next` and `previous` link the neighbouring pages (null at either end),
    and `next_cursor` and `previous_cursor` are their cursors."""

    count: Annotated[int, Field(description="How many payments match the filters, on all pages.")]
    next: Annotated[PAGE_URL | None, Field(description=PAGE_LINK.format("next"))]
    previous: Annotated[PAGE_URL | None, Field(description=PAGE_LINK.format("previous"))]
    next_cursor: Annotated[str | None, Field(description=PAGE_CURSOR.format("next", ""))]
    previous_cursor: Annotated[
        str | None,
        Field(description=PAGE_CURSOR.format("previous", '; `""` when the previous page is the first (no cursor)')),
    ]
    results: list[PaymentOut]


class ErrorOut(ApiModel):
    """An error: `detail` says what went wrong, in one line."""

    detail: str


class InvalidRequestOut(ApiModel):
    """A 400 as DRF answers a serializer's errors: `detail` is one readable line; every field at fault (a body
    field or a query parameter) maps to its messages, which a form can show next to that field;
    `non_field_errors` holds errors about the request as a whole. A refusal that names no field has
    `detail` alone."""

    model_config = ConfigDict(defer_build=True, extra="allow")
    __pydantic_extra__: dict[str, list[str]] = Field(init=False)

    detail: str = Field(examples=["shipping_address: This field is required."])
    non_field_errors: list[str] = Field(default_factory=list, examples=[["Request body is not valid JSON."]])


class TokenMessage(ApiModel):
    """One token class's verdict (simplejwt's `messages` item); the platform configures AccessToken only."""

    token_class: str = Field(examples=["AccessToken"])
    token_type: str = Field(examples=["access"])
    message: str = Field(
        description="What is wrong with the token: `Token is expired`, `Token is invalid` (signature, "
        "algorithm, audience, issuer, not yet valid, malformed), `Token has wrong type`, `Token has no type`, "
        "`Token has no 'exp' claim`.",
        examples=["Token is expired"],
    )


class AuthenticationFailedOut(ApiModel):
    """A 401 exactly as djangorestframework-simplejwt answers it. No credentials: `{"detail": "Authentication
    credentials were not provided."}`. A token that is not a valid access token: `code` is `token_not_valid`
    (refresh the access token, then retry) and `messages` says why; a token without a usable `user_id`:
    `code` `token_not_valid` without `messages`; a malformed header: `code` `bad_authorization_header`."""

    detail: str = Field(examples=["Given token not valid for any token type"])
    code: str = Field(default="token_not_valid", examples=["token_not_valid"])
    messages: list[TokenMessage] = Field(default_factory=list)


RecordId = Annotated[StrictInt, Field(ge=1, lt=10**18)]


class CartCheckout(ApiModel):
    """Check out the caller's cart, shipping to one of the caller's addresses."""

    model_config = ConfigDict(extra="forbid")

    shipping_address: RecordId


class OrderPayment(ApiModel):
    """Pay one of the caller's pending orders (reusing its open Stripe payment)."""

    model_config = ConfigDict(extra="forbid")

    order: RecordId


class CheckoutRequest(ApiModel):
    """Either check out the cart to an address, or pay an existing pending order: exactly one of the two."""

    model_config = ConfigDict(extra="forbid")

    # One model validates, so that `{}`, both, or a bad value answer DRF's one clear message per field
    # (a union of the two shapes would report every branch's errors); the document shows the two shapes.
    shipping_address: RecordId | None = None
    order: RecordId | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> CheckoutRequest:
        if (self.shipping_address is None) == (self.order is None):
            raise ValueError("Send exactly one of 'shipping_address' (check out the cart) or 'order' (pay an order).")
        return self

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        """`oneOf` the two strict shapes (what a generated client builds: one or the other, typed)."""
        shapes = handler(union_schema([CartCheckout.__pydantic_core_schema__, OrderPayment.__pydantic_core_schema__]))
        return {"oneOf": shapes["anyOf"], "title": cls.__name__, "description": cls.__doc__}


class CodCheckoutRequest(ApiModel):
    model_config = ConfigDict(extra="forbid")

    shipping_address: RecordId


class CheckoutSessionOut(ApiModel):
    id: str = Field(examples=["cs_test_123456"])
    url: str = Field(examples=["https://checkout.stripe.com/c/pay/cs_test_123456"])


class CodOrderOut(ApiModel):
    order_id: int
    status: OrderStatus
    payment_method: Literal["COD"] = "COD"
    payment: PaymentOut


class WebhookAck(ApiModel):
    status: Literal["success"] = "success"
    message: str


class WebhookError(ApiModel):
    status: Literal["error"] = "error"
    message: str


class WebhookReply(ApiModel):
    """A webhook's answer as remembered with its event, so that a redelivery gets it again."""

    status_code: int
    status: Literal["success", "error"]
    message: str
