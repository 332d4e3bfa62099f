"""The SQS backend with real celery workers on moto's SQS server (guards in the test Redis)."""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter, defaultdict

import boto3
import pytest

from bridge import BackendUnavailable, BridgeError, DelayTooLong, InvalidJob, InvalidPayload
from bridge.sqs.admin import SqsAdmin
from tests.conftest import read_ledger, server_ms, wait_for
from tests.redis_server import free_port

pytestmark = [pytest.mark.sqs, pytest.mark.redis, pytest.mark.worker]


def sqs_bridge(make_bridge, sqs, url: str, fifo: bool = False, **overrides):
    return make_bridge(
        queue_backend="sqs", jobs_backend="sqs", sqs_queue_url=url, sqs_fifo=fifo,
        aws_region="us-east-1", aws_endpoint_url_sqs=sqs.endpoint, **overrides,
    )  # fmt: skip


def sqs_worker(start_worker, sqs, url: str, fifo: bool = False, **kwargs):
    env = {**sqs.env(), "QUEUE_BACKEND": "sqs", "SQS_QUEUE_URL": url, "SQS_FIFO": "true" if fifo else "false"}
    return start_worker("sqsw", **kwargs, **env)


def visible(url: str, sqs) -> int:
    client = boto3.client("sqs", region_name="us-east-1", endpoint_url=sqs.endpoint)
    attrs = client.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesDelayed"])


def test_jobs_run_once_with_dedupe_and_a_native_delay(sqs, start_worker, make_bridge, redis_client):
    url = SqsAdmin(sqs.settings()).ensure_queue("jobs")
    sqs_worker(start_worker, sqs, url, concurrency=2)
    bridge = sqs_bridge(make_bridge, sqs, url)
    first = bridge.queue.add("ledger.record", {"key": "a"}, idempotency_key="a")
    dup = bridge.queue.add("ledger.record", {"key": "a"}, idempotency_key="a")
    bridge.queue.add("ledger.record", {"key": "b"})
    added_at = server_ms(redis_client)
    later = bridge.queue.add("ledger.record", {"key": "later"}, idempotency_key="later", delay_ms=2_000)

    assert dup.deduplicated
    assert (dup.id, dup.queue, first.queue) == (first.id, "jobs", "jobs")
    assert wait_for(lambda: redis_client.llen("test:ledger") >= 3, timeout=60)
    time.sleep(2)  # the workers are idle: a second message for "a" would have run by now
    lines = read_ledger(redis_client)
    assert Counter(line["key"] for line in lines) == {"a": 1, "b": 1, "later": 1}  # each ran once
    ran = {line["key"]: line for line in lines}
    assert ran["later"]["id"] == later.id
    assert ran["later"]["at_ms"] >= added_at + 2_000


def test_fifo_order_holds_per_group(sqs, start_worker, make_bridge, redis_client):
    url = SqsAdmin(sqs.settings()).ensure_queue("ordered.fifo", fifo=True)
    bridge = sqs_bridge(make_bridge, sqs, url, fifo=True)
    for i in range(4):
        for group in ("g0", "g1", "g2"):
            bridge.queue.add(
                "ledger.record", {"key": f"{group}-{i}"}, group_id=group, idempotency_key=f"{group}-{i}"
            )
    sqs_worker(start_worker, sqs, url, fifo=True)
    assert wait_for(lambda: redis_client.llen("test:ledger") >= 12, timeout=90)
    per_group = defaultdict(list)
    for line in read_ledger(redis_client):
        group, n = line["key"].split("-")
        per_group[group].append(int(n))
    assert dict(per_group) == {g: [0, 1, 2, 3] for g in ("g0", "g1", "g2")}


def test_refusals_claim_nothing_and_send_nothing(sqs, make_bridge, redis_client):
    url = SqsAdmin(sqs.settings()).ensure_queue("strict")
    fifo_url = SqsAdmin(sqs.settings()).ensure_queue("strict.fifo", fifo=True)
    bridge = sqs_bridge(make_bridge, sqs, url, sqs_delay_hops=False)
    with pytest.raises(DelayTooLong, match="SQS_DELAY_HOPS"):
        bridge.queue.add("ledger.record", {}, idempotency_key="twenty-minutes", delay_ms=20 * 60_000)
    with pytest.raises(InvalidJob, match="FIFO"):
        sqs_bridge(make_bridge, sqs, fifo_url, fifo=True).queue.add("ledger.record", {}, delay_ms=1_000)
    assert redis_client.keys("bridge:guard:*") == []
    assert visible(url, sqs) == 0
    assert visible(fifo_url, sqs) == 0


def test_a_payload_over_the_queues_maximum_message_size_is_refused_before_sending(
    sqs, make_bridge, redis_client
):
    admin = SqsAdmin(sqs.settings())
    url = admin.ensure_queue("small-messages")
    admin.client.set_queue_attributes(QueueUrl=url, Attributes={"MaximumMessageSize": "4096"})
    bridge = sqs_bridge(make_bridge, sqs, url)
    with pytest.raises(InvalidPayload, match="MaximumMessageSize of 4096") as refused:
        bridge.queue.add("ledger.record", {"blob": "x" * 3_000}, idempotency_key="big")
    assert refused.value.field == "data"
    assert redis_client.keys("bridge:guard:*") == []
    assert visible(url, sqs) == 0
    bridge.queue.add("ledger.record", {"blob": "x" * 500}, idempotency_key="fits")
    assert visible(url, sqs) == 1  # SQS accepted it: the estimate is not stricter than the queue


def test_an_unreachable_result_store_is_backend_unavailable_without_the_password(sqs, make_bridge):
    url = SqsAdmin(sqs.settings()).ensure_queue("no-results")
    closed = free_port()  # nothing listens: Celery's result subscription on send cannot connect
    quick = {"result_backend_transport_options": {"retry_policy": {"max_retries": 1}}}  # Celery's: 20
    bridge = sqs_bridge(
        make_bridge, sqs, url, redis_url=f"redis://:S3cret-pw@127.0.0.1:{closed}/0", conf=quick
    )
    with pytest.raises(BackendUnavailable) as failed:
        bridge.queue.add("ledger.record", {"key": "k"})
    assert "S3cret-pw" not in str(failed.value)


def test_cancel_leaves_a_tombstone_the_worker_honours(sqs, start_worker, make_bridge, redis_client):
    url = SqsAdmin(sqs.settings()).ensure_queue("cancellable")
    sqs_worker(start_worker, sqs, url)
    bridge = sqs_bridge(make_bridge, sqs, url)
    doomed = bridge.jobs.schedule(
        "ledger.record", {"key": "doomed"}, idempotency_key="doomed", delay_ms=2_000
    )
    bridge.jobs.schedule("ledger.record", {"key": "kept"}, idempotency_key="kept", delay_ms=2_000)
    assert doomed.queue == "cancellable"  # on SQS, scheduled jobs use the configured queue

    assert bridge.jobs.cancel(name="ledger.record", idempotency_key="doomed") is True
    assert wait_for(lambda: redis_client.llen("test:ledger") >= 1, timeout=30)
    assert wait_for(lambda: visible(url, sqs) == 0, timeout=30)  # the cancelled one was consumed
    time.sleep(1.0)  # had it run, its line would be there now
    assert [line["key"] for line in read_ledger(redis_client)] == ["kept"]


def test_redrive_policy_moves_a_message_to_the_dlq(sqs):
    admin = SqsAdmin(sqs.settings())
    url = admin.ensure_queue("flaky", dlq="flaky-dlq", max_receive_count=1)
    client = boto3.client("sqs", region_name="us-east-1", endpoint_url=sqs.endpoint)
    client.send_message(QueueUrl=url, MessageBody="poison")
    for _ in range(2):  # received, never deleted: a handler that keeps crashing
        client.receive_message(QueueUrl=url, VisibilityTimeout=0, WaitTimeSeconds=1)
    info = admin.counts(url)
    assert info.dlq is not None
    assert (info.visible + info.in_flight, info.dlq.visible) == (0, 1)


def test_a_retry_keeps_its_fifo_group(sqs, start_worker, make_bridge, redis_client):
    url = SqsAdmin(sqs.settings()).ensure_queue("retried.fifo", fifo=True)
    sqs_worker(start_worker, sqs, url, fifo=True)
    bridge = sqs_bridge(make_bridge, sqs, url, fifo=True)
    bridge.queue.add("ledger.retry_once", {"key": "r"}, group_id="tenant-7", idempotency_key="r")
    assert wait_for(lambda: redis_client.llen("test:ledger") == 1, timeout=60)
    attempts = [json.loads(line) for line in redis_client.lrange("test:groups", 0, -1)]
    assert attempts == [{"retries": 0, "group": "tenant-7"}, {"retries": 1, "group": "tenant-7"}]


@pytest.mark.parametrize(("heartbeat", "runs"), [("1", 1), ("0", 2)], ids=["heartbeat", "no-heartbeat"])
def test_a_handler_three_times_the_visibility_timeout_runs_once_with_the_heartbeat(
    sqs, start_worker, make_bridge, redis_client, heartbeat, runs
):
    url = SqsAdmin(sqs.settings()).ensure_queue("slow", visibility_timeout=4)  # the handler takes 12 s
    env = {**sqs.env(), "QUEUE_BACKEND": "sqs", "SQS_QUEUE_URL": url,
           "SQS_HEARTBEAT_SEC": heartbeat, "SQS_EXTEND_BY_SEC": "4"}  # fmt: skip
    for name in ("slow1", "slow2"):  # a second worker is there to take the message if it reappears
        start_worker(name, **env)
    bridge = sqs_bridge(make_bridge, sqs, url)
    job = bridge.queue.add("ledger.record", {"key": "slow", "sleep_s": 12}, idempotency_key="slow")
    assert wait_for(lambda: redis_client.llen("test:ledger") >= 1, timeout=60)
    # The message reappears within the 4 s visibility timeout if it is still there, and a run
    # writes its start line at once: 6 s after the first run ended, any other run has started.
    time.sleep(6.0)
    starts = [json.loads(raw) for raw in redis_client.lrange("test:record_started", 0, -1)]
    assert {start["id"] for start in starts} == {job.id}
    if runs == 1:
        assert len(starts) == 1  # held past three visibility timeouts, started once
        assert len(read_ledger(redis_client)) == 1
    else:
        assert len(starts) >= 2  # the control: without the heartbeat SQS hands it out again


def test_a_failed_send_frees_the_key_so_the_retry_sends(sqs, make_bridge, redis_client):
    url = f"{sqs.endpoint}/123456789012/created-late"  # no such queue yet: the send fails
    bridge = sqs_bridge(make_bridge, sqs, url)
    with pytest.raises(BridgeError):
        bridge.queue.add("ledger.record", {"key": "k"}, idempotency_key="order-1")
    assert redis_client.keys("bridge:guard:*") == []  # no claimed key without a job

    assert SqsAdmin(sqs.settings()).ensure_queue("created-late") == url
    job = bridge.queue.add("ledger.record", {"key": "k"}, idempotency_key="order-1")
    assert not job.deduplicated
    assert visible(url, sqs) == 1


def test_fifo_sends_carry_a_deduplication_id_from_the_key_and_sqs_dedupes_behind_the_guard(
    sqs, make_bridge, redis_client
):
    url = SqsAdmin(sqs.settings()).ensure_queue("deduped.fifo", fifo=True)
    bridge = sqs_bridge(make_bridge, sqs, url, fifo=True)
    first = bridge.queue.add("ledger.record", {"key": "k"}, idempotency_key="order-1", group_id="g")
    redis_client.delete(f"bridge:guard:{first.id}")  # the guard gone (say, expired): SQS's own dedupe holds
    again = bridge.queue.add("ledger.record", {"key": "k"}, idempotency_key="order-1", group_id="g")
    assert not again.deduplicated  # sent again by the bridge ...
    client = boto3.client("sqs", region_name="us-east-1", endpoint_url=sqs.endpoint)
    received = client.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1, AttributeNames=["All"]
    ).get("Messages", [])
    assert len(received) == 1  # ... and dropped by SQS within its 5-minute window
    expected = hashlib.sha256(b"ledger.record\0order-1").hexdigest()
    assert received[0]["Attributes"]["MessageDeduplicationId"] == expected
    assert received[0]["Attributes"]["MessageGroupId"] == "g"


def test_adds_follow_the_apps_task_routes_to_another_predefined_queue(sqs, make_bridge):
    """An app whose config predefines a second queue and routes a task there (``task_routes``): an
    add without ``queue=`` goes where ``apply_async`` sends it, delayed or not; others keep the
    default queue, and dedupe holds."""
    jobs_url = SqsAdmin(sqs.settings()).ensure_queue("routed-jobs")
    reports_url = SqsAdmin(sqs.settings()).ensure_queue("routed-reports")
    bridge = sqs_bridge(make_bridge, sqs, jobs_url)
    options = dict(bridge.app.conf.broker_transport_options)
    options["predefined_queues"] = {**options["predefined_queues"], "routed-reports": {"url": reports_url}}
    bridge.app.conf.update(broker_transport_options=options, task_routes={"ledger.record": "routed-reports"})

    bridge.app.send_task("ledger.record", kwargs={"key": "by-celery"})
    now = bridge.queue.add("ledger.record", {"key": "now"}, idempotency_key="now")
    later = bridge.queue.add("ledger.record", {"key": "later"}, delay_ms=1_000)
    other = bridge.queue.add("ledger.fail", {"key": "x"})
    assert (now.queue, later.queue, other.queue) == ("routed-reports", "routed-reports", "routed-jobs")
    assert bridge.queue.add("ledger.record", {"key": "now"}, idempotency_key="now").deduplicated
    assert wait_for(lambda: visible(reports_url, sqs) == 3, timeout=20)
    assert visible(jobs_url, sqs) == 1
