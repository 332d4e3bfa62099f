"""GUARD_STORE, DYNAMODB_TABLE, LOCK_BACKEND=dynamodb and JOBS_SCHEDULER: values and refusals."""

from __future__ import annotations

import pytest

from bridge import ConfigError, Settings

SQS = {"QUEUE_BACKEND": "sqs", "SQS_QUEUE_URL": "https://sqs.eu-west-1.amazonaws.com/123456789012/jobs"}
ROLE = "arn:aws:iam::123456789012:role/jobs-scheduler"


def test_guards_in_dynamodb_take_locks_there_too_when_no_redis_is_named() -> None:
    settings = Settings.from_env({**SQS, "GUARD_STORE": "dynamodb", "DYNAMODB_TABLE": "jobs-guards"})
    assert (settings.guard_store, settings.lock_backend, settings.dynamodb_table) == (
        "dynamodb", "dynamodb", "jobs-guards",
    )  # fmt: skip
    assert settings.jobs_scheduler == "beat"


def test_the_guard_store_follows_redis_url_unless_named() -> None:
    assert Settings.from_env({**SQS, "REDIS_URL": "redis://h:6379/0"}).guard_store == "redis"
    assert Settings.from_env(SQS).guard_store == "embedded"
    assert Settings(redis_url="redis://h:6379/0", queue_backend="redis").guard_store == "redis"


@pytest.mark.parametrize(
    ("env", "named", "fix"),
    [
        ({"GUARD_STORE": "dynamodb"}, "GUARD_STORE=dynamodb", "jobs dynamodb ensure-table"),
        ({"LOCK_BACKEND": "dynamodb"}, "LOCK_BACKEND=dynamodb", "DYNAMODB_TABLE"),
        ({"GUARD_STORE": "cassandra"}, "GUARD_STORE", "dynamodb, embedded, redis"),
        ({"GUARD_STORE": "redis"}, "REDIS_URL is not set", "GUARD_STORE=redis"),
        ({"JOBS_SCHEDULER": "cron"}, "JOBS_SCHEDULER", "beat, eventbridge"),
        ({"JOBS_SCHEDULER": "eventbridge"}, "JOBS_SCHEDULER_ROLE_ARN", "arn:aws:iam::"),
        ({"JOBS_SCHEDULER": "eventbridge", "JOBS_SCHEDULER_ROLE_ARN": "jobs-scheduler"},
         "JOBS_SCHEDULER_ROLE_ARN", "'jobs-scheduler'"),
    ],
)  # fmt: skip
def test_a_bad_aws_store_setting_names_the_variable_and_the_fix(
    env: dict[str, str], named: str, fix: str
) -> None:
    with pytest.raises(ConfigError) as refused:
        Settings.from_env({**SQS, **env})
    assert named in str(refused.value)
    assert fix in str(refused.value)


def test_dynamodb_guards_and_eventbridge_serve_sqs_only() -> None:
    with pytest.raises(ConfigError, match="GUARD_STORE=dynamodb serves the SQS backend"):
        Settings(queue_backend="broker", guard_store="dynamodb", dynamodb_table="t")
    with pytest.raises(ConfigError, match="JOBS_BACKEND=embedded; set JOBS_BACKEND=sqs"):
        Settings(jobs_scheduler="eventbridge", jobs_scheduler_role_arn=ROLE)


def test_eventbridge_repeats_on_a_fifo_queue_are_refused_naming_the_fix() -> None:
    """EventBridge Scheduler cannot give each run a FIFO deduplication id: the settings say what to set."""
    fifo = {"QUEUE_BACKEND": "sqs", "SQS_QUEUE_URL": SQS["SQS_QUEUE_URL"] + ".fifo", "SQS_FIFO": "true"}
    with pytest.raises(ConfigError) as refused:
        Settings.from_env({**fifo, "JOBS_SCHEDULER": "eventbridge", "JOBS_SCHEDULER_ROLE_ARN": ROLE})
    assert "JOBS_SCHEDULER=eventbridge" in str(refused.value)
    assert "set SQS_FIFO=false, or JOBS_SCHEDULER=beat" in str(refused.value)
    assert Settings.from_env(fifo).jobs_scheduler == "beat"  # the same queue with beat is accepted
