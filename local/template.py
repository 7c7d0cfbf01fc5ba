"""Reads template.yaml: the tables to create, and each function's code, environment and routes.

The local server and the tests both build from this, so neither can drift from what AWS runs.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "template.yaml"


class _CfnLoader(yaml.SafeLoader):
    """YAML loader that understands CloudFormation's short-form intrinsic tags."""


def _intrinsic(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> Any:
    name = "Ref" if tag_suffix == "Ref" else f"Fn::{tag_suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if tag_suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


_CfnLoader.add_multi_constructor("!", _intrinsic)


def load_template(text: str) -> dict[str, Any]:
    """A CloudFormation/SAM template as data, short-form intrinsics (`!Ref X`) in their long form."""
    document: dict[str, Any] = yaml.load(text, Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass
    return document


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # API Gateway form: /orders/api/payments/{id}/


@dataclass
class FunctionSpec:
    logical_id: str
    code_uri: Path
    handler: str
    timeout: int
    memory: int
    environment: dict[str, str]
    routes: list[Route] = field(default_factory=list)
    function_url: bool = False
    local_path: str | None = None  # where the local server mounts a Function URL function
    schedules: list[dict[str, Any]] = field(default_factory=list)
    policies: list[Any] = field(default_factory=list)


@dataclass(frozen=True)
class StreamMappingSpec:
    """An AWS::Lambda::EventSourceMapping on a DynamoDB stream, as local/streams.py emulates it."""

    logical_id: str
    table: str  # the table whose stream it reads (logical id)
    function: str  # the function it invokes (logical id)
    batch_size: int
    starting_position: str
    maximum_retry_attempts: int  # -1: until the record expires
    bisect_on_error: bool
    report_item_failures: bool
    on_failure: str | None  # the on-failure destination (logical id of the queue)


class Template:
    def __init__(self, path: Path = TEMPLATE, parameters: dict[str, str] | None = None) -> None:
        self.path = path
        self.doc: dict[str, Any] = load_template(path.read_text())
        self.resources: dict[str, Any] = self.doc["Resources"]
        self.parameters = {
            name: str(spec.get("Default", "")) for name, spec in (self.doc.get("Parameters") or {}).items()
        }
        self.parameters.update(parameters or {})
        self.table_names: dict[str, str] = {}

    # ------------------------------------------------------------- tables
    def table_ids(self) -> list[str]:
        return [rid for rid, res in self.resources.items() if res["Type"] == "AWS::DynamoDB::Table"]

    def create_table_request(self, logical_id: str, table_name: str) -> dict[str, Any]:
        """CreateTable arguments for a table resource (the properties CreateTable understands)."""
        props = self.resources[logical_id]["Properties"]
        request: dict[str, Any] = {
            "TableName": table_name,
            "AttributeDefinitions": copy.deepcopy(props["AttributeDefinitions"]),
            "KeySchema": copy.deepcopy(props["KeySchema"]),
            "BillingMode": props.get("BillingMode", "PAY_PER_REQUEST"),
        }
        for key in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
            if key in props:
                request[key] = copy.deepcopy(props[key])
        if "StreamSpecification" in props:  # the domain events' outbox (local/streams.py reads it)
            view = props["StreamSpecification"]["StreamViewType"]
            request["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": view}
        return request

    def create_tables(self, client: Any, prefix: str = "") -> dict[str, str]:
        """Create every table (named `<prefix><LogicalId>`); returns logical id -> table name."""
        names = {}
        for logical_id in self.table_ids():
            name = f"{prefix}{logical_id}"
            client.create_table(**self.create_table_request(logical_id, name))
            ttl = self.resources[logical_id]["Properties"].get("TimeToLiveSpecification")
            if ttl and ttl.get("Enabled"):
                client.update_time_to_live(
                    TableName=name, TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": True}
                )
            names[logical_id] = name
        self.table_names = names
        return names

    def create_event_buses(self, client: Any) -> list[str]:
        """Create every event bus, named by logical id (as `!Ref` resolves locally)."""
        buses = [rid for rid, res in self.resources.items() if res["Type"] == "AWS::Events::EventBus"]
        for bus in buses:
            client.create_event_bus(Name=bus)
        return buses

    def use_table_names(self, names: dict[str, str]) -> None:
        self.table_names = dict(names)

    # ------------------------------------------------------------- functions
    def function_ids(self) -> list[str]:
        return [rid for rid, res in self.resources.items() if res["Type"] == "AWS::Serverless::Function"]

    def function(self, logical_id: str, overrides: dict[str, str] | None = None) -> FunctionSpec:
        globals_ = (self.doc.get("Globals") or {}).get("Function") or {}
        props = self.resources[logical_id]["Properties"]
        environment: dict[str, str] = {}
        for source in (globals_, props):
            variables = ((source.get("Environment") or {}).get("Variables")) or {}
            environment.update({k: self.resolve(v) for k, v in variables.items()})
        for name, value in (overrides or {}).items():
            if name in environment:  # only what the template declares for this function
                environment[name] = value
        routes, schedules = [], []
        for event in (props.get("Events") or {}).values():
            if event["Type"] == "HttpApi":
                routes.append(Route(event["Properties"]["Method"].upper(), event["Properties"]["Path"]))
            elif event["Type"] in ("Schedule", "ScheduleV2"):
                schedules.append(event["Properties"])
        metadata = self.resources[logical_id].get("Metadata") or {}
        return FunctionSpec(
            logical_id=logical_id,
            code_uri=(self.path.parent / props["CodeUri"]).resolve(),
            handler=props.get("Handler") or globals_.get("Handler", "app.lambda_handler"),
            timeout=int(props.get("Timeout") or globals_.get("Timeout", 3)),
            memory=int(props.get("MemorySize") or globals_.get("MemorySize", 128)),
            environment=environment,
            routes=routes,
            function_url="FunctionUrlConfig" in props,
            local_path=(metadata.get("LocalServer") or {}).get("Path"),
            schedules=schedules,
            policies=list(props.get("Policies") or []),
        )

    def functions(self, overrides: dict[str, str] | None = None) -> list[FunctionSpec]:
        return [self.function(fid, overrides) for fid in self.function_ids()]

    def stream_mappings(self) -> list[StreamMappingSpec]:
        """The DynamoDB stream event source mappings: which table's stream feeds which function, how."""
        specs = []
        for logical_id, res in self.resources.items():
            if res["Type"] != "AWS::Lambda::EventSourceMapping":
                continue
            props = res["Properties"]
            table, attribute = props["EventSourceArn"]["Fn::GetAtt"]
            if attribute != "StreamArn":
                continue
            on_failure = ((props.get("DestinationConfig") or {}).get("OnFailure") or {}).get("Destination")
            specs.append(
                StreamMappingSpec(
                    logical_id=logical_id,
                    table=table,
                    function=props["FunctionName"]["Ref"].split(".")[0],  # `X.Alias`: the function X
                    batch_size=int(props.get("BatchSize", 100)),
                    starting_position=props["StartingPosition"],
                    maximum_retry_attempts=int(props.get("MaximumRetryAttempts", -1)),
                    bisect_on_error=bool(props.get("BisectBatchOnFunctionError", False)),
                    report_item_failures="ReportBatchItemFailures" in (props.get("FunctionResponseTypes") or []),
                    on_failure=on_failure["Fn::GetAtt"][0] if on_failure else None,
                )
            )
        return specs

    def http_api_cors(self) -> dict[str, Any] | None:
        """The HTTP API's CorsConfiguration with its values resolved (None: CORS not configured)."""
        apis = [r for r in self.resources.values() if r["Type"] == "AWS::Serverless::HttpApi"]
        config = next((api["Properties"].get("CorsConfiguration") for api in apis if api.get("Properties")), None)
        if not config:
            return None
        return {
            key: [self.resolve(v) for v in value] if isinstance(value, list) else self.resolve(value)
            for key, value in config.items()
        }

    def function_layers(self, logical_id: str) -> list[str]:
        """The layer resources a function uses, in order: SAM puts Globals' layers first, then the
        function's own; an `Fn::If` is decided with the parameters (AWS::NoValue drops it)."""
        globals_ = (self.doc.get("Globals") or {}).get("Function") or {}
        props = self.resources[logical_id]["Properties"]
        names = []
        for declared in list(globals_.get("Layers") or []) + list(props.get("Layers") or []):
            ref = declared
            while isinstance(ref, dict) and "Fn::If" in ref:
                condition, when_true, when_false = ref["Fn::If"]
                ref = when_true if self.condition(condition) else when_false
            if isinstance(ref, dict) and ref.get("Ref") != "AWS::NoValue":
                names.append(ref["Ref"])
        return names

    def reserved_concurrency(self, logical_id: str) -> int | None:
        """The function's ReservedConcurrentExecutions with the parameters (None: not reserved)."""
        value = self.resources[logical_id]["Properties"].get("ReservedConcurrentExecutions")
        while isinstance(value, dict) and "Fn::If" in value:
            condition, when_true, when_false = value["Fn::If"]
            value = when_true if self.condition(condition) else when_false
        if value is None or value == {"Ref": "AWS::NoValue"}:
            return None
        return int(self.resolve(value))

    def condition(self, name: str) -> bool:
        return bool(self._evaluate((self.doc.get("Conditions") or {})[name]))

    def _evaluate(self, expression: Any) -> Any:
        if not isinstance(expression, dict):
            return expression
        ((function, argument),) = expression.items()
        if function == "Ref":
            return self._ref(argument)
        if function == "Condition":
            return self.condition(argument)
        if function == "Fn::Equals":
            left, right = (self._evaluate(a) for a in argument)
            return str(left) == str(right)
        if function == "Fn::Not":
            return not self._evaluate(argument[0])
        if function == "Fn::And":
            return all(self._evaluate(a) for a in argument)
        if function == "Fn::Or":
            return any(self._evaluate(a) for a in argument)
        raise ValueError(f"cannot evaluate {function} locally")

    def layer_dirs(self) -> list[Path]:
        """Each layer's own source folder (its Metadata SourceDir: the layers share one ContentUri,
        the folder their build runs in), else its ContentUri (a built template's)."""
        return [
            (
                self.path.parent / ((res.get("Metadata") or {}).get("SourceDir") or res["Properties"]["ContentUri"])
            ).resolve()
            for res in self.resources.values()
            if res["Type"] == "AWS::Serverless::LayerVersion"
        ]

    # ------------------------------------------------------------- intrinsics
    def resolve(self, value: Any) -> str:
        if isinstance(value, (str, int, float, bool)):
            return str(value).lower() if isinstance(value, bool) else str(value)
        if not isinstance(value, dict) or len(value) != 1:
            raise ValueError(f"cannot resolve {value!r} locally")
        ((name, arg),) = value.items()
        if name == "Ref":
            return self._ref(arg)
        if name == "Fn::GetAtt":
            resource, attribute = arg
            return f"arn:aws:local:::{resource}/{attribute}"
        if name == "Fn::Sub":
            text = arg if isinstance(arg, str) else arg[0]
            return re.sub(r"\$\{([^}]+)\}", lambda m: self._ref(m.group(1).split(".")[0]), text)
        if name == "Fn::If":
            return self.resolve(arg[1])
        raise ValueError(f"cannot resolve {name} locally")

    def _ref(self, name: str) -> str:
        if name in self.parameters:
            return self.parameters[name]
        if name in self.table_names:
            return self.table_names[name]
        if name.startswith("AWS::"):
            return {"AWS::Region": "us-east-1", "AWS::AccountId": "000000000000", "AWS::Partition": "aws"}.get(
                name, "local"
            )
        if name in self.resources:
            return name
        raise ValueError(f"unknown reference {name}")


def ensure_tables(template: Template, client: Any) -> list[str]:
    """Create the template's tables that do not exist yet (named by logical id); the created ones."""
    existing: set[str] = set()
    for page in client.get_paginator("list_tables").paginate():
        existing.update(page["TableNames"])
    created = []
    for logical_id in template.table_ids():
        if logical_id in existing:
            continue
        client.create_table(**template.create_table_request(logical_id, logical_id))
        client.get_waiter("table_exists").wait(TableName=logical_id, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
        ttl = template.resources[logical_id]["Properties"].get("TimeToLiveSpecification")
        if ttl and ttl.get("Enabled"):
            client.update_time_to_live(
                TableName=logical_id, TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": True}
            )
        created.append(logical_id)
    template.use_table_names({logical_id: logical_id for logical_id in template.table_ids()})
    return created
