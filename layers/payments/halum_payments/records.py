"""The data contract: the records the shop's other services write into the tables this service reads
(product variants, shipping addresses, carts, orders), as pydantic models in strict mode.

These models are the one definition of the contract: the repositories validate every record they read
against them (repositories/contract.py), and `schemas/records/<record>.v1.json` is their JSON Schema,
generated (`make schemas`; a unit test fails when a file is stale) for the shop's developers. A record
is read as the JSON document DynamoDB holds (numbers as numbers, strings as strings): strict mode takes
no string for a number, no number for a string, no bool for a number and no fraction for an integer,
so `variant: 1.5`, `variant: "1"` and `quantity: "2"` are refused rather than guessed. Attributes the
contract does not name are ignored (the shop may add some without a new version); a new meaning of an
existing one is a new version (`.v2.json`).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema

from .models import OrderOrigin, OrderStatus, PaymentMethod, PaymentStatus

VERSION = 1
CENTS = Decimal("0.01")

Id = Annotated[int, Field(ge=1, lt=10**18)]
Quantity = Annotated[int, Field(ge=1)]
# Django's DecimalField(max_digits=10, decimal_places=2): a JSON number or a decimal string (both read
# exactly, never through a float), at most 2 places (trailing zeros aside) and 10 digits.
PRICE_TEXT = r"^[0-9]{1,8}(\.[0-9]{1,2})?$"
Price = Annotated[
    Decimal,
    Field(ge=0, max_digits=10, decimal_places=2),
    # As Django holds it (two places): a JSON number reads without its trailing zeros (799.10 -> 799.1).
    AfterValidator(lambda value: value.quantize(CENTS)),
    WithJsonSchema(
        {
            "anyOf": [
                # No `multipleOf: 0.01`: validators apply it in binary floating point (19.99 fails).
                {"type": "number", "minimum": 0, "exclusiveMaximum": 100_000_000},
                {"type": "string", "pattern": PRICE_TEXT},
            ],
            "description": "A decimal amount, at least 0, with at most 2 decimal places and 10 digits: a number or "
            'a string ("799.00"); the service refuses more places in either form.',
        }
    ),
]
Timestamp = Annotated[str, Field(min_length=1, json_schema_extra={"format": "date-time"})]


class Record(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True, defer_build=True)


class VariantRecord(Record):
    """ProductVariantsTable, key `id`: a product the shop sells (Django's ProductVariant)."""

    id: Id
    sku: Annotated[str, Field(min_length=1)]
    name: str | None = Field(default=None, description="The product's name; the sku when absent.")
    price: Price
    stock: Annotated[int, Field(ge=0)]
    is_active: bool


class AddressRecord(Record):
    """ShippingAddressesTable, key `id`: a customer's shipping address (Django's ShippingAddress)."""

    id: Id
    user: Id
    full_name: str
    phone: str
    address_line: str
    city: str
    postal_code: str
    country: Annotated[str, Field(pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2.")]


class CartLineRecord(Record):
    variant: Id = Field(description="A ProductVariantsTable `id`.")
    quantity: Quantity


class CartRecord(Record):
    """CartsTable, key `user`: the customer's one cart; a variant may be listed on several lines."""

    user: Id
    items: list[CartLineRecord] = Field(default_factory=list)


class OrderLineRecord(Record):
    variant: Id
    quantity: Quantity
    price: Price = Field(description="The unit price the order was placed at.")
    sku: str | None = None
    name: str | None = None


class PaymentRefRecord(Record):
    method: PaymentMethod
    status: PaymentStatus


class OrderRecord(Record):
    """OrdersTable, key `id`: an order (Django's Order), written by the shop or by this service's
    checkouts; the attributes after `items` are this service's (absent from an order the shop wrote)."""

    id: Id
    user: Id
    shipping_address: Id | None = None
    status: OrderStatus
    total_price: Price
    currency: Annotated[str, Field(pattern=r"^[a-z]{3}$")] = "usd"
    items: list[OrderLineRecord] = Field(default_factory=list)
    created_at: Timestamp
    updated_at: Timestamp | None = None
    origin: OrderOrigin = OrderOrigin.PLATFORM
    stock_reserved: bool = False
    payments: dict[Annotated[str, Field(pattern=r"^[1-9][0-9]{0,17}$")], PaymentRefRecord] = Field(
        default_factory=dict, description="Payment id -> its method and status, kept by this service."
    )
    completed_payment: Id | None = None
    completed_transaction: str | None = None
    shipping: dict[str, str | int] | None = Field(default=None, description="The address as the order keeps it.")


# Logical table (template.yaml) -> the contract of its records: the schema files are named after these.
CONTRACTS: dict[str, tuple[str, type[Record]]] = {
    "ProductVariantsTable": ("product_variant", VariantRecord),
    "ShippingAddressesTable": ("shipping_address", AddressRecord),
    "CartsTable": ("cart", CartRecord),
    "OrdersTable": ("order", OrderRecord),
}


def json_schema(model: type[Record]) -> dict[str, Any]:
    """The JSON Schema of a record, as `schemas/records/<record>.v1.json` holds it."""
    name = next(record for record, candidate in CONTRACTS.values() if candidate is model)
    schema = model.model_json_schema(mode="validation")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"https://halumhut.example/schemas/records/{name}.v{VERSION}.json",
        **schema,
    }
