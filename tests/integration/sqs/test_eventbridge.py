"""Repeats by EventBridge Scheduler (JOBS_SCHEDULER=eventbridge) on moto: no beat, no Redis.

moto's Scheduler stores schedules but never fires them, so a test fires one as
EventBridge does: it takes the stored target input, puts the scheduled time in,
and sends it to the queue (twice, as an at-least-once delivery may).
"""

from __future__ import annotations

import base64
import json
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import boto3
import pytest

from bridge import ConfigError, InvalidSchedule
from bridge.core.ids import job_id_for
from bridge.sqs.admin import SqsAdmin
from bridge.sqs.eventbridge import SCHEDULED_TIME
from tests.conftest import read_ledger, wait_for
from tests.integration.sqs.aws_only import ROLE

pytestmark = [pytest.mark.sqs, pytest.mark.worker]


def scheduler(sqs):
    return boto3.client("scheduler", region_name="us-east-1", endpoint_url=sqs.endpoint)


def run_kwargs(schedule: dict) -> dict:
    """What the schedule's runs carry: the ``bridge.sqs_run`` task's kwargs in the Celery message."""
    message = json.loads(schedule["Target"]["Input"])
    assert message["headers"]["task"] == "bridge.sqs_run"
    return json.loads(base64.b64decode(message["body"]))[1]


def test_schedule_upserts_cancel_deletes_and_list_lists_the_apps_schedules(sqs, aws, nowhere, make_bridge):
    url = SqsAdmin(sqs.settings()).ensure_queue("repeats")
    bridge = make_bridge(**aws.settings(url, nowhere))
    group = bridge.jobs_backend.repeat_scheduler().group
    assert group == f"bridge-{bridge.app.main}"  # one schedule group per app

    daily = bridge.jobs.schedule("ledger.record", {"key": "sales"}, cron="0 6 * * *", idempotency_key="sales",
                                 tz="Europe/Berlin")  # fmt: skip
    again = bridge.jobs.schedule("ledger.record", {"key": "sales-v2"}, cron="0 6 * * *",
                                 idempotency_key="sales", tz="Europe/Berlin")  # fmt: skip
    assert again.id == daily.id  # the same repeat, updated in place
    stored = scheduler(sqs).get_schedule(Name=daily.id, GroupName=group)
    assert (stored["ScheduleExpression"], stored["ScheduleExpressionTimezone"]) == (
        "cron(0 6 * * ? *)", "Europe/Berlin",
    )  # fmt: skip
    assert (stored["Target"]["Arn"], stored["Target"]["RoleArn"]) == (
        "arn:aws:sqs:us-east-1:123456789012:repeats", ROLE,
    )  # fmt: skip
    assert run_kwargs(stored)["data"] == {"key": "sales-v2"}

    bridge.jobs.schedule("cache.warm", {}, every_ms=300_000)
    listed = {(r.name, r.idempotency_key, r.cron, r.every_ms, json.dumps(r.data)) for r in bridge.jobs.list()}
    assert listed == {
        ("ledger.record", "sales", "0 6 * * *", None, '{"key": "sales-v2"}'),
        ("cache.warm", None, None, 300_000, "{}"),
    }
    assert all(r.next_run is not None and r.queue == "repeats" for r in bridge.jobs.list())
    [warm] = [r for r in bridge.jobs.list() if r.name == "cache.warm"]
    assert (
        scheduler(sqs).get_schedule(Name=warm.id, GroupName=group)["ScheduleExpression"] == "rate(5 minutes)"
    )

    with pytest.raises(InvalidSchedule) as refused:
        bridge.jobs.schedule("cache.warm", {}, every_ms=30_000)
    assert refused.value.field == "every_ms"
    assert "60000" in str(refused.value)
    with pytest.raises(InvalidSchedule) as refused:
        bridge.jobs.schedule("cache.warm", {}, every_ms=600_000, limit=3)
    assert refused.value.field == "limit"
    assert len(scheduler(sqs).list_schedules(GroupName=group)["Schedules"]) == 2  # the refused ones: nothing

    assert bridge.jobs.cancel(name="ledger.record", idempotency_key="sales", cron="0 6 * * *") is True
    assert bridge.jobs.cancel(name="ledger.record", idempotency_key="sales", cron="0 6 * * *") is False
    assert [r.name for r in bridge.jobs.list()] == ["cache.warm"]


def test_a_run_eventbridge_delivers_twice_runs_once_and_the_next_run_runs_too(
    sqs, aws, nowhere, start_worker, make_bridge, redis_client, server
):
    url = SqsAdmin(sqs.settings()).ensure_queue("fired")
    start_worker("awsw", concurrency=2, **aws.env(url, nowhere, server.url))
    bridge = make_bridge(**aws.settings(url, nowhere))
    repeat = bridge.jobs.schedule("ledger.record", {"key": "tick"}, every_ms=60_000)
    group = bridge.jobs_backend.repeat_scheduler().group
    target = scheduler(sqs).get_schedule(Name=repeat.id, GroupName=group)["Target"]
    assert target["Arn"].endswith(":fired")

    client = boto3.client("sqs", region_name="us-east-1", endpoint_url=sqs.endpoint)
    for at in ("2026-01-05T06:00:00Z", "2026-01-05T06:00:00Z", "2026-01-05T06:01:00Z"):
        client.send_message(QueueUrl=url, MessageBody=target["Input"].replace(SCHEDULED_TIME, at))

    assert wait_for(lambda: redis_client.llen("test:ledger") >= 2, timeout=60)
    time.sleep(2.0)  # the idle workers would have run a second copy of the first run by now
    lines = read_ledger(redis_client)
    assert Counter(line["id"] for line in lines) == {
        job_id_for("ledger.record", f"{repeat.id}@2026-01-05T06:00:00Z"): 1,
        job_id_for("ledger.record", f"{repeat.id}@2026-01-05T06:01:00Z"): 1,
    }
    assert [line["data"] for line in lines] == [{}, {}]  # the repeat's data arrived as the task's kwargs
    assert {line["key"] for line in lines} == {"tick"}


def test_with_guards_in_dynamodb_and_beat_chosen_but_no_redis_a_repeat_is_refused_and_nothing_starts(
    sqs, aws, nowhere, make_bridge
):
    url = SqsAdmin(sqs.settings()).ensure_queue("no-beat-store")
    bridge = make_bridge(**aws.settings(url, nowhere, jobs_scheduler="beat", jobs_scheduler_role_arn=None))
    with pytest.raises(ConfigError, match=r"JOBS_SCHEDULER=eventbridge .* or REDIS_URL"):
        bridge.jobs.schedule("cache.warm", {}, every_ms=60_000)
    assert bridge.jobs.list() == []
    assert bridge.jobs.cancel(name="cache.warm", every_ms=60_000) is False
    assert not bridge.queue.add(
        "ledger.record", {}, idempotency_key="still-adds"
    ).deduplicated  # the rest works


def test_start_at_and_end_at_become_the_schedules_start_and_end_dates(sqs, aws, nowhere, make_bridge):
    """A repeat bounded to the future: EventBridge stores its window, and jobs.list gives it back."""
    url = SqsAdmin(sqs.settings()).ensure_queue("bounded")
    bridge = make_bridge(**aws.settings(url, nowhere))
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
    end = start + timedelta(days=30)
    repeat = bridge.jobs.schedule("ledger.record", {}, cron="0 6 * * *", start_at=start, end_at=end)

    group = bridge.jobs_backend.repeat_scheduler().group
    stored = scheduler(sqs).get_schedule(Name=repeat.id, GroupName=group)
    assert (stored["StartDate"], stored["EndDate"], stored["State"]) == (start, end, "ENABLED")
    [listed] = bridge.jobs.list()
    assert (listed.start_at, listed.end_at) == (start, end)
    assert start <= listed.next_run <= start + timedelta(days=1)


def test_a_start_at_already_past_is_not_sent_so_the_upsert_at_every_app_start_keeps_working(
    sqs, aws, nowhere, make_bridge
):
    """An app that schedules its repeat with a fixed start_at at every start: AWS refuses a recurring
    schedule starting more than 5 minutes ago (moto too, for a cron), so the past start is left out."""
    url = SqsAdmin(sqs.settings()).ensure_queue("started")
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    group = None
    for _ in range(2):  # the first start of the app, and the next one
        bridge = make_bridge(**aws.settings(url, nowhere))
        repeat = bridge.jobs.schedule("ledger.record", {}, cron="*/5 * * * *", start_at=start)
        group = bridge.jobs_backend.repeat_scheduler().group
    stored = scheduler(sqs).get_schedule(Name=repeat.id, GroupName=group)
    assert "StartDate" not in stored  # it runs from now: every 5 minutes, the next one within 5
    assert stored["State"] == "ENABLED"
    [listed] = bridge.jobs.list()
    assert listed.start_at == start  # what the app asked for, read back
    assert listed.next_run is not None


def test_an_end_at_already_past_keeps_the_repeat_listed_and_it_never_fires(sqs, aws, nowhere, make_bridge):
    """As with beat: a repeat whose end has passed is accepted (an app's start does not fail on it),
    listed with no next run, and its schedule is stored disabled."""
    url = SqsAdmin(sqs.settings()).ensure_queue("ended")
    bridge = make_bridge(**aws.settings(url, nowhere))
    end = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    for _ in range(2):
        repeat = bridge.jobs.schedule("ledger.record", {}, every_ms=60_000, end_at=end)
    assert repeat.next_run is None

    stored = scheduler(sqs).get_schedule(
        Name=repeat.id, GroupName=bridge.jobs_backend.repeat_scheduler().group
    )
    assert stored["State"] == "DISABLED"
    assert "EndDate" not in stored
    [listed] = bridge.jobs.list()
    assert (listed.end_at, listed.next_run) == (end, None)
    assert bridge.jobs.cancel(name="ledger.record", every_ms=60_000) is True


def test_a_key_too_long_for_a_schedules_description_is_refused_and_nothing_is_stored(
    sqs, aws, nowhere, make_bridge
):
    """EventBridge keeps a schedule's description to 512 characters, and the description holds the
    key with the rule: a key within the bridge's own 512 that overflows it is refused naming
    idempotency_key and the fix, before anything is created."""
    url = SqsAdmin(sqs.settings()).ensure_queue("long-keys")
    bridge = make_bridge(**aws.settings(url, nowhere))
    with pytest.raises(InvalidSchedule) as refused:
        bridge.jobs.schedule("ledger.record", {}, cron="0 6 * * *", idempotency_key="k" * 490)
    assert refused.value.field == "idempotency_key"
    assert "EventBridge takes 512" in str(refused.value)
    assert "hash it" in str(refused.value)
    assert bridge.jobs.list() == []
