"""SQS queue administration against moto's SQS server: ensure-queue and stats-sqs."""

from __future__ import annotations

import json
import os
import subprocess

import boto3
import pytest

from bridge import InvalidInput
from bridge.sqs.admin import SqsAdmin
from tests.conftest import JOBS, ROOT

pytestmark = pytest.mark.sqs


def jobs_cli(sqs, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SQS_", "REDIS_URL"))}
    environ.update(sqs.env(), PYTHONPATH=str(ROOT), **env)
    return subprocess.run(
        [JOBS, *args], cwd=ROOT, env=environ, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip


def client(sqs):
    return boto3.client(
        "sqs", region_name="us-east-1", endpoint_url=sqs.endpoint,
        aws_access_key_id="testing", aws_secret_access_key="testing",
    )  # fmt: skip


def test_ensure_queue_creates_queue_and_dlq_with_redrive_idempotently(sqs):
    args = ["sqs", "ensure-queue", "orders", "--dlq", "orders-dlq", "--max-receive-count", "3",
            "--visibility-timeout", "45"]  # fmt: skip
    first = jobs_cli(sqs, *args)
    second = jobs_cli(sqs, *args)
    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout
    url = first.stdout.strip()
    attrs = client(sqs).get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    policy = json.loads(attrs["RedrivePolicy"])
    assert policy["deadLetterTargetArn"].endswith(":orders-dlq")
    assert int(policy["maxReceiveCount"]) == 3
    assert attrs["VisibilityTimeout"] == "45"
    assert len(client(sqs).list_queues()["QueueUrls"]) == 2


def test_ensure_queue_fifo_rules(sqs):
    admin = SqsAdmin(sqs.settings())
    url = admin.ensure_queue("tasks.fifo", fifo=True, dlq="tasks-dlq.fifo")
    attrs = client(sqs).get_queue_attributes(QueueUrl=url, AttributeNames=["FifoQueue"])["Attributes"]
    assert attrs["FifoQueue"] == "true"
    with pytest.raises(InvalidInput, match="--fifo"):
        admin.ensure_queue("tasks", fifo=True)
    with pytest.raises(InvalidInput, match="--dlq"):
        admin.ensure_queue("more.fifo", fifo=True, dlq="plain-dlq")


def test_stats_sqs_counts_visible_in_flight_delayed_and_the_dlq(sqs):
    admin = SqsAdmin(sqs.settings())
    url = admin.ensure_queue("counted", dlq="counted-dlq", max_receive_count=1)
    c = client(sqs)
    for i in range(3):
        c.send_message(QueueUrl=url, MessageBody=f"visible {i}")
    c.send_message(QueueUrl=url, MessageBody="later", DelaySeconds=600)
    taken = c.receive_message(QueueUrl=url, MaxNumberOfMessages=1, VisibilityTimeout=600)["Messages"]
    assert len(taken) == 1

    done = jobs_cli(sqs, "stats-sqs", "--queue-url", url, "--json")
    assert done.returncode == 0, done.stderr
    [info] = json.loads(done.stdout)
    assert (info["visible"], info["in_flight"], info["delayed"]) == (2, 1, 1)
    assert info["max_receive_count"] == 1
    assert info["dlq"]["url"].endswith("/counted-dlq")
    assert (info["dlq"]["visible"], info["dlq"]["in_flight"]) == (0, 0)
    table = jobs_cli(sqs, "stats-sqs", SQS_QUEUE_URL=url).stdout  # the default queue
    assert "counted-dlq" in table


def test_stats_sqs_errors_are_one_line_with_the_aws_code(sqs):
    missing = jobs_cli(sqs, "stats-sqs", "--queue-url", f"{sqs.endpoint}/123456789012/nope")
    no_queue = jobs_cli(sqs, "stats-sqs")
    assert missing.returncode == 1
    assert "AWS " in missing.stderr
    assert no_queue.returncode == 2
    for done in (missing, no_queue):
        assert len(done.stderr.strip().splitlines()) == 1
        assert "Traceback" not in done.stderr
