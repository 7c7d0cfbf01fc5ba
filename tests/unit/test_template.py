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


def test_each_table_the_shop_writes_alarms_at_its_first_record_that_breaks_the_contract(cfn):
    """Issue 20: the metric RecordContractBroken, emitted with the dimensions service (the functions'
    POWERTOOLS_SERVICE_NAME) and table (the template's logical id), alarms at the first broken record of
    each table the shop writes, and the alarm's description names that table (CloudWatch matches an
    alarm's dimensions exactly: an alarm without `table` would never fire)."""
    (service,) = {
        f["Properties"]["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"]
        for f in resources(cfn, "AWS::Lambda::Function").values()
    }
    alarms = {
        tuple(sorted((d["Name"], d["Value"]) for d in a["Properties"]["Dimensions"])): a["Properties"]
        for a in resources(cfn, "AWS::CloudWatch::Alarm").values()
        if a["Properties"].get("MetricName") == "RecordContractBroken"
    }
    shop_tables = ("ProductVariantsTable", "ShippingAddressesTable", "CartsTable", "OrdersTable")
    assert set(alarms) == {(("service", service), ("table", table)) for table in shop_tables}
    for (_, (_, table)), alarm in alarms.items():
        assert cfn["Resources"][table]["Type"] == "AWS::DynamoDB::Table"
        assert (alarm["Namespace"], alarm["Statistic"], alarm["Threshold"]) == ("HalumHut/Payments", "Sum", 1)
        assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
        assert f"A {table} record" in alarm["AlarmDescription"]


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


def test_log_groups_outlive_the_stack_without_blocking_its_re_creation(cfn):
    """Log groups are kept when the stack is deleted or a group replaced (audit), except after a
    failed create (RetainExceptOnCreate). A kept group still holds its name: with a fixed
    LogGroupName, creating the stack again (same stack name) fails with "already exists". Without
    one, CloudFormation generates a unique name per stack ("If you don't specify a name,
    CloudFormation generates a unique ID for the log group", AWS::Logs::LogGroup)."""
    groups = resources(cfn, "AWS::Logs::LogGroup")
    assert groups
    for name, group in groups.items():
        assert group["DeletionPolicy"] == "RetainExceptOnCreate", name
        assert group["UpdateReplacePolicy"] == "Retain", name
        assert "LogGroupName" not in group["Properties"], f"{name} has a fixed name a kept group would collide with"


def test_every_function_logs_to_the_stacks_own_group(cfn):
    functions = resources(cfn, "AWS::Lambda::Function")
    assert {f["Properties"]["LoggingConfig"]["LogGroup"]["Ref"] for f in functions.values()} == {"FunctionLogGroup"}


# ---------------------------------------------------------------------------- the sweep's schedule
def _scheduler_accepts_rate(expression: str) -> bool:
    """EventBridge's rate syntax, `rate(value unit)`: "If the value is equal to 1, then the unit must be
    singular. If the value is greater than 1, the unit must be plural" (EventBridge User Guide, "Rate
    expressions reference")."""
    import re

    match = re.fullmatch(r"rate\((\d+) (minute|minutes|hour|hours|day|days)\)", expression)
    if match is None or int(match.group(1)) < 1:
        return False
    return (int(match.group(1)) == 1) == (not match.group(2).endswith("s"))


def test_every_allowed_sweep_interval_renders_a_valid_rate_and_never_overlaps_a_running_sweep(cfn):
    """Scheduler invokes with 60 s precision ("Schedule types in EventBridge Scheduler"): two runs can be
    as close as the interval minus 59 s; a sweep may run for its whole Timeout."""
    parameter = cfn["Parameters"]["ReconcileEveryMinutes"]
    (schedule,) = resources(cfn, "AWS::Scheduler::Schedule").values()
    template_text = schedule["Properties"]["ScheduleExpression"]["Fn::Sub"]
    timeout = cfn["Resources"]["ReconcilePaymentsFunction"]["Properties"]["Timeout"]
    lowest, highest = parameter["MinValue"], parameter.get("MaxValue", 10_000)
    assert lowest <= int(parameter["Default"]) <= highest
    for minutes in range(lowest, highest + 1):
        assert _scheduler_accepts_rate(template_text.replace("${ReconcileEveryMinutes}", str(minutes))), minutes
    assert lowest * 60 - 60 >= timeout, "a sweep scheduled that often can start while the last one still runs"


def test_the_rate_check_refuses_what_the_scheduler_refuses():
    assert not _scheduler_accepts_rate("rate(1 minutes)")
    assert not _scheduler_accepts_rate("rate(5 minute)")
    assert _scheduler_accepts_rate("rate(1 minute)") and _scheduler_accepts_rate("rate(15 minutes)")


# ---------------------------------------------------------------------------- published versions
@pytest.mark.parametrize("snapstart", ["None", "PublishedVersions"])
def test_a_deploy_deletes_the_versions_it_replaces(snapstart):
    """SAM gives the AWS::Lambda::Version of AutoPublishAlias `DeletionPolicy: Retain` unless told
    otherwise (VersionDeletionPolicy), so every deploy that publishes keeps the old versions for ever:
    with SnapStart on Python each one's snapshot is billed while it exists (Lambda pricing, "SnapStart
    Pricing"). With Delete, CloudFormation deletes a replaced version once the alias has moved."""
    cfn = translated({"SnapStart": snapstart})
    versions = resources(cfn, "AWS::Lambda::Version")
    assert len(versions) == len(TEMPLATE.function_ids())
    assert {name: v.get("DeletionPolicy") for name, v in versions.items()} == dict.fromkeys(versions, "Delete")


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


# ---------------------------------------------------------------------------- reserved concurrency
def _condition(cfn: dict[str, Any], name: str, parameters: dict[str, str]) -> bool:
    """A template condition as CloudFormation evaluates it (the functions this template uses)."""

    def value(expression: Any) -> Any:
        if not isinstance(expression, dict):
            return expression
        ((function, argument),) = expression.items()
        if function == "Ref":
            return parameters.get(argument, str(cfn["Parameters"].get(argument, {}).get("Default", "")))
        if function == "Condition":
            return _condition(cfn, argument, parameters)
        if function == "Fn::Equals":
            return str(value(argument[0])) == str(value(argument[1]))
        if function == "Fn::Not":
            return not value(argument[0])
        raise ValueError(function)

    return bool(value(cfn["Conditions"][name]))


def reservations(parameters: dict[str, str]) -> dict[str, int]:
    """Function -> the reserved concurrency CloudFormation would set, for these parameter values."""
    cfn = translated(parameters)
    found = {}
    for name, function in resources(cfn, "AWS::Lambda::Function").items():
        value = function["Properties"].get("ReservedConcurrentExecutions")
        if isinstance(value, dict) and "Fn::If" in value:
            condition, when_true, when_false = value["Fn::If"]
            value = when_true if _condition(cfn, condition, parameters) else when_false
        if isinstance(value, dict) and value.get("Ref") == "AWS::NoValue":
            value = None
        if isinstance(value, dict) and "Ref" in value:
            value = parameters.get(value["Ref"], cfn["Parameters"][value["Ref"]]["Default"])
        if value is not None:
            found[name] = int(value)
    return found


def test_by_default_no_function_reserves_concurrency_so_any_account_can_deploy():
    """Lambda keeps at least 100 of an account's concurrency unreserved ("You can reserve up to the
    Unreserved account concurrency value ... minus 100", Lambda Developer Guide, "Configuring reserved
    concurrency"); new accounts may have a quota of 10 or 50, where any reservation fails the deploy."""
    assert reservations({}) == {}


def test_the_webhook_cap_is_opt_in_and_the_sweep_never_reserves():
    assert reservations({"WebhookReservedConcurrency": "20"}) == {"StripeWebhookFunction": 20}
    for environment in ("dev", "prod"):
        assert "ReconcilePaymentsFunction" not in reservations(_samconfig_parameters(environment))


def _samconfig_parameters(environment: str) -> dict[str, str]:
    import shlex
    import tomllib

    from support import ROOT

    config = tomllib.loads((ROOT / "samconfig.toml").read_text())
    text = config[environment]["deploy"]["parameters"]["parameter_overrides"]
    return dict(pair.split("=", 1) for pair in shlex.split(text))


# ---------------------------------------------------------------------------- domain events out (issue 20)
def test_the_audit_tables_stream_feeds_the_publisher_with_retries_bisection_and_a_dead_letter_queue(cfn):
    """What docs/events.md promises of the event source mapping, as CloudFormation receives it: the
    audit table streams each committed row (NEW_IMAGE); the mapping reads it from the start it keeps,
    one batch per shard at a time, reports partial failures, splits failing batches, gives a batch up
    after a bounded number of retries to an SQS queue (AWS::Lambda::EventSourceMapping OnFailure: SQS or
    SNS for DynamoDB sources), and an alarm watches that queue."""
    resources_ = cfn["Resources"]
    assert resources_["PaymentAuditTable"]["Properties"]["StreamSpecification"] == {"StreamViewType": "NEW_IMAGE"}
    (mapping,) = resources(cfn, "AWS::Lambda::EventSourceMapping").values()
    props = mapping["Properties"]
    assert props["EventSourceArn"] == {"Fn::GetAtt": ["PaymentAuditTable", "StreamArn"]}
    assert props["FunctionName"] == {"Ref": "PublishEventsFunctionAliaslive"}  # the published version
    assert props["StartingPosition"] == "TRIM_HORIZON"
    assert props["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert props["BisectBatchOnFunctionError"] is True
    assert 0 < props["MaximumRetryAttempts"] <= 10_000 and props.get("ParallelizationFactor", 1) == 1
    queue = props["DestinationConfig"]["OnFailure"]["Destination"]["Fn::GetAtt"][0]
    assert resources_[queue]["Type"] == "AWS::SQS::Queue"
    watching = [
        a["Properties"]
        for a in resources(cfn, "AWS::CloudWatch::Alarm").values()
        if a["Properties"].get("Namespace") == "AWS/SQS"
        and a["Properties"]["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": [queue, "QueueName"]}}]
    ]
    assert len(watching) == 1 and watching[0]["Threshold"] == 1
    assert "docs/runbook.md#eventsdeadletter" in watching[0]["AlarmDescription"]


def test_the_publisher_is_granted_no_stream_but_its_own(cfn):
    """SAM's DynamoDB event would attach AWSLambdaDynamoDBExecutionRole (stream reads on "*"): the
    publisher's role has only the AWS managed policies every function has."""
    from support.sam import aws_managed_policies

    assert not [arn for arn in aws_managed_policies(cfn, "PublishEventsFunction") if "DynamoDB" in arn]
    (bus,) = resources(cfn, "AWS::Events::EventBus")
    assert cfn["Resources"]["PublishEventsFunction"]["Properties"]["Environment"]["Variables"]["EVENT_BUS_NAME"] == {
        "Ref": bus
    }
