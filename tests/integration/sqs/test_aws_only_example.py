"""examples/aws_only runs with only SQS and DynamoDB endpoints set (moto), as its docstring says."""

from __future__ import annotations

import os

import pytest

from tests.conftest import ROOT
from tests.integration.test_examples import run_example

pytestmark = [pytest.mark.sqs, pytest.mark.worker]  # no redis mark: the example touches no Redis


def test_aws_only_example_runs_each_job_once_with_no_redis(aws, nowhere):
    settings = ("AWS_", "SQS_", "REDIS", "QUEUE_", "JOBS_", "LOCK_", "GUARD_", "DYNAMODB", "BRIDGE_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(settings)}  # nothing but the endpoints
    env.update(
        aws.sqs.env(), AWS_ENDPOINT_URL_DYNAMODB=aws.dynamodb, PYTHONPATH=str(ROOT), BRIDGE_HOME=str(nowhere)
    )
    done = run_example("examples.aws_only", env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "deduplicated: [False, True, True]" in done.stdout
    assert "cancelled: True" in done.stdout
    assert "OK: every job ran once, the cancelled one never, the payment was captured once" in done.stdout
