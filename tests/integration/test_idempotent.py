"""@bridge.idempotent with real workers: duplicates, a crash mid-body, a failing body."""

from __future__ import annotations

import json
import os
import signal
import time
import uuid

import pytest

from tests.conftest import read_ledger, wait_for

pytestmark = [pytest.mark.redis, pytest.mark.worker]


def started(client) -> list[dict]:
    return [json.loads(line) for line in client.lrange("test:started", 0, -1)]


def test_the_same_message_delivered_twice_runs_the_body_once(start_worker, make_bridge, redis_client):
    start_worker("w1", concurrency=2)
    bridge = make_bridge()
    job_id = str(uuid.uuid4())
    for _ in range(2):  # the same message twice, as an at-least-once broker may deliver it
        bridge.app.send_task("ledger.capture", kwargs={"order_id": 7}, task_id=job_id)

    assert bridge.app.AsyncResult(job_id).get(timeout=30) == {"captured": 7}

    def succeeded() -> list[dict]:
        outcomes = [json.loads(raw) for raw in redis_client.lrange("test:outcomes", 0, -1)]
        return [o for o in outcomes if o["id"] == job_id and o["state"] == "SUCCESS"]

    # Both deliveries ended in success (one after a retry if it came while the body ran) ...
    assert wait_for(lambda: len(succeeded()) == 2, timeout=30)
    assert [o["retval"] for o in succeeded()] == [{"captured": 7}] * 2
    # ... and the body ran once: the second returned the stored result.
    assert [line["id"] for line in read_ledger(redis_client)] == [job_id]
    assert len(started(redis_client)) == 1


def test_a_crash_mid_body_lets_the_redelivery_run_it(start_worker, make_bridge, redis_client):
    start_worker("w1", concurrency=1)
    bridge = make_bridge()
    job = bridge.queue.add("ledger.capture", {"order_id": 8, "sleep_s": 3}, idempotency_key="order-8")
    assert wait_for(lambda: len(started(redis_client)) == 1, timeout=20)

    os.kill(started(redis_client)[0]["pid"], signal.SIGKILL)  # the pool process, as the OOM killer would

    # task_reject_on_worker_lost requeues it; the dead run's lease expires; the body runs again.
    assert wait_for(lambda: redis_client.llen("test:ledger") >= 1, timeout=40)
    time.sleep(2.0)  # proves no third run: one more lease (2 s) for any other redelivery to show
    assert [line["id"] for line in read_ledger(redis_client)] == [job.id]
    assert len(started(redis_client)) == 2


def test_a_body_that_raises_leaves_the_key_free_for_the_retry(start_worker, make_bridge, redis_client):
    start_worker("w1")
    bridge = make_bridge()
    job = bridge.queue.add("ledger.flaky", {"order_id": 9})
    assert bridge.app.AsyncResult(job.id).get(timeout=30) == "ok"
    assert int(redis_client.get("test:attempts:9")) == 2
    assert [line["key"] for line in read_ledger(redis_client)] == ["flaky-9"]
    again = bridge.queue.add("ledger.flaky", {"order_id": 9})  # another job, same key: remembered
    assert bridge.app.AsyncResult(again.id).get(timeout=30) == "ok"
    assert int(redis_client.get("test:attempts:9")) == 2
