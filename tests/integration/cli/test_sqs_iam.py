"""`jobs sqs iam-policy` against moto's SQS server: the queue, its DLQ from RedrivePolicy, bad input."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from bridge.sqs.admin import SqsAdmin
from tests.conftest import JOBS, ROOT, MotoSqs
from tests.redis_server import free_port

pytestmark = pytest.mark.sqs


def jobs_cli(sqs: MotoSqs, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SQS_", "REDIS_URL"))}
    environ.update(sqs.env(), PYTHONPATH=str(ROOT), **env)
    return subprocess.run(
        [JOBS, "sqs", "iam-policy", *args], cwd=ROOT, env=environ,
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def statements(result: subprocess.CompletedProcess[str]) -> dict[str, dict[str, object]]:
    assert result.returncode == 0, result.stderr
    return {s["Sid"]: s for s in json.loads(result.stdout)["Statement"]}


def test_policy_covers_the_configured_queue_the_extra_queue_and_the_dlq_read_from_aws(sqs: MotoSqs) -> None:
    admin = SqsAdmin(sqs.settings())
    orders = admin.ensure_queue("orders", dlq="orders-dlq")
    reports = admin.ensure_queue("reports")
    result = jobs_cli(sqs, "--queue", reports, SQS_QUEUE_URL=orders)
    by_sid = statements(result)
    queues = ["arn:aws:sqs:us-east-1:123456789012:orders", "arn:aws:sqs:us-east-1:123456789012:reports"]
    assert by_sid["JobsProducer"]["Resource"] == queues
    assert by_sid["JobsWorker"]["Resource"] == queues
    assert by_sid["JobsDeadLetterQueues"]["Resource"] == ["arn:aws:sqs:us-east-1:123456789012:orders-dlq"]
    assert result.stderr == ""


def test_role_worker_prints_only_the_worker_statement(sqs: MotoSqs) -> None:
    orders = SqsAdmin(sqs.settings()).ensure_queue("orders")
    by_sid = statements(jobs_cli(sqs, "--role", "worker", SQS_QUEUE_URL=orders))
    assert set(by_sid) == {"JobsWorker"}  # no DLQ on this queue, no producer statement


def test_unreachable_queue_prints_the_policy_and_says_dlqs_were_not_looked_up(sqs: MotoSqs) -> None:
    url = "https://sqs.eu-west-1.amazonaws.com/123456789012/orders"
    closed = f"http://127.0.0.1:{free_port()}"
    result = jobs_cli(sqs, "--dlq", "arn:aws:sqs:eu-west-1:123456789012:orders-dlq",
                      SQS_QUEUE_URL=url, AWS_ENDPOINT_URL_SQS=closed)  # fmt: skip
    by_sid = statements(result)
    assert by_sid["JobsWorker"]["Resource"] == ["arn:aws:sqs:eu-west-1:123456789012:orders"]
    assert by_sid["JobsDeadLetterQueues"]["Resource"] == ["arn:aws:sqs:eu-west-1:123456789012:orders-dlq"]
    assert "dead-letter queues could not be looked up" in result.stderr


@pytest.mark.parametrize(
    ("args", "env", "option"),
    [
        (["--queue", "https://example.com/not/a/queue"], {}, "--queue"),
        ([], {"SQS_QUEUE_URL": "orders"}, "SQS_QUEUE_URL"),
        (["--queue", "https://sqs.eu-west-1.amazonaws.com/123456789012/q", "--dlq", "nope"], {}, "--dlq"),
        ([], {}, "--queue"),  # nothing configured
    ],
)
def test_bad_input_exits_2_with_one_line_naming_the_option(
    sqs: MotoSqs, args: list[str], env: dict[str, str], option: str
) -> None:
    result = jobs_cli(sqs, *args, **env)
    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1
    assert f"{option}: " in result.stderr


def test_guards_in_dynamodb_add_one_statement_for_exactly_that_table(sqs: MotoSqs) -> None:
    orders = SqsAdmin(sqs.settings()).ensure_queue("orders")
    by_sid = statements(
        jobs_cli(sqs, SQS_QUEUE_URL=orders, GUARD_STORE="dynamodb", DYNAMODB_TABLE="jobs-guards")
    )
    assert by_sid["JobsGuardTable"] == {
        "Sid": "JobsGuardTable",
        "Effect": "Allow",
        # What the guard store, @idempotent and bridge.lock call: no Scan, Query, batch or table admin.
        "Action": ["dynamodb:DeleteItem", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"],
        "Resource": ["arn:aws:dynamodb:us-east-1:123456789012:table/jobs-guards"],
    }
    assert "JobsGuardTable" not in statements(jobs_cli(sqs, SQS_QUEUE_URL=orders))  # guards in Redis: none


def test_eventbridge_repeats_add_the_producers_schedule_statements_and_pass_role_to_the_scheduler_only(
    sqs: MotoSqs,
) -> None:
    orders = SqsAdmin(sqs.settings()).ensure_queue("orders")
    role = "arn:aws:iam::123456789012:role/jobs-scheduler"
    env = {"SQS_QUEUE_URL": orders, "QUEUE_BACKEND": "sqs", "JOBS_SCHEDULER": "eventbridge",
           "JOBS_SCHEDULER_ROLE_ARN": role, "JOBS_SCHEDULE_GROUP": "bridge-shop"}  # fmt: skip
    by_sid = statements(jobs_cli(sqs, **env))
    assert by_sid["JobsSchedules"]["Resource"] == [
        "arn:aws:scheduler:us-east-1:123456789012:schedule-group/bridge-shop",
        "arn:aws:scheduler:us-east-1:123456789012:schedule/bridge-shop/*",
    ]
    assert by_sid["JobsSchedules"]["Action"] == [
        "scheduler:CreateSchedule", "scheduler:CreateScheduleGroup", "scheduler:DeleteSchedule",
        "scheduler:GetSchedule", "scheduler:ListSchedules", "scheduler:UpdateSchedule",
    ]  # fmt: skip
    assert by_sid["JobsPassSchedulerRole"] == {
        "Sid": "JobsPassSchedulerRole",
        "Effect": "Allow",
        "Action": ["iam:PassRole"],
        "Resource": [role],
        "Condition": {"StringEquals": {"iam:PassedToService": "scheduler.amazonaws.com"}},
    }
    assert "JobsSchedules" not in statements(
        jobs_cli(sqs, "--role", "worker", **env)
    )  # workers never schedule
