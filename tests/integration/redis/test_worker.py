"""Jobs added through the bridge, run by real ``celery worker`` processes on a real Redis."""

from __future__ import annotations

import multiprocessing
import time
from collections import Counter

import pytest

from bridge import Settings
from tests.conftest import BACKENDS, read_ledger, server_ms, wait_for

pytestmark = [pytest.mark.redis, pytest.mark.worker]
both_backends = pytest.mark.parametrize("backend_kind", BACKENDS, indirect=True)


def _producer(
    settings: Settings, start: int, count: int, distinct: int, barrier: multiprocessing.Barrier
) -> None:
    """One producer process: its own app and bridge, as a separate service would have."""
    from celery import Celery

    from bridge import Bridge, celeryconfig

    app = Celery("producer")
    app.config_from_object(celeryconfig.build(settings))
    bridge = Bridge(app, settings=settings)
    barrier.wait()  # all producers race from the same instant
    for i in range(start, start + count):
        key = f"order-{i % distinct}"
        bridge.queue.add("ledger.record", {"key": key}, idempotency_key=key)
    bridge.close()


@both_backends
def test_concurrent_producers_dedupe_and_two_workers_share_the_work(start_worker, redis_client, server):
    workers = [start_worker("w1", concurrency=2), start_worker("w2", concurrency=2)]
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(4)
    producers = [
        ctx.Process(target=_producer, args=(server.settings(), p * 250, 250, 500, barrier)) for p in range(4)
    ]
    for p in producers:
        p.start()
    for p in producers:
        p.join(120)
        assert p.exitcode == 0

    assert wait_for(lambda: redis_client.llen("test:ledger") >= 500, timeout=120)
    time.sleep(1.0)  # anything extra would show up now
    ledger = read_ledger(redis_client)
    per_key = Counter(line["key"] for line in ledger)
    assert len(ledger) == 500
    assert set(per_key.values()) == {1}
    assert set(per_key) == {f"order-{i}" for i in range(500)}
    per_worker = Counter(line["worker"] for line in ledger)
    assert set(per_worker) == {w.hostname for w in workers}, per_worker


@both_backends
def test_delayed_job_runs_after_its_delay_and_not_before(start_worker, make_bridge, redis_client):
    start_worker("w1")
    bridge = make_bridge()
    added_at = server_ms(redis_client)
    job = bridge.queue.add("ledger.record", {"key": "later"}, idempotency_key="later", delay_ms=1500)

    assert wait_for(lambda: redis_client.llen("test:ledger") == 1, timeout=20)
    [line] = read_ledger(redis_client)
    assert line["id"] == job.id
    assert line["at_ms"] >= added_at + 1500
    assert job.due_ms is not None
    assert line["at_ms"] >= job.due_ms


@both_backends
def test_delayed_job_survives_kill9_of_every_worker(start_worker, make_bridge, redis_client):
    first = start_worker("w1", concurrency=2)
    bridge = make_bridge()
    job = bridge.queue.add("ledger.record", {"key": "survivor"}, idempotency_key="survivor", delay_ms=2000)
    first.kill9()

    time.sleep(2.5)  # past due, with no worker (and so no promoter) alive
    assert read_ledger(redis_client) == []
    assert bridge.backend.delayed_count("celery") == 1  # type: ignore[attr-defined]

    start_worker("w2")
    assert wait_for(lambda: redis_client.llen("test:ledger") >= 1, timeout=20)
    time.sleep(1.5)  # proves no second run: the promoter runs every 100 ms here, the job takes ms
    assert [line["id"] for line in read_ledger(redis_client)] == [job.id]


def test_async_result_follows_the_job(start_worker, make_bridge, redis_client):
    start_worker("w1")
    bridge = make_bridge()
    job = bridge.queue.add("ledger.record", {"key": "result"}, idempotency_key="result")
    result = bridge.app.AsyncResult(job.id).get(timeout=20)
    assert result == {"ran": job.id, "key": "result"}


def test_dedupe_until_finish_frees_the_key_when_the_job_is_done(start_worker, make_bridge, redis_client):
    start_worker("w1", JOBS_DEDUPE_UNTIL="finish")
    bridge = make_bridge()
    first = bridge.queue.add("ledger.record", {"key": "again"}, idempotency_key="again")
    assert wait_for(lambda: redis_client.llen("test:ledger") == 1)
    assert wait_for(lambda: not redis_client.exists(f"bridge:guard:{first.id}"), timeout=5)

    second = bridge.queue.add("ledger.record", {"key": "again"}, idempotency_key="again")
    assert not second.deduplicated
    assert wait_for(lambda: redis_client.llen("test:ledger") == 2)


def test_dedupe_until_finish_frees_the_key_of_a_job_that_failed_for_good(
    start_worker, make_bridge, redis_client
):
    start_worker("w1", JOBS_DEDUPE_UNTIL="finish")
    bridge = make_bridge()
    failed = bridge.queue.add("ledger.fail", {"key": "broken"}, idempotency_key="broken")
    assert wait_for(lambda: bridge.dead_letters.count("celery") == 1, timeout=20)
    assert wait_for(lambda: not redis_client.exists(f"bridge:guard:{failed.id}"), timeout=5)
    again = bridge.queue.add("ledger.fail", {"key": "broken"}, idempotency_key="broken")
    assert not again.deduplicated  # a fresh attempt, not the dead job's key
    assert wait_for(lambda: bridge.dead_letters.count("celery") == 2, timeout=20)


def test_worker_consumes_a_routed_queue(start_worker, make_bridge, redis_client):
    start_worker("w1", queues="reports")
    job = make_bridge().queue.add("ledger.record", {"key": "routed"}, queue="reports", priority=5)
    assert wait_for(lambda: redis_client.llen("test:ledger") == 1, timeout=20)
    assert read_ledger(redis_client)[0]["id"] == job.id
