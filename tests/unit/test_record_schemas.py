"""The data contract (issue 20, "records in"): the records the shop writes into ProductVariantsTable,
ShippingAddressesTable, CartsTable and OrdersTable have JSON Schemas in schemas/records/, the service
reads every record through its contract, and a record that breaks it is refused, never guessed.

The shapes below are restated from the issue and the platform's models (Django's ProductVariant,
ShippingAddress, CartItem, Order: ids are whole numbers, a quantity is a whole number of at least 1,
a price a Decimal(10, 2), a country ISO-2), not taken from the code. Each refused shape is refused
twice: by the service's reader (the repositories' decode step) and by the checked-in JSON Schema, as
a shop developer's validator would apply it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from support import ROOT

from halum_payments.errors import UnreadableRecord
from halum_payments.models import Order, OrderItem, OrderOrigin, OrderStatus, PaymentMethod, PaymentRef, PaymentStatus
from halum_payments.repositories import catalog, orders
from halum_payments.repositories.dynamo import from_item, to_attr, to_item
from local import schemas

SCHEMAS = ROOT / "schemas" / "records"
SEED = json.loads((ROOT / "local" / "seed.json").read_text())

# seed collection -> (schema file, the repository's decoder for that table)
TABLES: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "product_variants": ("product_variant.v1.json", catalog.decode_variant),
    "shipping_addresses": ("shipping_address.v1.json", catalog.decode_address),
    "carts": ("cart.v1.json", catalog.decode_cart),
    "orders": ("order.v1.json", orders.decode),
}

VARIANT = {
    "id": 1,
    "sku": "RUI-1KG",
    "name": "Rui Fish 1kg",
    "price": Decimal("799.00"),
    "stock": 10,
    "is_active": True,
}
ADDRESS = {
    "id": 1, "user": 1, "full_name": "Nusrat Jahan", "phone": "+8801711000001",
    "address_line": "House 12, Road 5", "city": "Dhaka", "postal_code": "1205", "country": "BD",
}  # fmt: skip
ORDER = {
    "id": 1, "user": 1, "shipping_address": 1, "status": "pending", "total_price": Decimal("1598.00"),
    "items": [{"variant": 1, "quantity": 2, "price": Decimal("799.00")}], "created_at": "2023-01-15T14:30:00Z",
}  # fmt: skip


def cart(*items: Any) -> dict[str, Any]:
    return {"user": 1, "items": list(items)}


def line(variant: Any = 1, quantity: Any = 1) -> dict[str, Any]:
    return {"variant": variant, "quantity": quantity}


def but(record: dict[str, Any], **changes: Any) -> dict[str, Any]:
    changed = {**record, **changes}
    return {key: value for key, value in changed.items() if value is not DROP}


DROP = object()

REFUSED: list[tuple[str, str, dict[str, Any]]] = [
    ("carts", "a variant with a fraction (variant: 1.5)", cart(line(variant=Decimal("1.5")))),
    ("carts", 'a variant as a string (variant: "1")', cart(line(variant="1"))),
    ("carts", 'a quantity as a string (quantity: "2")', cart(line(quantity="2"))),
    ("carts", "a zero quantity", cart(line(quantity=0))),
    ("carts", "a negative quantity", cart(line(quantity=-1))),
    ("carts", "a fractional quantity", cart(line(quantity=Decimal("1.5")))),
    ("carts", "a variant that is a bool", cart(line(variant=True))),
    ("carts", "a quantity that is a bool", cart(line(quantity=True))),
    ("carts", "items not a list", {"user": 1, "items": {"variant": 1, "quantity": 1}}),
    ("carts", "items null", {"user": 1, "items": None}),
    ("carts", "an item without variant", cart({"quantity": 1})),
    ("carts", "an item without quantity", cart({"variant": 1})),
    ("carts", "an item that is not an object", cart(Decimal(1))),
    ("carts", "a readable line, then an unreadable one", cart(line(), line(variant=True))),
    ("carts", "a variant zero", cart(line(variant=0))),
    ("product_variants", "a price with three places", but(VARIANT, price=Decimal("799.005"))),
    ("product_variants", "a price with three places, as text", but(VARIANT, price="799.005")),
    ("product_variants", "a price that is not a number", but(VARIANT, price="cheap")),
    ("product_variants", "a price that is a bool", but(VARIANT, price=True)),
    ("product_variants", "a negative price", but(VARIANT, price=Decimal("-1.00"))),
    ("product_variants", "a price of more than 10 digits", but(VARIANT, price=Decimal("123456789.00"))),
    ("product_variants", "no price", but(VARIANT, price=DROP)),
    ("product_variants", "no sku, but a price", but(VARIANT, sku=DROP)),
    ("product_variants", 'stock as a string ("10")', but(VARIANT, stock="10")),
    ("product_variants", "a fractional stock", but(VARIANT, stock=Decimal("2.5"))),
    ("product_variants", 'is_active as a string ("true")', but(VARIANT, is_active="true")),
    ("product_variants", "is_active as a number", but(VARIANT, is_active=1)),
    ("shipping_addresses", "an address of another shape", {"id": 1, "user": 1, "street": "Road 5", "zip": "1205"}),
    ("shipping_addresses", "a country that is not ISO-2", but(ADDRESS, country="Bangladesh")),
    ("shipping_addresses", 'a user as a string ("1")', but(ADDRESS, user="1")),
    ("shipping_addresses", "a postal code as a number", but(ADDRESS, postal_code=1205)),
    ("shipping_addresses", "an address line that is a list", but(ADDRESS, address_line=["House 12", "Road 5"])),
    ("orders", "a status not in Django's list", but(ORDER, status="paid")),
    ("orders", "a total with three places", but(ORDER, total_price=Decimal("1598.001"))),
    ("orders", 'an item with quantity "2"', but(ORDER, items=[{"variant": 1, "quantity": "2", "price": "799.00"}])),
    ("orders", "an item without price", but(ORDER, items=[{"variant": 1, "quantity": 2}])),
    ("orders", "items not a list", but(ORDER, items={"variant": 1})),
    ("orders", "a user as a string", but(ORDER, user="1")),
    ("orders", "no created_at", but(ORDER, created_at=DROP)),
    ("orders", "a payment of an unknown method", but(ORDER, payments={"3": {"method": "cash", "status": "pending"}})),
]


# A JSON Schema can say "at most 2 decimal places" of a number only with `multipleOf: 0.01`, which
# validators apply in binary floating point (19.99 fails it): the schema says it in words, the service
# checks it exactly. As text, the pattern refuses it.
PLACES_OF_A_NUMBER = {"a price with three places", "a total with three places"}


def schema(file: str) -> Draft202012Validator:
    document = json.loads((SCHEMAS / file).read_text())
    Draft202012Validator.check_schema(document)
    return Draft202012Validator(document)


def as_json(item: dict[str, Any]) -> Any:
    """A DynamoDB item as a shop developer's JSON validator sees the document (numbers as numbers)."""
    return json.loads(json.dumps(from_item(item), default=lambda n: int(n) if n == n.to_integral_value() else float(n)))


def stored(record: dict[str, Any]) -> dict[str, Any]:
    """`record` as a DynamoDB item: Python ints and Decimals become numbers (N), str strings (S), bool BOOL."""
    return {key: to_attr(_numbers(value)) for key, value in record.items()}  # None as NULL, as written


def _numbers(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, dict):
        return {key: _numbers(v) for key, v in value.items()}
    if isinstance(value, list):
        return [_numbers(v) for v in value]
    return value


@pytest.mark.parametrize(("table", "case", "record"), REFUSED, ids=[f"{t}: {c}" for t, c, _ in REFUSED])
def test_a_record_that_breaks_its_contract_is_refused_by_the_service_and_by_its_schema(table, case, record):
    file, decode = TABLES[table]
    item = stored(record)
    with pytest.raises(UnreadableRecord):
        decode(item)
    if case not in PLACES_OF_A_NUMBER:
        assert list(schema(file).iter_errors(as_json(item))), f"{file} accepts {case}"


@pytest.mark.parametrize("table", sorted(TABLES))
def test_every_record_of_the_seed_is_read_and_satisfies_its_schema(table):
    file, decode = TABLES[table]
    assert SEED[table], f"the seed has no {table}"
    for record in SEED[table]:
        assert not list(schema(file).iter_errors(record)), record  # the seed file's own JSON, as written
        item = stored(json.loads(json.dumps(record), parse_float=Decimal))
        assert not list(schema(file).iter_errors(as_json(item))), record  # as DynamoDB holds it
        assert decode(item) is not None


def test_valid_shapes_the_contract_allows_are_read():
    """What the platform writes legitimately: a price as a number or as text, a variant without name,
    a cart without items (empty), extra attributes the contract does not name."""
    assert catalog.decode_variant(stored(but(VARIANT, price="425.5"))).price == Decimal("425.5")
    assert catalog.decode_variant(stored(but(VARIANT, name=DROP))).name == "RUI-1KG"
    assert catalog.decode_cart(stored({"user": 1})).items == ()
    assert catalog.decode_cart(stored(cart(line(3, 2), line(3, 1)))).items == ((3, 2), (3, 1))
    assert catalog.decode_address(stored(but(ADDRESS, created_by="admin"))).city == "Dhaka"
    assert catalog.decode_variant(stored({"id": 9, "stock": 2})) is None  # a stub left by stock given back


def test_the_error_names_the_table_the_key_and_whose_record_it_is():
    with pytest.raises(UnreadableRecord) as broken:
        catalog.decode_address(stored(but(ADDRESS, id=7, user=3, country="Bangladesh")))
    assert (broken.value.table, broken.value.key, broken.value.owner) == ("ShippingAddressesTable", {"id": "7"}, 3)
    with pytest.raises(UnreadableRecord) as broken:
        catalog.decode_cart(stored({"user": "4", "items": []}))
    assert (broken.value.table, broken.value.owner) == ("CartsTable", None)


def test_the_checked_in_schemas_are_the_models_schemas():
    """One representation: schemas/records/*.json is generated from the models the service reads with."""
    files = schemas.documents()
    assert sorted(path.name for path in files) == sorted(file for file, _ in TABLES.values())
    for path, text in files.items():
        assert Path(path).read_text() == text, f"{path.name} is stale: run `make schemas` and commit it"


ids = st.integers(min_value=1, max_value=10**18 - 1)
prices = st.decimals(min_value=Decimal("0"), max_value=Decimal("99999999.99"), places=2)
words = st.text(max_size=20)
stamps = st.datetimes(min_value=datetime(2000, 1, 1)).map(lambda moment: moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
refs = st.builds(PaymentRef, st.sampled_from(PaymentMethod), st.sampled_from(PaymentStatus))
orders_we_write = st.builds(
    Order,
    id=ids,
    user=ids,
    shipping_address=st.none() | ids,
    status=st.sampled_from(OrderStatus),
    total_price=prices,
    currency=st.sampled_from(["usd", "bdt", "jpy"]),
    items=st.lists(st.builds(OrderItem, ids, st.integers(1, 10**6), prices, words, words), max_size=4).map(tuple),
    created_at=stamps,
    updated_at=stamps,
    origin=st.sampled_from(OrderOrigin),
    stock_reserved=st.booleans(),
    payments=st.dictionaries(ids, refs, max_size=3),
    completed_payment=st.none() | ids,
    completed_transaction=st.none() | words,
    shipping=st.just({}) | st.builds(lambda a: {k: v for k, v in a.items() if k != "user"}, st.just(ADDRESS)),
)


@given(orders_we_write)
def test_an_order_this_service_writes_reads_back_the_same_through_its_contract(order: Order) -> None:
    assert orders.decode(to_item(orders.encode(order))) == order
