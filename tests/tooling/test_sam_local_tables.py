"""`make sam-local-tables`: the template's tables and the demo seed in any DynamoDB endpoint (DynamoDB
Local for `sam local`; here the embedded one), named as env.json names them; a second run keeps the data."""

from __future__ import annotations

import json
import subprocess
import sys

import boto3
from support import ROOT

from local.dynamodb import EmbeddedDynamoDB
from local.template import Template


def test_tables_and_seed_load_once_into_the_endpoint(dynamodb_server: EmbeddedDynamoDB):
    dynamodb_server.reset()
    command = [sys.executable, str(ROOT / "scripts" / "sam_local_tables.py"), dynamodb_server.endpoint]
    first = subprocess.run(command, capture_output=True, text=True, check=True, cwd=ROOT)
    assert "seeded from" in first.stdout, first.stdout
    client = boto3.client("dynamodb", endpoint_url=dynamodb_server.endpoint)
    parameters = json.loads((ROOT / "env.json").read_text())["Parameters"]
    names = set(client.list_tables()["TableNames"])
    assert names == set(Template().table_ids())
    assert {parameters[name] for name in parameters if name.endswith("_TABLE")} == names
    payment = client.get_item(TableName="PaymentsTable", Key={"user": {"N": "1"}, "id": {"N": "1"}})["Item"]
    assert payment["amount"]["N"] == "1598.00"  # the spec's example, from local/seed.json

    second = subprocess.run(command, capture_output=True, text=True, check=True, cwd=ROOT)
    assert "no table" in second.stdout and "seeded" not in second.stdout
    dynamodb_server.reset()
