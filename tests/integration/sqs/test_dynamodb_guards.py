"""SQS with its guards in DynamoDB and no Redis (moto's SQS and DynamoDB, real celery workers).

The test Redis holds only the test ledger (TEST_LEDGER_URL): the bridge itself is
given no REDIS_URL, and an empty BRIDGE_HOME shows no embedded server started.
"""

from __future__ import annotations

import multiprocessing
import time
from collections import Counter
from typing import Any

import pytest

from bridge import BridgeError, Settings
from bridge.sqs.admin import SqsAdmin
from tests.conftest import read_ledger, wait_for
from tests.integration.sqs.aws_only import producer_bridge
from tests.integration.sqs.test_backend import visible

pytestmark = [pytest.mark.sqs, pytest.mark.worker]


def _race(settings: Settings, keys: int, barrier: Any, results: Any) -> None:
    """One producer machine: adds keys 0..keys-1, all at once with the others."""
    bridge = producer_bridge(settings)
    barrier.wait()
    sent = [k for k in range(keys) if not bridge.queue.add("ledger.record", {"key": k},
                                                           idempotency_key=f"k{k}").deduplicated]  # fmt: skip
    results.put(sent)


def test_racing_producers_in_four_processes_send_one_job_per_key(sqs, aws, nowhere):
    url = SqsAdmin(sqs.settings()).ensure_queue("raced")
    settings = Settings(**aws.settings(url, nowhere))
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(4), ctx.Queue()
    procs = [ctx.Process(target=_race, args=(settings, 40, barrier, results)) for _ in range(4)]
    for p in procs:
        p.start()
    sent = [results.get(timeout=180) for _ in procs]
    for p in procs:
        p.join(60)
        assert p.exitcode == 0

    winners = Counter(k for batch in sent for k in batch)
    assert winners == Counter(range(40))  # every key sent by exactly one of the four
    assert visible(url, sqs) == 40
    assert len(aws.table_keys("bridge:guard:")) == 40


def test_a_failed_send_frees_the_key_so_the_retry_sends(sqs, aws, nowhere, make_bridge):
    url = f"{sqs.endpoint}/123456789012/created-late"  # no such queue yet: the send fails
    bridge = make_bridge(**aws.settings(url, nowhere))
    with pytest.raises(BridgeError):
        bridge.queue.add("ledger.record", {"key": "k"}, idempotency_key="order-1")
    assert aws.table_keys("bridge:guard:") == []  # no claimed key without a job

    assert SqsAdmin(sqs.settings()).ensure_queue("created-late") == url
    job = bridge.queue.add("ledger.record", {"key": "k"}, idempotency_key="order-1")
    assert not job.deduplicated
    assert bridge.queue.add("ledger.record", {"key": "k"}, idempotency_key="order-1").deduplicated
    assert visible(url, sqs) == 1


def test_an_expired_guard_counts_as_absent_before_dynamodb_deletes_it(sqs, aws, nowhere, make_bridge):
    url = SqsAdmin(sqs.settings()).ensure_queue("short-guards")
    bridge = make_bridge(**aws.settings(url, nowhere, dedupe_ttl_sec=1))
    assert not bridge.queue.add("ledger.record", {}, idempotency_key="once-a-second").deduplicated
    assert bridge.queue.add("ledger.record", {}, idempotency_key="once-a-second").deduplicated
    time.sleep(1.2)  # the item is still in the table (TTL deletes days late), but past its end
    assert aws.table_keys("bridge:guard:") != []
    assert not bridge.queue.add("ledger.record", {}, idempotency_key="once-a-second").deduplicated
    assert visible(url, sqs) == 2


def test_with_a_real_worker_dupes_run_once_and_a_tombstoned_job_never_runs(
    sqs, aws, nowhere, start_worker, make_bridge, redis_client, server
):
    url = SqsAdmin(sqs.settings()).ensure_queue("cancellable")
    start_worker("awsw", concurrency=2, **aws.env(url, nowhere, server.url))
    bridge = make_bridge(**aws.settings(url, nowhere))
    first = bridge.queue.add("ledger.record", {"key": "a"}, idempotency_key="a")
    dup = bridge.queue.add("ledger.record", {"key": "a"}, idempotency_key="a")
    doomed = bridge.jobs.schedule(
        "ledger.record", {"key": "doomed"}, idempotency_key="doomed", delay_ms=2_000
    )
    bridge.jobs.schedule("ledger.record", {"key": "kept"}, idempotency_key="kept", delay_ms=2_000)
    assert (dup.deduplicated, dup.id, doomed.queue) == (True, first.id, "cancellable")

    assert bridge.jobs.cancel(name="ledger.record", idempotency_key="doomed") is True
    assert aws.table_keys("bridge:tombstone:") == [f"bridge:tombstone:{doomed.id}"]
    assert wait_for(lambda: redis_client.llen("test:ledger") >= 2, timeout=60)
    assert wait_for(lambda: visible(url, sqs) == 0, timeout=30)  # the cancelled one was consumed
    time.sleep(1.5)  # had it, or a second "a", run, its line would be there now
    assert Counter(line["key"] for line in read_ledger(redis_client)) == {"a": 1, "kept": 1}


def test_a_hop_delivered_twice_forwards_once_with_its_claim_in_dynamodb(
    sqs, aws, nowhere, start_worker, make_bridge, redis_client, server
):
    from bridge.dynamodb.table import now_ms
    from tests.integration.sqs.test_hops import publish_hop

    url = SqsAdmin(sqs.settings()).ensure_queue("landing")
    start_worker("awsw", concurrency=2, **aws.env(url, nowhere, server.url))
    bridge = make_bridge(**aws.settings(url, nowhere))
    due = now_ms() + 3_000  # DynamoDB has no clock: producer and worker read the host's
    for _ in range(2):  # the same hop delivered twice, as SQS may: it must forward once
        publish_hop(bridge, "job-near", url, due_ms=due, hop=3)

    assert wait_for(lambda: redis_client.llen("test:ledger") >= 1, timeout=40)
    time.sleep(3.0)  # a second copy of the job would have run by now
    [line] = read_ledger(redis_client)
    assert line["id"] == "job-near"
    assert line["at_ms"] >= due - 1_000  # DelaySeconds is whole seconds, rounded up from the remaining time
    assert aws.table_keys("bridge:hop:") == ["bridge:hop:job-near:3"]


def test_an_unreachable_table_is_backend_unavailable_naming_it_and_nothing_is_sent(
    sqs, aws, nowhere, make_bridge
):
    from bridge import BackendUnavailable
    from tests.redis_server import free_port

    url = SqsAdmin(sqs.settings()).ensure_queue("table-gone")
    closed = f"http://127.0.0.1:{free_port()}"
    bridge = make_bridge(**aws.settings(url, nowhere, aws_endpoint_url_dynamodb=closed))
    with pytest.raises(BackendUnavailable) as failed:
        bridge.queue.add("ledger.record", {}, idempotency_key="k")
    assert "DynamoDB table 'jobs-guards'" in str(failed.value)
    assert "testing" not in str(failed.value)  # the emulator's secret key is never shown
    with pytest.raises(BackendUnavailable, match="writing its tombstone"):
        bridge.jobs.cancel(name="ledger.record", idempotency_key="k")
    assert visible(url, sqs) == 0
