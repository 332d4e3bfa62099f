"""bridge.lock and @bridge.idempotent with LOCK_BACKEND=dynamodb (moto's DynamoDB; real processes)."""

from __future__ import annotations

import itertools
import json
import multiprocessing
import os
import signal
import time
import uuid
from typing import Any

import pytest

from bridge import LockLost, LockNotAcquired, Settings
from bridge.sqs.admin import SqsAdmin
from tests.conftest import read_ledger, wait_for
from tests.integration.sqs.aws_only import producer_bridge

pytestmark = [pytest.mark.sqs]


def _increment(settings: Settings, times: int, barrier: Any, results: Any) -> None:
    """Read-modify-write of a record in the table: only the lock keeps it right."""
    bridge = producer_bridge(settings)
    barrier.wait()
    seen = []
    for _ in range(times):
        with bridge.lock("counter", ttl_ms=10_000) as lock:
            value = int(bridge.store.get("test:counter") or 0)
            bridge.store.set("test:counter", value + 1)
            seen.append((value, lock.fence))
    results.put(seen)


def test_four_processes_increment_exactly_100_times_and_fences_grow_with_every_hold(sqs, aws, nowhere):
    url = SqsAdmin(sqs.settings()).ensure_queue("locks")
    settings = Settings(**aws.settings(url, nowhere))
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(4), ctx.Queue()
    procs = [ctx.Process(target=_increment, args=(settings, 25, barrier, results)) for _ in range(4)]
    for p in procs:
        p.start()
    holds = sorted(pair for _ in procs for pair in results.get(timeout=240))
    for p in procs:
        p.join(60)
        assert p.exitcode == 0

    assert [value for value, _ in holds] == list(range(100))  # no two holders ever read the same value
    fences = [fence for _, fence in holds]
    assert all(earlier < later for earlier, later in itertools.pairwise(fences))
    assert int(producer_bridge(settings).store.get("test:counter") or 0) == 100


def test_a_lease_ends_on_time_though_the_item_stays_and_the_late_holder_gets_lock_lost(
    sqs, aws, nowhere, make_bridge
):
    url = SqsAdmin(sqs.settings()).ensure_queue("leases")
    bridge = make_bridge(**aws.settings(url, nowhere))
    first = bridge.lock("report", ttl_ms=400)
    first.acquire()
    with pytest.raises(LockNotAcquired, match="report"):
        bridge.lock("report", ttl_ms=10_000, blocking=False).acquire()
    time.sleep(0.6)  # the lease ended; DynamoDB's TTL has not (and would not for hours) removed the item
    assert aws.table_keys("bridge:lock:") == ["bridge:lock:report"]
    second = bridge.lock("report", ttl_ms=10_000, blocking=False)
    second.acquire()
    assert second.fence > first.fence  # what it protects can refuse the stalled first holder

    with pytest.raises(LockLost, match="report"):
        first.release()
    assert second.held  # the late release did not free the new holder's lock
    second.release()
    assert not second.held


def test_auto_extend_keeps_a_dynamodb_lease_past_its_ttl(sqs, aws, nowhere, make_bridge):
    url = SqsAdmin(sqs.settings()).ensure_queue("extended")
    bridge = make_bridge(**aws.settings(url, nowhere))
    with bridge.lock("long", ttl_ms=600, auto_extend=True):
        time.sleep(1.5)  # two and a half ttls
        with pytest.raises(LockNotAcquired):
            bridge.lock("long", ttl_ms=600, blocking=False).acquire()
    with bridge.lock("long", ttl_ms=600, blocking=False):
        pass  # released on exit: free at once


def test_the_same_message_delivered_twice_runs_an_idempotent_body_once(
    sqs, aws, nowhere, start_worker, make_bridge, redis_client, server
):
    url = SqsAdmin(sqs.settings()).ensure_queue("captures")
    start_worker("awsw", concurrency=2, **aws.env(url, nowhere, server.url))
    bridge = make_bridge(**aws.settings(url, nowhere))
    job_id = str(uuid.uuid4())
    for _ in range(2):  # the same message twice, as SQS (at least once) may deliver it
        bridge.app.send_task("ledger.capture", kwargs={"order_id": 7}, task_id=job_id)

    def succeeded() -> list[dict]:
        outcomes = [json.loads(raw) for raw in redis_client.lrange("test:outcomes", 0, -1)]
        return [o for o in outcomes if o["id"] == job_id and o["state"] == "SUCCESS"]

    # Both deliveries end in success (one after a retry if it came while the body ran) ...
    assert wait_for(lambda: len(succeeded()) == 2, timeout=60)
    assert [o["retval"] for o in succeeded()] == [{"captured": 7}] * 2
    # ... and the body ran once: the second returned the result stored in DynamoDB.
    assert [line["id"] for line in read_ledger(redis_client)] == [job_id]
    assert redis_client.llen("test:started") == 1
    assert f'bridge:idem:["ledger.capture","{job_id}"]:done' in aws.table_keys("bridge:idem:")


VISIBILITY_S = 5


def test_a_crash_mid_body_lets_the_redelivery_run_it_with_the_lease_in_dynamodb(
    sqs, aws, nowhere, start_worker, make_bridge, redis_client, server
):
    """The pool process running an @idempotent body is killed (as the OOM killer would): the job comes
    back, the dead run's lease in the table ends (2 s), the body runs again, and its effect lands once."""
    url = SqsAdmin(sqs.settings()).ensure_queue("crashed", visibility_timeout=VISIBILITY_S)
    env = aws.env(url, nowhere, server.url, SQS_HEARTBEAT_SEC="1", SQS_EXTEND_BY_SEC=str(VISIBILITY_S))
    worker = start_worker("awsw", concurrency=1, **env)
    bridge = make_bridge(**aws.settings(url, nowhere))
    job = bridge.queue.add("ledger.capture", {"order_id": 8, "sleep_s": 3}, idempotency_key="order-8")
    assert wait_for(lambda: redis_client.llen("test:started") == 1, timeout=30)

    pid = json.loads(redis_client.lindex("test:started", 0))["pid"]
    os.kill(pid, signal.SIGKILL)  # the pool process, mid-body

    assert wait_for(lambda: redis_client.llen("test:ledger") >= 1, timeout=60)
    # Past the queue's visibility timeout and one more lease: any other copy would have run by now.
    time.sleep(VISIBILITY_S + 3)
    assert [line["id"] for line in read_ledger(redis_client)] == [job.id]  # the effect, once
    assert redis_client.llen("test:started") == 2  # the killed body, and the redelivery's
    assert f'bridge:idem:["ledger.capture","{job.id}"]:done' in aws.table_keys("bridge:idem:")
    # The heartbeat (every second) never tried to extend a message already acked or rejected.
    assert "not extended" not in worker.log.read_text(errors="replace"), worker.tail()
