"""Fixtures of the SQS tests that keep the bridge's state in DynamoDB (see ``aws_only.py``)."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge.dynamodb.table import DynamoTable
from tests.conftest import ROOT, MotoSqs
from tests.integration.sqs.aws_only import TABLE, AwsOnly
from tests.redis_server import free_port


@pytest.fixture(scope="session")
def serial_moto() -> Iterator[str]:
    """A moto server of its own for DynamoDB, answering one request at a time (see tests/serial_moto.py)."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "tests.serial_moto", str(port)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(endpoint + "/moto-api/", timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"moto's server for DynamoDB did not start on {endpoint}")
            time.sleep(0.1)
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
