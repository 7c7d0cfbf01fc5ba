"""The template as AWS deploys it: checks on SAM's own translation (tests/support/sam.py) of
template.yaml, for what neither the local server nor moto would ever show."""

from __future__ import annotations

import json
from typing import Any

import pytest
from support.sam import translated

from local.template import Template

TEMPLATE = Template()


@pytest.fixture(scope="module")
def cfn() -> dict[str, Any]:
    return translated()


def resources(cfn: dict[str, Any], kind: str) -> dict[str, Any]:
    return {name: resource for name, resource in cfn["Resources"].items() if resource["Type"] == kind}


# ---------------------------------------------------------------------------- routes
def test_every_http_api_route_is_declared_once_without_a_trailing_slash(cfn):
    """HTTP API route keys cannot end in "/" (API Gateway, "Create routes for HTTP APIs"; SAM drops such a
    route and its invoke permission strips the slash); API Gateway sends /x/ to the route /x."""
    (api,) = resources(cfn, "AWS::ApiGatewayV2::Api").values()
    paths = api["Properties"]["Body"]["paths"]
    assert paths, "no route in the translated HTTP API"
    assert [path for path in paths if path.endswith("/")] == []
    declared = [(route.method, route.path) for spec in TEMPLATE.functions() for route in spec.routes]
    any_method = "x-amazon-apigateway-any-method"
    translated = [("ANY" if m == any_method else m.upper(), path) for path, ops in paths.items() for m in ops]
    assert sorted(declared) == sorted(translated)


def test_every_http_api_path_sends_every_other_method_to_its_function(cfn):
    """API Gateway answers a method with no route itself, `{"message": "Not Found"}` ("Create routes for HTTP
    APIs": "If no routes match a request, API Gateway returns {"message":"Not Found"}"), while an `ANY`
    route "matches all methods that you haven't defined for a resource". Each path's ANY route goes to the
    function of its served route, which answers 405 with `Allow` (tests/integration/test_methods.py)."""
    (api,) = resources(cfn, "AWS::ApiGatewayV2::Api").values()
    for path, operations in api["Properties"]["Body"]["paths"].items():
        methods = {method.lower() for method in operations}
        served = methods - {"x-amazon-apigateway-any-method"}
        assert served and "x-amazon-apigateway-any-method" in methods, (path, sorted(methods))
        targets = {json.dumps(operation["x-amazon-apigateway-integration"]["uri"]) for operation in operations.values()}
        assert len(targets) == 1, (path, targets)  # the same function


# ---------------------------------------------------------------------------- alarms reach someone
def test_the_alarm_topic_key_lets_cloudwatch_publish_and_rotates(cfn):
    """CloudWatch cannot use the AWS managed alias/aws/sns key; a customer managed key must allow
    cloudwatch.amazonaws.com kms:Decrypt and kms:GenerateDataKey* (Amazon SNS Developer Guide,
    "Enable compatibility between event sources from AWS services and encrypted topics")."""
    (topic,) = resources(cfn, "AWS::SNS::Topic").values()
    key_ref = topic["Properties"]["KmsMasterKeyId"]
    assert key_ref != "alias/aws/sns" and isinstance(key_ref, dict), key_ref
    key = cfn["Resources"][key_ref["Ref"]]
    assert key["Type"] == "AWS::KMS::Key"
    assert key["Properties"]["EnableKeyRotation"] is True
    statements = key["Properties"]["KeyPolicy"]["Statement"]
    cloudwatch = [s for s in statements if s.get("Principal") == {"Service": "cloudwatch.amazonaws.com"}]
    assert cloudwatch, "no key policy statement for cloudwatch.amazonaws.com"
    from support.iam_policy import is_allowed

    for action in ("kms:Decrypt", "kms:GenerateDataKey"):
        assert is_allowed(cloudwatch, action, "arn:aws:kms:us-east-1:123456789012:key/any"), action
    assert not is_allowed(cloudwatch, "kms:ScheduleKeyDeletion", "arn:aws:kms:us-east-1:123456789012:key/any")
    for alarm in resources(cfn, "AWS::CloudWatch::Alarm").values():
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": "AlarmTopic"}]


@pytest.mark.parametrize(
    ("namespace", "metric"),
    [
        ("AWS/ApiGateway", "5xx"),
        ("AWS/Lambda", "Url5xxCount"),
        ("AWS/DynamoDB", "ReadThrottleEvents"),
        ("AWS/DynamoDB", "WriteThrottleEvents"),
        ("AWS/DynamoDB", "SystemErrors"),
        ("AWS/Lambda", "Duration"),
    ],
)
def test_an_alarm_watches(cfn, namespace, metric):
    watched = set()
    for alarm in resources(cfn, "AWS::CloudWatch::Alarm").values():
        properties = alarm["Properties"]
        watched.add((properties.get("Namespace"), properties.get("MetricName")))
        for query in properties.get("Metrics") or []:
            if "MetricStat" in query:
                stat = query["MetricStat"]["Metric"]
                watched.add((stat["Namespace"], stat["MetricName"]))
    assert (namespace, metric) in watched


def test_a_disputed_payment_alarms_and_its_description_names_an_existing_runbook_section(cfn):
    """Issue 18: the metric PaymentDisputed (counted once per dispute opened) alarms at the first one,
    and the alarm says where the runbook tells what to do."""
    from support import ROOT

    (alarm,) = [
        a["Properties"]
        for a in resources(cfn, "AWS::CloudWatch::Alarm").values()
        if a["Properties"].get("MetricName") == "PaymentDisputed"
    ]
    assert (alarm["Namespace"], alarm["Statistic"], alarm["Threshold"]) == ("HalumHut/Payments", "Sum", 1)
    assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert "Runbook: docs/runbook.md#paymentdisputed" in alarm["AlarmDescription"]
    headings = [line for line in (ROOT / "docs" / "runbook.md").read_text().splitlines() if line.startswith("#")]
    assert "## PaymentDisputed" in headings  # GitHub's anchor for it: #paymentdisputed


def test_the_audit_trail_lists_what_needs_attention_in_a_sparse_index(cfn):
    table = cfn["Resources"]["PaymentAuditTable"]["Properties"]
    (index,) = table["GlobalSecondaryIndexes"]
    assert index["IndexName"] == "attention-at"
    assert [k["AttributeName"] for k in index["KeySchema"]] == ["attention", "at"]


def test_the_dynamodb_alarms_cover_every_table(cfn):
    tables = set(resources(cfn, "AWS::DynamoDB::Table"))
    for name in ("DynamoDbReadThrottlesAlarm", "DynamoDbWriteThrottlesAlarm"):
        metrics = cfn["Resources"][name]["Properties"]["Metrics"]
        covered = {
            d["Value"]["Ref"] for m in metrics if "MetricStat" in m for d in m["MetricStat"]["Metric"]["Dimensions"]
        }
        assert covered == tables, name


def test_the_sweep_duration_alarm_fires_before_its_timeout(cfn):
    alarm = cfn["Resources"]["ReconcileSweepDurationAlarm"]["Properties"]
    timeout_ms = cfn["Resources"]["ReconcilePaymentsFunction"]["Properties"]["Timeout"] * 1000
    assert alarm["Statistic"] == "Maximum" and 0.5 * timeout_ms <= alarm["Threshold"] < timeout_ms


# ---------------------------------------------------------------------------- smaller defects
def test_the_sweeps_schedule_is_named_by_cloudformation_so_two_stacks_can_share_an_account(cfn):
    (schedule,) = resources(cfn, "AWS::Scheduler::Schedule").values()
    assert "Name" not in schedule["Properties"], schedule["Properties"].get("Name")


def test_a_failed_sweep_is_not_retried_by_lambda_the_next_run_is_the_retry(cfn):
    configs = [
        c["Properties"]
        for c in resources(cfn, "AWS::Lambda::EventInvokeConfig").values()
        if c["Properties"]["FunctionName"] == {"Ref": "ReconcilePaymentsFunction"}
    ]
    assert [(c["MaximumRetryAttempts"], c["Qualifier"]) for c in configs] == [(0, "live")]
    (schedule,) = resources(cfn, "AWS::Scheduler::Schedule").values()
    assert schedule["Properties"]["Target"]["RetryPolicy"]["MaximumRetryAttempts"] == 0


def test_log_groups_with_fixed_names_do_not_survive_a_failed_first_deploy(cfn):
    """Retain would keep the group of a rolled-back create, and the retry fails on its name."""
    for name, group in resources(cfn, "AWS::Logs::LogGroup").items():
        assert group["DeletionPolicy"] == "RetainExceptOnCreate", name
        assert group["UpdateReplacePolicy"] == "Retain", name


def test_retained_tables_have_deletion_protection(cfn):
    retained = {n: t for n, t in resources(cfn, "AWS::DynamoDB::Table").items() if t["DeletionPolicy"] == "Retain"}
    assert len(retained) == 8
    assert [n for n, t in retained.items() if t["Properties"].get("DeletionProtectionEnabled") is not True] == []


def test_the_stripe_webhook_url_output_is_the_endpoint_without_a_double_slash(cfn):
    function_url = "https://abc123.lambda-url.us-east-1.on.aws/"  # FunctionUrl always ends in "/"
    value = _evaluate(
        cfn["Outputs"]["StripeWebhookUrl"]["Value"], {"StripeWebhookFunctionUrl.FunctionUrl": function_url}
    )
    assert value == "https://abc123.lambda-url.us-east-1.on.aws/orders/api/stripe-webhook/"
    assert TEMPLATE.function("StripeWebhookFunction").local_path == "/orders/api/stripe-webhook/"


def _evaluate(value: Any, attributes: dict[str, str]) -> Any:
    """Fn::Join / Fn::Select / Fn::Split / Fn::GetAtt, as CloudFormation evaluates them."""
    if not isinstance(value, dict):
        return value
    ((name, argument),) = value.items()
    if name == "Fn::GetAtt":
        return attributes[".".join(argument)]
    if name == "Fn::Join":
        return argument[0].join(_evaluate(v, attributes) for v in argument[1])
    if name == "Fn::Split":
        return _evaluate(argument[1], attributes).split(argument[0])
    if name == "Fn::Select":
        return _evaluate(argument[1], attributes)[int(argument[0])]
    raise ValueError(name)


SECRET_PARAMETERS = ("JwtSecretName", "StripeSecretKeyName", "StripeWebhookSecretName", "PaymentWebhookSecretName")


@pytest.mark.parametrize("parameter", SECRET_PARAMETERS)
@pytest.mark.parametrize(
    ("value", "accepted"),
    [
        ("halum-hut/prod/payments/jwt-secret", True),
        ("arn:aws:secretsmanager:us-east-1:123456789012:secret:jwt-AbCdEf", False),
        ("ssm:/halum-hut/jwt", False),
        ("", False),
        ("name with spaces", False),
    ],
)
def test_secret_parameters_accept_only_names_the_iam_grant_covers(cfn, parameter, value, accepted):
    """CloudFormation matches AllowedPattern against the whole value; the grant is `secret:<name>-??????`."""
    import re

    pattern = cfn["Parameters"][parameter]["AllowedPattern"]
    assert (re.fullmatch(pattern, value) is not None) is accepted


@pytest.mark.parametrize("parameter", SECRET_PARAMETERS)
def test_every_grant_on_a_secret_is_its_name_and_the_random_suffix(cfn, parameter):
    grants = [
        resource
        for role in resources(cfn, "AWS::IAM::Role").values()
        for policy in role["Properties"].get("Policies") or []
        for statement in policy["PolicyDocument"]["Statement"]
        if "secretsmanager:GetSecretValue" in statement["Action"]
        for resource in (statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]])
        if f"${{{parameter}}}" in resource["Fn::Sub"]
    ]
    assert grants
    assert {g["Fn::Sub"].rsplit(":", 1)[1] for g in grants} == {f"${{{parameter}}}-??????"}


def test_the_sweep_waits_for_a_checkout_as_long_as_the_checkout_function_may_run(cfn):
    """A payment without a session is given up only after CHECKOUT_TIMEOUT_SECONDS (plus a margin):
    it must be the Stripe checkout function's own time limit."""
    functions = cfn["Resources"]
    checkout = functions["CreateStripeOrderFunction"]["Properties"]["Timeout"]
    sweep = functions["ReconcilePaymentsFunction"]["Properties"]["Environment"]["Variables"]
    assert sweep["CHECKOUT_TIMEOUT_SECONDS"] == str(checkout)
