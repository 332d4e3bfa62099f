"""Static ``beat_schedule`` entries under the bridge's scheduler, beside the bridge's repeats.

The app is written as Celery's docs write one (``tests/apps/docs_app``: its own config
module and broker, static entries of every schedule type Celery ships, a schedule
class of its own, a result backend that makes beat add ``celery.backend_cleanup``),
run by real ``celery worker`` and ``celery beat`` processes.
"""

from __future__ import annotations

import json
import re
import time
import urllib.request
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis
from celery import Celery
from celery.schedules import crontab, solar

from bridge import Bridge
from tests.conftest import CeleryProcess, Server, wait_for

pytestmark = [pytest.mark.redis, pytest.mark.worker]

APP = "tests.apps.docs_app"
RUNS = "test:docs:runs"  # tests/apps/docs_app/tasks.py (not imported: importing it builds the app)
GATE = "test:docs:gate"  # tests/apps/docs_app/schedules.py
STATIC = ("timedelta", "number", "crontab", "solar", "gated")


def labels(client: redis.Redis) -> Counter[str]:
    return Counter(json.loads(line)["label"] for line in client.lrange(RUNS, 0, -1))


def next_due(client: redis.Redis, name: str) -> float:
    """When beat will next fire the entry ``name`` (redbeat's sorted set, seconds since the epoch)."""
    score = client.zscore("bridge:repeat::schedule", f"bridge:repeat:{name}")
    assert score is not None, f"{name} is not in the schedule"
    return float(score)


@pytest.fixture
def docs_app(system_redis: Server, redis_client: redis.Redis, tmp_path: Path):
    (tmp_path / "results").mkdir()
    env = system_redis.env(DOCS_BROKER_URL=system_redis.url, DOCS_RESULTS_DIR=str(tmp_path / "results"))
    for name in ("REDIS_URL", "QUEUE_BACKEND"):  # the app brings its own broker: the bridge follows it
        env.pop(name)
    processes: list[CeleryProcess] = []

    def start(*args: str) -> CeleryProcess:
        log = tmp_path / f"{args[0]}.log"
        process: CeleryProcess = CeleryProcess.spawn([*args, "--loglevel=INFO"], log, env, app=APP)
        processes.append(process)
        return process

    start.env = env  # type: ignore[attr-defined] - for other processes of the app (the dashboard)
    yield start
    for process in processes:
        process.stop()
        print(f"--- last lines of {process.log.name} ---\n{process.tail()}")  # shown if the test failed


def test_static_entries_of_every_kind_fire_beside_the_bridges_repeats(
    docs_app, system_redis: Server, redis_client: redis.Redis
) -> None:
    docs_app("worker", "-c", "2", "--without-gossip", "--without-mingle", "--without-heartbeat")
    beat = docs_app("beat", "-s", "/dev/null")
    producer = Celery("proj")
    producer.conf.broker_url = system_redis.url
    bridge = Bridge(producer)
    bridge.jobs.schedule("docs.record", {"label": "repeat"}, every_ms=1000, idempotency_key="beside")
    berlin = Celery("tz", set_as_current=False)
    berlin.conf.timezone = "Europe/Berlin"  # the docs app's time zone, for its schedules

    fired = lambda: all(labels(redis_client)[k] >= 2 for k in ("timedelta", "number", "repeat"))  # noqa: E731
    assert wait_for(fired, timeout=45), f"runs: {labels(redis_client)}\n{beat.tail()}"
    assert beat.proc.poll() is None, beat.tail()

    # As with Celery's own scheduler, a static entry's first run is its schedule's next
    # time after beat stored it: the next sunset, the next 04:00 in the app's time zone.
    # In the app's own zone: Celery before 5.4 reads a crontab against the clock it is given.
    now = datetime.now(UTC).astimezone(berlin.timezone)
    for name, rule in (
        ("at-sunset", solar("sunset", 52.52, 13.40, app=berlin)),
        ("celery.backend_cleanup", crontab(minute="0", hour="4", app=berlin)),
    ):
        expected = now + rule.remaining_estimate(now)
        assert abs(next_due(redis_client, name) - expected.timestamp()) < 300, name

    # The app's own schedule class keeps its own rule: closed gate, no run; open gate, runs.
    assert labels(redis_client)["gated"] == 0
    redis_client.set(GATE, 1)
    assert wait_for(lambda: labels(redis_client)["gated"] >= 2, timeout=20), labels(redis_client)
    # The bridge's own listing shows its repeat only, not the app's static entries.
    assert [r.idempotency_key for r in bridge.jobs.list()] == ["beside"]
    assert bridge.stats(["app:jobs"])["app:jobs"].scheduled == 1
    # The every-minute crontab fires at the start of the next minute (at most a minute away).
    assert wait_for(lambda: labels(redis_client)["crontab"] >= 1, timeout=75), labels(redis_client)
    assert beat.proc.poll() is None, beat.tail()


def test_beat_restarts_with_the_static_entries_it_stored(docs_app, redis_client: redis.Redis) -> None:
    beat = docs_app("beat", "-s", "/dev/null")
    assert wait_for(lambda: redis_client.zcard("bridge:repeat::schedule") >= len(STATIC) + 1, 30), beat.tail()
    beat.stop()
    assert beat.proc.returncode == 0, beat.tail()
    again = docs_app("beat", "-s", "/dev/null")
    time.sleep(3)  # long enough for several ticks (beat_max_loop_interval is 1 s)
    assert again.proc.poll() is None, again.tail()
    assert "Traceback" not in again.log.read_text(), again.tail()


def test_the_dashboard_counts_the_static_entries_and_lists_only_the_bridges_repeats(
    docs_app, system_redis: Server, redis_client: redis.Redis
) -> None:
    """beat's schedule holds the app's static entries too: the Repeats page says so, and lists the repeat."""
    from tests.integration.cli.dashboard_ui import start_dashboard, stop_dashboard

    beat = docs_app("beat", "-s", "/dev/null")
    assert wait_for(lambda: redis_client.zcard("bridge:repeat::schedule") >= len(STATIC) + 1, 30), beat.tail()
    producer = Celery("proj")
    producer.conf.broker_url = system_redis.url
    Bridge(producer).jobs.schedule("docs.record", {"label": "repeat"}, cron="0 6 * * *", idempotency_key="r")
    dashboard = start_dashboard(docs_app.env, app=APP)
    try:
        with urllib.request.urlopen(dashboard.url + "/repeats", timeout=30) as response:
            html = response.read().decode()
    finally:
        stop_dashboard(dashboard)
    assert "1-7 of 7 entries of beat&#39;s schedule" in html  # 5 static, backend_cleanup, 1 repeat
    assert re.search(r"6 of these entries are the app's own static\s*<code>beat_schedule</code>", html), html
    assert html.count("<tr data-id=") == 1
    assert "cron 0 6 * * *" in html
