"""QUEUE_BACKEND=broker on the real RabbitMQ of this machine: an app that keeps its broker adopts the bridge.

Dedupe guards, delayed jobs and repeats live in the guard store (the system Redis,
REDIS_URL); the jobs travel on RabbitMQ, published by Celery's own producer, and
real ``celery worker`` / ``celery beat`` processes run them.
"""

from __future__ import annotations

import gc
import json
import os
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from celery import Celery
from kombu import Connection

from bridge import BackendUnavailable, Bridge
from tests.conftest import JOBS, CeleryProcess, Server, server_ms, wait_for

pytestmark = [pytest.mark.redis, pytest.mark.worker, pytest.mark.rabbitmq]

APP = "tests.apps.amqp_app"
RUNS = "test:amqp:runs"  # tests/apps/amqp_app.py (not imported: importing it binds its Bridge)


@pytest.fixture
def rabbit(amqp_url: str, system_redis: Server, redis_client: redis.Redis) -> Iterator[str]:
    """RabbitMQ, with the queues the tests use emptied before and after."""

    def purge() -> None:
        with Connection(amqp_url) as conn:
            channel = conn.default_channel
            for queue in ("celery", "app:jobs"):
                try:
                    channel.queue_purge(queue)
                except Exception:  # not declared yet
                    channel = conn.channel()

    purge()
    yield amqp_url
    purge()


@pytest.fixture
def producer(rabbit: str, system_redis: Server, monkeypatch: pytest.MonkeyPatch) -> Iterator[Bridge]:
    """The app's producer side, configured as the app is: its broker, and REDIS_URL for the guard store."""
    monkeypatch.setenv("REDIS_URL", system_redis.url)
    monkeypatch.delenv("QUEUE_BACKEND", raising=False)
    app = Celery("rabbit-producer", set_as_current=False)
    app.conf.update(broker_url=rabbit, result_backend=system_redis.url)
    bridge = Bridge(app)
    yield bridge
    # An AsyncResult a test followed is in a reference cycle: collected now, its __del__
    # unsubscribes while the app is open, not later in another test's thread (on Celery
    # 5.3 with redis-py 5, against a closed pool, that deadlocks).
    gc.collect()
    bridge.close()
    app.backend.client.connection_pool.disconnect()  # the result backend's, used by AsyncResult
    app.close()


@pytest.fixture
def start(rabbit: str, system_redis: Server, tmp_path: Path) -> Iterator:
    processes: list[CeleryProcess] = []

    def run(*args: str, name: str = "worker", **extra_env: str) -> CeleryProcess:
        env = system_redis.env(TEST_AMQP_URL=rabbit, **extra_env)
        env.pop("QUEUE_BACKEND")  # the app's broker decides: RabbitMQ, so QUEUE_BACKEND=broker
        log = tmp_path / f"{name}.log"
        process: CeleryProcess = CeleryProcess.spawn([*args, "--loglevel=INFO"], log, env, app=APP)
        processes.append(process)
        return process

    yield run
    for process in processes:
        process.stop()
        print(f"--- last lines of {process.log.name} ---\n{process.tail()}")  # shown if the test failed


def worker_args(name: str) -> list[str]:
    return ["worker", "-n", f"{name}@rabbit", "-c", "2", "--without-gossip", "--without-mingle",
            "--without-heartbeat"]  # fmt: skip


def runs(client: redis.Redis) -> list[dict]:
    return [json.loads(line) for line in client.lrange(RUNS, 0, -1)]


def test_the_backend_follows_the_apps_broker(producer: Bridge) -> None:
    assert producer.settings.queue_backend == "broker"
    assert type(producer.backend).__name__ == "BrokerBackend"


def test_adds_dedupe_and_a_delay_each_run_once(producer: Bridge, start, redis_client: redis.Redis) -> None:
    jobs = [producer.queue.add("amqp.record", {"key": f"k{i}"}, idempotency_key=f"k{i}") for i in range(3)]
    again = producer.queue.add("amqp.record", {"key": "k0"}, idempotency_key="k0")
    assert again.deduplicated
    assert again.id == jobs[0].id
    # queue.add returns a Job: the producer is left subscribed to no job's result channel.
    assert producer.app.backend.result_consumer.subscribed_to == set()
    added_at = server_ms(redis_client)
    delayed = producer.queue.add("amqp.record", {"key": "later"}, delay_ms=1500, idempotency_key="later")
    assert producer.queue.add(
        "amqp.record", {"key": "later"}, delay_ms=1500, idempotency_key="later"
    ).deduplicated
    assert delayed.due_ms is not None
    start(*worker_args("w1"))
    assert wait_for(lambda: len(runs(redis_client)) >= 4, timeout=45)
    time.sleep(2.0)  # a second run of any of them would show up by now
    ran = runs(redis_client)
    assert Counter(r["key"] for r in ran) == {"k0": 1, "k1": 1, "k2": 1, "later": 1}
    assert {r["id"] for r in ran} == {j.id for j in jobs} | {delayed.id}
    assert delayed.due_ms - added_at >= 1400
    assert producer.app.AsyncResult(delayed.id).get(timeout=10) == "later"


def test_racing_producers_send_one_job_per_key(producer: Bridge, start, redis_client: redis.Redis) -> None:
    keys = [f"race-{i}" for i in range(30)]
    sent: list[str] = []
    lock = threading.Lock()

    def add_all() -> None:
        for key in keys:
            job = producer.queue.add("amqp.record", {"key": key}, idempotency_key=key)
            if not job.deduplicated:
                with lock:
                    sent.append(key)

    threads = [threading.Thread(target=add_all) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(sent) == sorted(keys)  # each key sent by exactly one producer
    start(*worker_args("w1"))
    assert wait_for(lambda: len(runs(redis_client)) >= len(keys), timeout=60)
    time.sleep(1.5)  # proves no run twice: RabbitMQ would hand a duplicate out at once
    assert Counter(r["key"] for r in runs(redis_client)) == dict.fromkeys(keys, 1)


def test_delayed_jobs_survive_kill9_of_every_worker(
    producer: Bridge, start, redis_client: redis.Redis
) -> None:
    first = start(*worker_args("w1"), name="w1")
    delayed = [producer.queue.add("amqp.record", {"key": f"d{i}"}, delay_ms=3000, idempotency_key=f"d{i}")
               for i in range(5)]  # fmt: skip
    first.kill9()  # every worker gone while the jobs wait: they wait in Redis, not in a worker
    assert producer.backend.delayed_count("celery") == 5  # type: ignore[attr-defined]
    time.sleep(3.5)  # past the jobs' 3 s delay, with no worker: they must still wait
    assert runs(redis_client) == []  # no worker, no run
    start(*worker_args("w2"), name="w2")
    assert wait_for(lambda: len(runs(redis_client)) >= 5, timeout=45)
    time.sleep(1.5)  # proves no run twice: a second promotion would publish and run in ms
    assert Counter(r["id"] for r in runs(redis_client)) == {job.id: 1 for job in delayed}
    assert producer.backend.delayed_count("celery") == 0  # type: ignore[attr-defined]


def test_a_cancelled_delayed_job_never_runs(producer: Bridge, start, redis_client: redis.Redis) -> None:
    producer.jobs.schedule("amqp.record", {"key": "cancelled"}, delay_ms=1500, idempotency_key="c")
    kept = producer.jobs.schedule("amqp.record", {"key": "kept"}, delay_ms=1500, idempotency_key="kept")
    assert producer.jobs.cancel(name="amqp.record", idempotency_key="c") is True
    assert producer.jobs.cancel(name="amqp.record", idempotency_key="c") is False
    start(*worker_args("w1"))
    assert wait_for(lambda: len(runs(redis_client)) >= 1, timeout=45)
    time.sleep(2.0)  # proves the cancelled job never runs: it was due with the kept one
    assert [r["id"] for r in runs(redis_client)] == [kept.id]


def test_repeats_fire_through_beat_once_per_tick(producer: Bridge, start, redis_client: redis.Redis) -> None:
    start(*worker_args("w1"))
    start("beat", "-s", os.devnull, name="beat")
    repeat = producer.jobs.schedule("amqp.record", {"key": "tick"}, every_ms=1000, idempotency_key="tick")
    assert wait_for(lambda: len(runs(redis_client)) >= 3, timeout=45)
    assert producer.jobs.cancel(name="amqp.record", idempotency_key="tick", every_ms=1000)
    ids = [r["id"] for r in runs(redis_client)]
    assert len(ids) == len(set(ids))  # no tick ran twice
    assert producer.jobs.list() == []
    assert repeat.id.startswith("repeat-")


def test_a_failed_publish_frees_the_key(rabbit: str, system_redis: Server, redis_client: redis.Redis,
                                        monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setenv("REDIS_URL", system_redis.url)
    down = Celery("rabbit-down", set_as_current=False)
    down.conf.update(broker_url="amqp://guest:guest@127.0.0.1:1//", task_publish_retry=False,
                     broker_connection_timeout=1, broker_connection_max_retries=0)  # fmt: skip
    bridge = Bridge(down)
    up = Celery("rabbit-up", set_as_current=False)
    up.conf.update(broker_url=rabbit)
    retry = Bridge(up)
    try:
        with pytest.raises(BackendUnavailable) as refused:
            bridge.queue.add("amqp.record", {"key": "x"}, idempotency_key="x")
        assert "retrying with the same idempotency_key is safe" in str(refused.value)
        assert redis_client.keys("bridge:guard:*") == []  # no claimed key without a job
        assert not retry.queue.add("amqp.record", {"key": "x"}, idempotency_key="x").deduplicated
    finally:
        bridge.close()
        retry.close()


def test_adds_follow_the_apps_task_routes_as_apply_async_does(
    rabbit: str, system_redis: Server, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An app that routes a task to its own queue (``task_routes``, as Celery's routing docs write
    it): an add without ``queue=`` lands where ``apply_async`` would send it, delayed or not, and
    ``queue=`` still overrides the route."""
    monkeypatch.setenv("REDIS_URL", system_redis.url)
    app = Celery("rabbit-routed", set_as_current=False)
    app.conf.update(
        broker_url=rabbit, task_routes={"amqp.record": {"queue": "reports"}, "amqp.block": "slow"}
    )
    bridge = Bridge(app)

    def waiting(queue: str) -> int:
        with Connection(rabbit) as conn:
            return int(conn.default_channel.queue_declare(queue, passive=True).message_count)

    try:
        with Connection(rabbit) as conn:
            for queue in ("reports", "slow"):
                conn.default_channel.queue_declare(queue, durable=True, auto_delete=False)
                conn.default_channel.queue_purge(queue)
        app.send_task("amqp.record", kwargs={"key": "by-celery"})
        now = bridge.queue.add("amqp.record", {"key": "now"}, idempotency_key="now")
        later = bridge.queue.add("amqp.record", {"key": "later"}, delay_ms=300)
        blocked = bridge.queue.add("amqp.block", {"key": "b"})
        chosen = bridge.queue.add("amqp.record", {"key": "chosen"}, queue="slow")
        assert (now.queue, later.queue, blocked.queue, chosen.queue) == ("reports", "reports", "slow", "slow")
        assert bridge.queue.add("amqp.record", {"key": "now"}, idempotency_key="now").deduplicated
        assert wait_for(lambda: bridge.backend.promote_due() is None and waiting("reports") == 3, timeout=20)
        assert waiting("slow") == 2
        assert waiting("celery") == 0
    finally:
        with Connection(rabbit) as conn:
            for queue in ("reports", "slow"):
                conn.default_channel.queue_purge(queue)
        bridge.close()
        app.close()


def test_cancelling_a_repeat_whose_last_run_cannot_be_revoked_says_so(
    producer: Bridge, start, rabbit: str, system_redis: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A published run cannot be taken back from RabbitMQ, so cancel revokes it; with the broker
    unreachable that is reported, and the repeat itself is gone (no further tick fires)."""
    producer.jobs.schedule("amqp.record", {"key": "tick"}, every_ms=1000, idempotency_key="tick")
    beat = start("beat", "-s", os.devnull, name="beat")
    assert wait_for(lambda: [r.run_count for r in producer.jobs.list()] >= [1], timeout=45)  # a run published
    beat.stop()
    monkeypatch.setenv("REDIS_URL", system_redis.url)
    down = Celery("rabbit-down", set_as_current=False)
    down.conf.update(broker_url="amqp://guest:guest@127.0.0.1:1//", broker_connection_timeout=1,
                     broker_connection_max_retries=0, task_publish_retry=False)  # fmt: skip
    bridge = Bridge(down)
    try:
        with pytest.raises(BackendUnavailable, match=r"^jobs\.cancel \(revoking the last run\) failed"):
            bridge.jobs.cancel(name="amqp.record", idempotency_key="tick", every_ms=1000)
        assert producer.jobs.list() == []
    finally:
        bridge.close()


def jobs_cli(rabbit: str, system_redis: Server, *args: str) -> subprocess.CompletedProcess[str]:
    """``jobs -A tests.apps.amqp_app ...`` as a user runs it beside the app."""
    env = system_redis.env(TEST_AMQP_URL=rabbit)
    env.pop("QUEUE_BACKEND")
    return subprocess.run(
        [JOBS, "-A", APP, *args], env=env, capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip


def test_stats_and_dead_letters(producer: Bridge, start, rabbit: str, system_redis: Server,
                                redis_client: redis.Redis) -> None:  # fmt: skip
    for i in range(3):
        producer.queue.add("amqp.record", {"key": f"w{i}"})
    producer.queue.add("amqp.record", {"key": "later"}, delay_ms=600_000)
    producer.jobs.schedule("amqp.record", {"key": "tick"}, every_ms=60_000)
    expected = {"waiting": 3, "active": 0, "delayed": 1, "scheduled": 0, "failed": 0}
    assert wait_for(lambda: producer.stats(["celery"])["celery"].as_json() == expected, timeout=20), (
        producer.stats(["celery"])
    )
    assert producer.stats(["app:jobs"])["app:jobs"].scheduled == 1
    assert producer.stats(["never-declared"])["never-declared"].waiting == 0  # counted, not created

    start(*worker_args("w1"), name="w1")
    assert wait_for(lambda: len(runs(redis_client)) == 3, timeout=45)
    producer.queue.add("amqp.block", {"key": "held"})
    assert wait_for(lambda: redis_client.llen("test:amqp:blocked") == 1, timeout=30)
    assert wait_for(lambda: producer.stats(["celery"])["celery"].active == 1, timeout=20)
    redis_client.rpush("test:amqp:release", "go")

    # A job that fails for good is a dead letter in the guard store; a retry publishes it again.
    failed = producer.queue.add("amqp.fail_once", {"key": "order-7"})
    assert wait_for(lambda: producer.stats(["celery"])["celery"].failed == 1, timeout=30)
    listed = jobs_cli(rabbit, system_redis, "dlq", "list", "--queue", "celery", "--json")
    assert listed.returncode == 0, listed.stderr
    [letter] = json.loads(listed.stdout)
    assert (letter["id"], letter["exc_type"]) == (failed.id, "PaymentDeclined")
    assert letter["data"] == {"key": "order-7"}
    retried = jobs_cli(rabbit, system_redis, "dlq", "retry", "--queue", "celery", "--id", failed.id, "--json")
    assert retried.returncode == 0, retried.stderr
    assert json.loads(retried.stdout) == {"retried": 1}
    assert wait_for(lambda: any(r["key"] == "order-7" for r in runs(redis_client)), timeout=30)
    assert [r["id"] for r in runs(redis_client) if r["key"] == "order-7"] == [failed.id]  # its own id
    shown = jobs_cli(rabbit, system_redis, "stats", "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["celery"] == {"waiting": 0, "active": 0, "delayed": 1, "scheduled": 0,
                                                  "failed": 0}  # fmt: skip


def test_sigterm_while_jobs_flow_finishes_promptly_and_reruns_no_finished_job(
    producer: Bridge, start, redis_client: redis.Redis
) -> None:
    """The Redis backend's warm-shutdown test on RabbitMQ: 600 quick jobs; three workers of 4
    processes (prefetch 4 each) in turn get SIGTERM 0.3 s after they are ready. A job just handed
    to a pool process when the consumer closes is kept on the pool's books
    (``bridge/worker/poolflush.py``): it finishes and is acked, not put back by the channel's
    close to run again, and its process does not hold the shutdown 30 s. A fourth worker drains
    the rest: every job runs, once."""
    ids = {producer.queue.add("amqp.record", {"key": f"q{n}"}).id for n in range(600)}
    shutdowns = []
    for n in range(3):
        worker = start("worker", "-n", f"term{n}@rabbit", "-c", "4", "--without-gossip", "--without-mingle",
                       "--without-heartbeat", name=f"term{n}", TEST_PREFETCH_MULTIPLIER="4")  # fmt: skip
        assert wait_for(lambda w=worker: "ready" in w.tail(), timeout=60), worker.tail()
        time.sleep(0.3)  # jobs are flowing through the pool by then
        sent_at = time.monotonic()
        worker.proc.send_signal(signal.SIGTERM)
        worker.proc.wait(60)
        shutdowns.append(round(time.monotonic() - sent_at, 1))
    start(*worker_args("drain"), name="drain")
    assert wait_for(lambda: len(runs(redis_client)) >= len(ids), timeout=120), len(runs(redis_client))
    time.sleep(1.5)  # proves no run twice: RabbitMQ hands a requeued message out at once
    counted = Counter(r["id"] for r in runs(redis_client))
    assert {job_id: n for job_id, n in counted.items() if n > 1} == {}, f"shutdowns took {shutdowns} s"
    assert set(counted) == ids
    assert max(shutdowns) < 20, shutdowns
