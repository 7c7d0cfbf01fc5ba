from __future__ import annotations

from support import auth, call

from local import seed
from local.seed import DEFAULT_SEED


def test_smoke(load_function, tables, dynamodb):
    seed.apply(seed.load(DEFAULT_SEED), dynamodb, tables)
    list_fn = load_function("list_payments")
    reply = call(list_fn, "GET", "/orders/api/payments/", headers=auth(1))
    print(reply)
    assert reply.status == 200
    get_fn = load_function("get_payment")
    reply = call(get_fn, "GET", "/orders/api/payments/1/", headers=auth(1))
    print(reply)
    assert reply.status == 200
