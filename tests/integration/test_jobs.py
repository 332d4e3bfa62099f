"""Repeats: upserted and cancelled at run time, fired by real ``celery beat`` processes."""

from __future__ import annotations

import json
import subprocess
import time
from collections import Counter

import pytest

from bridge import ConfigError, InvalidPayload, InvalidSchedule
from bridge.jobs import Repeat
from bridge.worker.beat import BridgeScheduler
from tests.conftest import BEAT_LOCK, JOBS, ROOT, read_ledger, server_ms, wait_for

pytestmark = [pytest.mark.redis, pytest.mark.worker]


def snapshot(client):
    return {key: client.dump(key) for key in client.keys("*")}


def test_every_second_repeat_added_at_run_time_fires_then_cancel_stops_it(
    start_worker, start_beat, make_bridge, redis_client
):
    start_worker("w1", concurrency=2)
    start_beat()
    bridge = make_bridge()
    added_at = server_ms(redis_client)
    repeat = bridge.jobs.schedule("ledger.record", {"key": "tick"}, every_ms=1000, idempotency_key="tick")
    assert isinstance(repeat, Repeat)

    assert wait_for(lambda: len(read_ledger(redis_client)) >= 3, timeout=30), read_ledger(redis_client)
    runs = read_ledger(redis_client)
    # Generous on purpose (beat's loop is 1 s, and the machine may be busy); how fast a repeat
    # starts is measured in bench/, not here.
    assert runs[0]["at_ms"] - added_at <= 5000

    assert bridge.jobs.cancel(name="ledger.record", idempotency_key="tick", every_ms=1000) is True
    cancelled_at = server_ms(redis_client)
    time.sleep(2.5)  # proves the cancel holds: two more ticks would have fired by now
    late = [r for r in read_ledger(redis_client) if r["at_ms"] > cancelled_at + 1000]
    assert late == []
    assert bridge.jobs.list() == []
    assert bridge.jobs.cancel(name="ledger.record", idempotency_key="tick", every_ms=1000) is False


def test_upsert_keeps_one_entry_and_the_next_run_uses_the_new_data(
    start_worker, start_beat, make_bridge, redis_client
):
    start_worker("w1")
    start_beat()
    bridge = make_bridge()
    first = bridge.jobs.schedule("ledger.record", {"key": "v1"}, every_ms=500, idempotency_key="up")
    assert wait_for(lambda: any(r["key"] == "v1" for r in read_ledger(redis_client)), timeout=10)
    second = bridge.jobs.schedule("ledger.record", {"key": "v2"}, every_ms=500, idempotency_key="up")
    other = bridge.jobs.schedule("ledger.record", {"key": "other"}, every_ms=700, idempotency_key="up")

    assert first.id == second.id != other.id
    listed = bridge.jobs.list()
    assert sorted(r.id for r in listed) == sorted([first.id, other.id])
    assert wait_for(lambda: any(r["key"] == "v2" for r in read_ledger(redis_client)), timeout=10)
    upserted = next(r for r in listed if r.id == first.id)
    assert upserted.data == {"key": "v2"}
    assert upserted.run_count >= 1  # the upsert kept the run history


def test_two_beats_fire_each_tick_once_and_the_standby_takes_over(
    start_worker, start_beat, make_bridge, redis_client
):
    start_worker("w1", concurrency=2)
    holder = start_beat("beat1")
    start_beat("beat2", wait_for_lock=False)
    bridge = make_bridge()
    bridge.jobs.schedule("ledger.record", {"key": "both"}, every_ms=500, idempotency_key="both")
    time.sleep(3.0)  # the holder fires a few 500 ms ticks before it is killed

    holder.kill9()
    killed_at = server_ms(redis_client)
    assert wait_for(
        lambda: any(r["at_ms"] > killed_at for r in read_ledger(redis_client)), timeout=10, interval=0.2
    ), "the standby beat did not take over within 10 s"
    time.sleep(1.0)  # two more ticks after the takeover, to see none doubled
    runs = read_ledger(redis_client)
    assert len({r["id"] for r in runs}) == len(runs)  # no run twice, even across the takeover
    ticks = Counter(r["id"] for r in runs)
    assert set(ticks.values()) == {1}


def test_cancel_withdraws_a_run_that_is_queued_but_not_started(start_beat, make_bridge, redis_client):
    start_beat()  # no worker: the first run stays queued
    bridge = make_bridge()
    bridge.jobs.schedule("ledger.record", {"key": "queued"}, every_ms=60_000, idempotency_key="q")
    assert wait_for(lambda: redis_client.llen("app:jobs") == 1, timeout=10)

    assert bridge.jobs.cancel(name="ledger.record", idempotency_key="q", every_ms=60_000) is True
    assert redis_client.llen("app:jobs") == 0


def test_limit_ends_a_repeat(start_worker, start_beat, make_bridge, redis_client):
    start_worker("w1")
    start_beat()
    make_bridge().jobs.schedule("ledger.record", {"key": "three"}, every_ms=300, limit=3)
    assert wait_for(lambda: redis_client.llen("test:ledger") >= 3, timeout=10)
    time.sleep(1.5)  # proves the limit holds: five more 300 ms ticks would have fired
    assert len(read_ledger(redis_client)) == 3


def test_one_off_scheduled_job_goes_to_the_jobs_queue_and_can_be_cancelled(make_bridge, redis_client):
    bridge = make_bridge()
    job = bridge.jobs.schedule("ledger.record", {"key": "once"}, delay_ms=60_000, idempotency_key="r-42")
    assert job.queue == "app:jobs"
    assert bridge.jobs.cancel(name="ledger.record", idempotency_key="r-42") is True
    assert bridge.jobs.cancel(name="ledger.record", idempotency_key="r-42") is False
    now = bridge.jobs.schedule("ledger.record", {"key": "now"}, idempotency_key="r-43")
    assert redis_client.llen("app:jobs") == 1
    assert now.queue == "app:jobs"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"cron": "61 * * * *"}, "cron"),
        ({"cron": "0 6 * * *", "every_ms": 1000}, "cron"),
        ({"every_ms": 0}, "every_ms"),
        ({"every_ms": -5}, "every_ms"),
        ({"every_ms": 1.5}, "every_ms"),
        ({"cron": "0 6 * * *", "tz": "Mars/Olympus"}, "tz"),
        ({"every_ms": 1000, "start_at": "tomorrow"}, "start_at"),
        ({"every_ms": 1000, "limit": 0}, "limit"),
        ({"every_ms": 1000, "delay_ms": 5}, "delay_ms"),
        ({"tz": "UTC"}, "tz"),
    ],
)
def test_refused_schedule_stores_nothing(make_bridge, redis_client, kwargs, field):
    bridge = make_bridge()
    bridge.jobs.schedule("ledger.record", {"key": "seed"}, every_ms=5000, idempotency_key="seed")
    before = snapshot(redis_client)
    with pytest.raises(InvalidSchedule) as excinfo:
        bridge.jobs.schedule("ledger.record", {}, **kwargs)
    assert excinfo.value.field == field
    assert snapshot(redis_client) == before


def test_end_before_start_is_refused(make_bridge):
    from datetime import UTC, datetime

    with pytest.raises(InvalidSchedule, match="end_at"):
        make_bridge().jobs.schedule(
            "x.y", {}, every_ms=1000,
            start_at=datetime(2030, 1, 2, tzinfo=UTC), end_at=datetime(2030, 1, 1, tzinfo=UTC),
        )  # fmt: skip


TAGGED = [{"when": {"__type__": "datetime", "year": 2030}}, {"s": {"__type__": "interval"}}]


@pytest.mark.parametrize("data", TAGGED)
def test_a_repeats_data_holding_a_type_tag_is_refused_and_stores_nothing(make_bridge, redis_client, data):
    """redbeat's tagged JSON would read such data back as a date or schedule: refused, not changed."""
    bridge = make_bridge()
    before = snapshot(redis_client)
    with pytest.raises(InvalidPayload, match="__type__") as excinfo:
        bridge.jobs.schedule("ledger.record", data, every_ms=5000)
    assert excinfo.value.field == "data"
    assert snapshot(redis_client) == before


def jobs_cli(server, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [JOBS, *args], cwd=ROOT, env=server.env(), capture_output=True,
        text=True, timeout=60,
    )  # fmt: skip


def test_cli_lists_and_cancels_schedules(make_bridge, redis_client, server):
    bridge = make_bridge()
    bridge.jobs.schedule("reports.daily", {"kind": "sales"}, cron="0 6 * * *", tz="Europe/Berlin",
                         idempotency_key="sales")  # fmt: skip
    listed = jobs_cli(server, "schedules", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    [row] = json.loads(listed.stdout)
    assert (row["name"], row["cron"], row["tz"], row["idempotency_key"]) == (
        "reports.daily",
        "0 6 * * *",
        "Europe/Berlin",
        "sales",
    )
    assert row["next_run"].endswith(("T04:00:00+00:00", "T05:00:00+00:00"))  # 06:00 in Berlin
    assert "reports.daily" in jobs_cli(server, "schedules", "list").stdout

    cancel = ["schedules", "cancel", "--name", "reports.daily", "--key", "sales", "--cron", "0 6 * * *"]
    assert jobs_cli(server, *cancel).stdout.strip() == "cancelled"
    again = jobs_cli(server, *cancel)
    assert (again.returncode, again.stdout.strip()) == (0, "not found")
    assert bridge.jobs.list() == []
    bad = jobs_cli(server, "schedules", "cancel", "--name", "x")
    assert bad.returncode == 2
    assert "Traceback" not in bad.stderr


def test_beat_lock_is_short(start_beat, redis_client):
    start_beat()
    assert 0 < redis_client.pttl(BEAT_LOCK) <= 5000  # redbeat's default is 25 minutes


class OwnScheduler(BridgeScheduler):
    """An app's own subclass of the bridge's scheduler: it fires repeats too."""


@pytest.mark.parametrize(
    "scheduler",
    ["django_celery_beat.schedulers:DatabaseScheduler", "celery.beat:Scheduler", "no.such.module:Scheduler"],
)
def test_a_repeat_is_refused_when_the_apps_beat_would_never_fire_it(make_bridge, redis_client, scheduler):
    bridge = make_bridge({"beat_scheduler": scheduler})  # set before Bridge(app): a custom one is kept
    before = snapshot(redis_client)
    with pytest.raises(ConfigError) as refused:
        bridge.jobs.schedule("ledger.record", {}, every_ms=1000, idempotency_key="never")
    assert scheduler in str(refused.value)
    assert "bridge.worker.beat:BridgeScheduler" in str(refused.value)
    assert snapshot(redis_client) == before  # nothing stored
    # A one-off needs no beat: it is accepted.
    job = bridge.jobs.schedule("ledger.record", {}, delay_ms=60_000, idempotency_key="later")
    assert not job.deduplicated


def test_a_subclass_of_the_bridges_scheduler_fires_repeats(make_bridge):
    bridge = make_bridge({"beat_scheduler": f"{__name__}:OwnScheduler"})
    repeat = bridge.jobs.schedule("ledger.record", {}, every_ms=1000, idempotency_key="own")
    assert [r.id for r in bridge.jobs.list()] == [repeat.id]


def test_page_reads_one_slice_and_limit_zero_only_the_count(make_bridge):
    """jobs.page: a slice by position in beat's order, and how many entries beat's schedule holds;
    with limit 0 (the dashboard asks it every refresh) the count alone, no repeat read."""
    bridge = make_bridge()
    for minutes in (30, 10, 20):
        bridge.jobs.schedule("ledger.record", {}, every_ms=minutes * 60_000, idempotency_key=f"m{minutes}")
    first, total = bridge.jobs.page(0, 2)
    rest, _ = bridge.jobs.page(2, 2)
    assert total == 3
    assert (len(first), len(rest)) == (2, 1)
    assert sorted(r.idempotency_key for r in first + rest) == ["m10", "m20", "m30"]
    assert bridge.jobs.page(0, 0) == ([], 3)
