"""The data contract: the records the shop's other services write into the tables this service reads
(product variants, shipping addresses, carts, orders), as pydantic models.

These models are the one definition of the contract: the repositories validate every record they read
against them (repositories/contract.py), and `schemas/records/<record>.v1.json` is their JSON Schema,
generated (`make schemas`; a unit test fails when a file is stale) for the shop's developers. A record
is read as the JSON document DynamoDB holds (dynamo.as_document: a whole number an int, any other a
Decimal, strings as strings): whole numbers, strings and booleans are strict, taking no string for a
number, no number for a string, no bool for a number and no fraction for a whole number, so
`variant: 1.5`, `variant: "1"` and `quantity: "2"` are refused rather than guessed; a price is a number
or a decimal string, and a status one of its values. Attributes the
contract does not name are ignored (the shop may add some without a new version); a new meaning of an
existing one is a new version (`.v2.json`).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, Strict, WithJsonSchema

from .models import OrderOrigin, OrderStatus, PaymentMethod, PaymentStatus

VERSION = 1
CENTS = Decimal("0.01")

Id = Annotated[int, Strict(), Field(ge=1, lt=10**18)]
Quantity = Annotated[int, Strict(), Field(ge=1)]
Text = Annotated[str, Strict()]
Flag = Annotated[bool, Strict()]
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
Timestamp = Annotated[str, Strict(), Field(min_length=1, json_schema_extra={"format": "date-time"})]


class Record(BaseModel):
    # Strictness is the fields' own (Id, Quantity, Text, Flag...): a price may be a number or a decimal
    # string, a status is read by its value.
    model_config = ConfigDict(extra="ignore", frozen=True, defer_build=True)


class VariantRecord(Record):
    """ProductVariantsTable, key `id`: a product the shop sells (Django's ProductVariant)."""

    id: Id
    sku: Annotated[str, Strict(), Field(min_length=1)]
    name: Text | None = Field(default=None, description="The product's name; the sku when absent.")
    price: Price
    stock: Annotated[int, Strict(), Field(ge=0)]
    is_active: Flag


class AddressRecord(Record):
    """ShippingAddressesTable, key `id`: a customer's shipping address (Django's ShippingAddress)."""

    id: Id
    user: Id
    full_name: Text
    phone: Text
    address_line: Text
    city: Text
    postal_code: Text
    country: Annotated[str, Strict(), Field(pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2.")]


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
    sku: Text | None = None
    name: Text | None = None


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
    currency: Annotated[str, Strict(), Field(pattern=r"^[a-z]{3}$")] = "usd"
    items: list[OrderLineRecord] = Field(default_factory=list)
    created_at: Timestamp
    updated_at: Timestamp | None = None
    origin: OrderOrigin = OrderOrigin.PLATFORM
    stock_reserved: Flag = False
    payments: dict[Annotated[str, Strict(), Field(pattern=r"^[1-9][0-9]{0,17}$")], PaymentRefRecord] = Field(
        default_factory=dict, description="Payment id -> its method and status, kept by this service."
    )
    completed_payment: Id | None = None
    completed_transaction: Text | None = None
    shipping: dict[Text, Text | Annotated[int, Strict()]] | None = Field(
        default=None, description="The address as the order keeps it."
    )


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
