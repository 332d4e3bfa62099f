"""Fixtures of the SQS tests that keep the bridge's state in DynamoDB (see ``aws_only.py``)."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge.dynamodb.table import DynamoTable
from tests.conftest import MotoSqs, start_moto
from tests.integration.sqs.aws_only import TABLE, AwsOnly


@pytest.fixture(scope="session")
def serial_moto() -> Iterator[str]:
    """A moto server of its own for DynamoDB, answering one request at a time (see tests/serial_moto.py)."""
    proc, endpoint = start_moto(["-m", "tests.serial_moto"], "moto's server for DynamoDB")
    yield endpoint
    proc.terminate()
    proc.wait(10)


@pytest.fixture
def aws(sqs: MotoSqs, serial_moto: str) -> AwsOnly:
    """SQS (the session's moto) and DynamoDB (the serial moto), both reset; the guard table made as
    `jobs dynamodb ensure-table` makes it."""
    urllib.request.urlopen(urllib.request.Request(serial_moto + "/moto-api/reset", method="POST"), timeout=10)
    DynamoTable(TABLE, region="us-east-1", endpoint_url=serial_moto).ensure()
    return AwsOnly(sqs, serial_moto)


@pytest.fixture
def nowhere(tmp_path: Path) -> Iterator[Path]:
    """A BRIDGE_HOME that must stay empty: an embedded server started by mistake would appear here."""
    home = tmp_path / "bridge-home"
    yield home
    assert not home.exists(), "an embedded server was started: something fell back to it"
