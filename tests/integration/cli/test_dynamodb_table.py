"""`jobs dynamodb ensure-table` against moto's DynamoDB: created once, on demand, TTL on; bad input."""

from __future__ import annotations

import json
import os
import subprocess

import boto3
import pytest

from tests.conftest import JOBS, ROOT, MotoSqs

pytestmark = pytest.mark.sqs


def ensure_table(sqs: MotoSqs, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {
        k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SQS_", "REDIS_URL", "DYNAMODB"))
    }
    environ.update(sqs.env(), AWS_ENDPOINT_URL_DYNAMODB=sqs.endpoint, PYTHONPATH=str(ROOT), **env)
    return subprocess.run(
        [JOBS, "dynamodb", "ensure-table", *args], cwd=ROOT, env=environ,
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_ensure_table_creates_an_on_demand_table_with_ttl_once(sqs: MotoSqs) -> None:
    first = ensure_table(sqs, "--json", DYNAMODB_TABLE="jobs-guards")
    again = ensure_table(sqs, "--json", DYNAMODB_TABLE="jobs-guards")
    assert first.returncode == 0, first.stderr
    assert again.returncode == 0, again.stderr
    assert json.loads(first.stdout) == {
        "table": "jobs-guards",
        "arn": "arn:aws:dynamodb:us-east-1:123456789012:table/jobs-guards",
        "created": True,
        "billing": "PAY_PER_REQUEST",
        "ttl_attribute": "ttl",
    }
    assert json.loads(again.stdout)["created"] is False  # idempotent: nothing changed
    client = boto3.client("dynamodb", region_name="us-east-1", endpoint_url=sqs.endpoint)
    assert client.list_tables()["TableNames"] == ["jobs-guards"]
    ttl = client.describe_time_to_live(TableName="jobs-guards")["TimeToLiveDescription"]
    assert (ttl["TimeToLiveStatus"], ttl["AttributeName"]) == ("ENABLED", "ttl")


def test_a_table_of_that_name_with_another_key_is_refused_naming_the_setting(sqs: MotoSqs) -> None:
    client = boto3.client("dynamodb", region_name="us-east-1", endpoint_url=sqs.endpoint)
    client.create_table(
        TableName="orders", KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST",
    )  # fmt: skip
    result = ensure_table(sqs, "orders")
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert "DYNAMODB_TABLE" in result.stderr
    assert "'orders'" in result.stderr


def test_no_table_name_exits_2_saying_how_to_give_one(sqs: MotoSqs) -> None:
    result = ensure_table(sqs)
    assert result.returncode == 2
    assert "DYNAMODB_TABLE" in result.stderr
