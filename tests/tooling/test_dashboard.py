"""The operations dashboard (AWS::CloudWatch::Dashboard in template.yaml), as SAM translates it and
CloudFormation would resolve its body: valid dashboard JSON (CloudWatch's body structure: widgets of
type metric, log, alarm or text on a 24-column grid) that shows requests, 4xx/5xx, latency
percentiles per function, cold starts, Stripe and DynamoDB errors, the money alarms and each sweep's
results; and every custom metric it charts is one the code emits."""

from __future__ import annotations

import functools
import json
import re
from typing import Any

import pytest
from support import ROOT
from support.sam import Resolver, translated

from local.template import Template

TEMPLATE = Template()
NAMESPACE = "HalumHut/Payments"


@functools.cache
def cfn() -> dict[str, Any]:
    return translated()


class Names(Resolver):
    """`Ref` of a resource is its name (a table's, a function's, a log group's: what CloudFormation
    returns for these types), here its logical id; `${X.Arn}` a fake ARN."""

    def _ref(self, name: str) -> Any:
        return name if name in self.resources else super()._ref(name)


@functools.cache
def body() -> dict[str, Any]:
    dashboards = [r for r in cfn()["Resources"].values() if r["Type"] == "AWS::CloudWatch::Dashboard"]
    assert len(dashboards) == 1, "one dashboard in the template"
    text = Names(cfn()).resolve(dashboards[0]["Properties"]["DashboardBody"])
    parsed: dict[str, Any] = json.loads(text)
    return parsed


def widgets(kind: str) -> list[dict[str, Any]]:
    return [w for w in body()["widgets"] if w["type"] == kind]


def metric_lines() -> list[list[Any]]:
    """Every metric line of every metric widget, with "..." shorthand expanded as CloudWatch does."""
    lines = []
    for widget in widgets("metric"):
        previous: list[Any] = []
        for line in widget["properties"]["metrics"]:
            if line and line[0] == "...":
                line = previous[: len(previous) - (len(line) - 1)] + line[1:]  # noqa: PLW2901
            elif line and line[0] == ".":
                line = [previous[i] if v == "." else v for i, v in enumerate(line)]  # noqa: PLW2901
            previous = [v for v in line if not isinstance(v, dict)]
            lines.append(line)
    return lines


def charted(namespace: str, metric: str) -> list[list[Any]]:
    return [line for line in metric_lines() if line[:2] == [namespace, metric]]


def options(line: list[Any]) -> dict[str, Any]:
    return line[-1] if isinstance(line[-1], dict) else {}


def test_the_body_is_a_dashboard_cloudwatch_accepts():
    assert body()["widgets"]
    for widget in body()["widgets"]:
        assert widget["type"] in {"metric", "log", "alarm", "text"}, widget["type"]
        assert widget["x"] >= 0 and widget["x"] + widget["width"] <= 24, widget
        assert widget["height"] > 0 and widget["y"] >= 0
        properties = widget["properties"]
        if widget["type"] in ("metric", "log"):
            assert properties["region"] == "us-east-1"  # the stack's region, resolved
        if widget["type"] == "metric":
            assert properties["metrics"]


def test_requests_4xx_and_5xx_of_the_http_api():
    for metric in ("Count", "4xx", "5xx"):
        assert charted("AWS/ApiGateway", metric), metric


@pytest.mark.parametrize("function", TEMPLATE.function_ids())
def test_latency_percentiles_errors_and_throttles_per_function(function):
    durations = charted("AWS/Lambda", "Duration")
    stats = {options(line).get("stat") for line in durations if function in line}
    assert {"p50", "p99"} <= stats, (function, stats)
    for metric in ("Errors", "Throttles"):
        assert any(function in line for line in charted("AWS/Lambda", metric)), (function, metric)


def test_cold_starts_from_the_functions_reports():
    queries = [w["properties"]["query"] for w in widgets("log")]
    cold = [q for q in queries if "REPORT" in q and "Init Duration" in q]
    assert cold, "a Logs Insights widget counting cold starts (Init Duration in REPORT lines)"
    assert all("SOURCE 'FunctionLogGroup'" in q for q in cold)  # the functions' own log group
    assert any("Restore Duration" in q for q in cold)  # SnapStart restores count too


def test_stripe_and_dynamodb_errors():
    assert charted(NAMESPACE, "StripeErrors") and charted(NAMESPACE, "ReconcileStripeErrors")
    for metric in ("ReadThrottleEvents", "WriteThrottleEvents"):
        assert {line[3] for line in charted("AWS/DynamoDB", metric)} == set(TEMPLATE.table_ids()), metric
    # DynamoDB publishes SystemErrors per table and operation: the pairs the alarm watches.
    watched = {
        (dims["TableName"]["Ref"], dims["Operation"])
        for query in cfn()["Resources"]["DynamoDbSystemErrorsAlarm"]["Properties"]["Metrics"]
        if "MetricStat" in query
        for dims in [{d["Name"]: d["Value"] for d in query["MetricStat"]["Metric"]["Dimensions"]}]
    }
    assert {(line[3], line[5]) for line in charted("AWS/DynamoDB", "SystemErrors")} == watched


def test_the_money_alarms_are_shown():
    shown = {arn for w in widgets("alarm") for arn in w["properties"]["alarms"]}
    for alarm in ("PaymentNeedsRefundAlarm", "AmountMismatchAlarm", "StaleOpenPaymentAlarm"):
        assert any(arn.endswith(f":alarm:{alarm}") for arn in shown), alarm


def test_each_sweeps_results():
    queries = [w["properties"]["query"] for w in widgets("log")]
    assert any('"reconciliation sweep"' in q and "checked" in q and "skipped" in q for q in queries)
    for metric in ("ReconcileSweepDuration", "OldestOpenStripePaymentMinutes", "ReconciledCompleted"):
        assert charted(NAMESPACE, metric), metric


def emitted_metrics() -> set[str]:
    """The metric names the layer and the functions emit: literal names (counted, or money alarms
    written at once), the idempotency wrapper's duplicate metric, and the names built from a payment
    status (a transition's target, a sweep's outcome: a status, or "open"/"closed")."""
    from halum_payments.models import PaymentStatus

    files = [*(ROOT / "layers" / "payments" / "halum_payments").rglob("*.py"), *(ROOT / "functions").rglob("*.py")]
    source = "\n".join(path.read_text() for path in files)
    names = set(re.findall(r'(?:count|alarm)\("(\w+)"', source)) | set(re.findall(r'add_metric\(name="(\w+)"', source))
    names |= set(re.findall(r'duplicate_metric: str(?: \| None)? = "(\w+)"', source))
    statuses = [str(status).capitalize() for status in PaymentStatus]
    if 'count(f"Payments{transition.to_status.capitalize()}")' in source:
        names |= {f"Payments{status}" for status in statuses}
    if 'count(f"Reconciled{outcome.capitalize()}", number)' in source:
        names |= {f"Reconciled{outcome}" for outcome in (*statuses, "Open", "Closed")}
    return names


def test_every_custom_metric_charted_is_one_the_code_emits():
    charted_names = {line[1] for line in metric_lines() if line and line[0] == NAMESPACE}
    assert charted_names and charted_names <= emitted_metrics(), charted_names - emitted_metrics()
    for line in metric_lines():
        if line and line[0] == NAMESPACE:
            assert line[2:4] == ["service", "payments"], line  # Powertools' dimension
