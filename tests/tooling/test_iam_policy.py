"""The small IAM evaluator the conformance test judges with (tests/support/iam_policy.py), and the
recorder's mapping of API calls to the IAM requests AWS authorizes (tests/support/iam.py)."""

from __future__ import annotations

import pytest
from support.iam import iam_requests, secret_arn, table_arn
from support.iam_policy import grants, is_allowed, matches_arn

TABLE = "arn:aws:dynamodb:us-east-1:123456789012:table/OrdersTable"
SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:halum/jwt-??????"


def allow(action, resource, effect="Allow"):
    return {"Effect": effect, "Action": action, "Resource": resource}


def test_implicit_deny_allow_and_explicit_deny_wins():
    assert not is_allowed([], "dynamodb:GetItem", TABLE)
    assert is_allowed([allow(["dynamodb:GetItem"], TABLE)], "dynamodb:GetItem", TABLE)
    assert not is_allowed(
        [allow("dynamodb:*", "*"), allow("dynamodb:GetItem", TABLE, "Deny")], "dynamodb:GetItem", TABLE
    )


def test_actions_are_case_insensitive_resources_case_sensitive():
    assert is_allowed([allow("DynamoDB:getitem", TABLE)], "dynamodb:GetItem", TABLE)
    assert not is_allowed([allow("dynamodb:GetItem", TABLE.lower())], "dynamodb:GetItem", TABLE)


def test_question_mark_is_exactly_one_character_as_in_secret_arns():
    assert matches_arn(SECRET, "arn:aws:secretsmanager:us-east-1:123456789012:secret:halum/jwt-AbCdEf")
    assert not matches_arn(SECRET, "arn:aws:secretsmanager:us-east-1:123456789012:secret:halum/jwt-AbCdE")
    assert not matches_arn(SECRET, "arn:aws:secretsmanager:us-east-1:123456789012:secret:halum/jwtXAbCdEf")


def test_a_star_stays_in_its_segment_unless_it_ends_it():
    assert matches_arn(f"{TABLE}/index/*", f"{TABLE}/index/user-id")
    assert not matches_arn(TABLE, f"{TABLE}/index/user-id")  # a table grant is not an index grant
    assert matches_arn("arn:aws:dynamodb:*:*:table/OrdersTable", TABLE)
    assert not matches_arn(
        "arn:aws:dynamodb:us-*-1:123456789012:table/X", "arn:aws:dynamodb:us-east:x-1:123456789012:table/X"
    )


def test_not_action_and_not_resource():
    statement = {"Effect": "Allow", "NotAction": "dynamodb:Scan", "NotResource": f"{TABLE}/index/*"}
    assert is_allowed([statement], "dynamodb:Query", TABLE)
    assert not is_allowed([statement], "dynamodb:Scan", TABLE)
    assert not is_allowed([statement], "dynamodb:Query", f"{TABLE}/index/user-id")


def test_conditions_are_refused_rather_than_ignored():
    with pytest.raises(ValueError, match="conditions"):
        is_allowed(
            [{**allow("dynamodb:GetItem", TABLE), "Condition": {"Bool": {"aws:SecureTransport": "true"}}}],
            "dynamodb:GetItem",
            TABLE,
        )


def test_grants_are_every_action_on_every_resource_of_allow_statements():
    statements = [allow(["dynamodb:GetItem", "dynamodb:PutItem"], [TABLE, "b"]), allow("x:Y", "*", "Deny")]
    assert grants(statements) == [
        ("dynamodb:GetItem", TABLE),
        ("dynamodb:GetItem", "b"),
        ("dynamodb:PutItem", TABLE),
        ("dynamodb:PutItem", "b"),
    ]


def test_a_transaction_is_checked_item_by_item_with_each_items_action():
    params = {
        "TransactItems": [
            {"Put": {"TableName": "t1-OrdersTable"}},
            {"Update": {"TableName": "t1-CountersTable"}},
            {"Delete": {"TableName": "t1-CartsTable"}},
            {"ConditionCheck": {"TableName": "t1-PaymentsTable"}},
        ]
    }
    assert [
        (action, resource.rsplit("/", 1)[1])
        for action, resource, _ in iam_requests("dynamodb", "TransactWriteItems", params)
    ] == [
        ("dynamodb:PutItem", "OrdersTable"),
        ("dynamodb:UpdateItem", "CountersTable"),
        ("dynamodb:DeleteItem", "CartsTable"),
        ("dynamodb:ConditionCheckItem", "PaymentsTable"),
    ]


def test_batches_need_the_batch_action_on_each_table_and_a_query_the_index_arn():
    batch = iam_requests("dynamodb", "BatchGetItem", {"RequestItems": {"a-OrdersTable": {}, "a-CartsTable": {}}})
    assert batch == [
        ("dynamodb:BatchGetItem", table_arn("OrdersTable"), ""),
        ("dynamodb:BatchGetItem", table_arn("CartsTable"), ""),
    ]
    query = iam_requests("dynamodb", "Query", {"TableName": "x-PaymentsTable", "IndexName": "user-id"})
    assert query == [("dynamodb:Query", f"{table_arn('PaymentsTable')}/index/user-id", "")]


def test_a_secret_read_by_name_is_checked_against_its_arn_with_the_random_suffix():
    ((action, resource, _),) = iam_requests("secretsmanager", "GetSecretValue", {"SecretId": "halum/jwt"})
    assert action == "secretsmanager:GetSecretValue" and is_allowed([allow(action, SECRET)], action, resource)
    assert (
        secret_arn("arn:aws:secretsmanager:us-east-1:1:secret:x-AbCdEf")
        == "arn:aws:secretsmanager:us-east-1:1:secret:x-AbCdEf"
    )
