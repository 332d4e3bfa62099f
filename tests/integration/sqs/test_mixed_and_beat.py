"""Repeats fired by a real ``celery beat`` onto SQS, and QUEUE_BACKEND/JOBS_BACKEND on different brokers."""

from __future__ import annotations

import time

import pytest

from bridge.sqs.admin import SqsAdmin
from tests.conftest import read_ledger, wait_for

pytestmark = [pytest.mark.sqs, pytest.mark.redis, pytest.mark.worker]


def sqs_env(sqs, url: str, **extra: str) -> dict[str, str]:
    return {**sqs.env(), "SQS_QUEUE_URL": url, **extra}


def test_beat_fires_repeats_onto_sqs_once_per_tick(sqs, start_worker, start_beat, make_bridge, redis_client):
    url = SqsAdmin(sqs.settings()).ensure_queue("repeats")
    env = sqs_env(sqs, url, QUEUE_BACKEND="sqs")
    start_worker("sqsw", **env)
    bridge = make_bridge(queue_backend="sqs", jobs_backend="sqs", sqs_queue_url=url,
                         aws_region="us-east-1", aws_endpoint_url_sqs=sqs.endpoint)  # fmt: skip
    bridge.jobs.schedule("ledger.record", {"key": "tick"}, every_ms=1000, idempotency_key="tick")
    start_beat("beat1", **env)
    start_beat("beat2", wait_for_lock=False, **env)  # a standby: it must not fire the same ticks

    assert wait_for(lambda: redis_client.llen("test:ledger") >= 4, timeout=60)
    assert bridge.jobs.cancel(name="ledger.record", idempotency_key="tick", every_ms=1000) is True
    time.sleep(3.0)  # runs already on the queue drain; no new tick fires
    settled = len(read_ledger(redis_client))
    time.sleep(2.0)  # proves no tick fires after the cancel: two would have by now
    lines = read_ledger(redis_client)
    assert len(lines) == settled
    assert len({line["id"] for line in lines}) == len(lines)  # each tick's run id once: no tick fired twice
    assert {line["worker"] for line in lines} == {"sqsw@bridge-test"}


def test_queue_on_redis_and_jobs_on_sqs_each_travel_their_own_broker(
    sqs, start_worker, start_beat, make_bridge, redis_client
):
    url = SqsAdmin(sqs.settings()).ensure_queue("scheduled")
    # One worker per backend, as the README shows: the same app, told which broker to consume.
    start_worker("redisw", **sqs_env(sqs, url, JOBS_BACKEND="sqs"))
    start_worker("sqsw", **sqs_env(sqs, url, QUEUE_BACKEND="sqs", JOBS_BACKEND="sqs"))
    bridge = make_bridge(jobs_backend="sqs", sqs_queue_url=url,
                         aws_region="us-east-1", aws_endpoint_url_sqs=sqs.endpoint)  # fmt: skip

    added = bridge.queue.add("ledger.record", {"key": "added"}, idempotency_key="added")
    one_off = bridge.jobs.schedule(
        "ledger.record", {"key": "one-off"}, idempotency_key="one-off", delay_ms=1_000
    )
    bridge.jobs.schedule("ledger.record", {"key": "repeat"}, every_ms=1000, idempotency_key="repeat", limit=2)
    start_beat("beat1", **sqs_env(sqs, url, JOBS_BACKEND="sqs"))

    assert (added.queue, one_off.queue) == ("celery", "scheduled")
    assert wait_for(lambda: redis_client.llen("test:ledger") >= 4, timeout=60)
    time.sleep(2.0)  # proves no extra run: a duplicate would be on the queue already and run in ms
    by_key: dict[str, set[str]] = {}
    for line in read_ledger(redis_client):
        by_key.setdefault(line["key"], set()).add(line["worker"])
    assert by_key == {
        "added": {"redisw@bridge-test"},  # queue.add: the app's Redis broker
        "one-off": {"sqsw@bridge-test"},  # jobs.schedule: SQS
        "repeat": {"sqsw@bridge-test"},  # beat publishes repeats through JOBS_BACKEND too
    }
    assert len(read_ledger(redis_client)) == 4  # added, one-off, and the repeat's two runs


def test_beat_fires_repeats_with_guards_in_dynamodb_when_redis_url_is_set(
    sqs, aws, nowhere, start_worker, start_beat, make_bridge, redis_client, server
):
    """GUARD_STORE=dynamodb with a REDIS_URL for beat (JOBS_SCHEDULER=beat, the default): a real
    ``celery beat`` keeps the repeat in Redis and fires it onto SQS; each run's dedupe claim is in
    the DynamoDB table, and the worker runs each tick once."""
    url = SqsAdmin(sqs.settings()).ensure_queue("beat-dynamodb")
    beat_env = {"REDIS_URL": server.url, "JOBS_SCHEDULER": "beat", "JOBS_SCHEDULER_ROLE_ARN": ""}
    env = aws.env(url, nowhere, server.url, **beat_env)
    start_worker("awsw", **env)
    bridge = make_bridge(
        **aws.settings(
            url, nowhere, redis_url=server.url, jobs_scheduler="beat", jobs_scheduler_role_arn=None
        )
    )
    repeat = bridge.jobs.schedule("ledger.record", {"key": "tick"}, every_ms=1000, idempotency_key="tick")
    assert [r.id for r in bridge.jobs.list()] == [repeat.id]
    start_beat("beat1", **env)

    assert wait_for(lambda: redis_client.llen("test:ledger") >= 3, timeout=60)
    assert bridge.jobs.cancel(name="ledger.record", idempotency_key="tick", every_ms=1000) is True
    time.sleep(3.0)  # runs already on the queue drain; no new tick fires
    lines = read_ledger(redis_client)
    assert len({line["id"] for line in lines}) == len(lines)  # each tick's run once
    assert {line["worker"] for line in lines} == {"awsw@bridge-test"}
    assert {line["key"] for line in lines} == {"tick"}
    assert {f"bridge:guard:{line['id']}" for line in lines} <= set(aws.table_keys("bridge:guard:"))
