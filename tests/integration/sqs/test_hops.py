"""Delays over SQS's 15 minutes travel in hops (moto's server, real celery workers).

No test waits 15 minutes: the producer's first hop is observed as it is
published, and the worker's side is driven by publishing hops whose due time
is as it would be after the earlier hops had waited.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from celery import signals

from bridge.job import JobRequest
from bridge.sqs.admin import SqsAdmin
from bridge.sqs.hops import HOP_TASK, first_hop, hop_id
from tests.conftest import read_ledger, server_ms, wait_for
from tests.integration.sqs.test_backend import sqs_bridge, sqs_worker

pytestmark = [pytest.mark.sqs, pytest.mark.redis, pytest.mark.worker]

TWENTY_MINUTES_MS = 20 * 60_000


def publish_hop(bridge: Any, job_id: str, url: str, due_ms: int, hop: int = 0) -> None:
    """Publish a hop of ``ledger.record`` for ``job_id`` as an earlier hop would have."""
    request = JobRequest(name="ledger.record", data={"key": job_id}, job_id=job_id)
    kwargs = {**first_hop(request, url.rsplit("/", 1)[-1], 0), "due_ms": due_ms, "hop": hop}
    bridge.app.send_task(HOP_TASK, kwargs=kwargs, task_id=hop_id(job_id, hop), queue=kwargs["queue"])


def test_a_twenty_minute_delay_leaves_as_a_900_s_hop_carrying_its_due_time(sqs, make_bridge, redis_client):
    url = SqsAdmin(sqs.settings()).ensure_queue("long")
    bridge = sqs_bridge(make_bridge, sqs, url)
    published: list[dict[str, Any]] = []

    def seen(
        headers: dict[str, Any] | None = None, body: Any = None, properties: Any = None, **_: Any
    ) -> None:
        published.append(
            {"task": headers["task"], "kwargs": body[1], "delay": properties.get("DelaySeconds")}
        )

    signals.before_task_publish.connect(seen, weak=False)
    try:
        before = server_ms(redis_client)
        job = bridge.queue.add(
            "ledger.record", {"key": "later"}, idempotency_key="later", delay_ms=TWENTY_MINUTES_MS
        )
    finally:
        signals.before_task_publish.disconnect(seen)

    [hop] = published
    assert (hop["task"], hop["delay"]) == (HOP_TASK, 900)  # never kombu's silent clamp of the job itself
    assert (hop["kwargs"]["job_id"], hop["kwargs"]["data"]) == (job.id, {"key": "later"})
    assert (
        before + TWENTY_MINUTES_MS <= hop["kwargs"]["due_ms"] <= server_ms(redis_client) + TWENTY_MINUTES_MS
    )
    info = SqsAdmin(sqs.settings()).counts(url)
    assert (info.visible, info.delayed) == (0, 1)
    assert bridge.queue.add(
        "ledger.record", {}, idempotency_key="later", delay_ms=TWENTY_MINUTES_MS
    ).deduplicated


def test_a_hop_with_more_than_15_minutes_to_go_sends_the_next_hop(
    sqs, start_worker, make_bridge, redis_client
):
    url = SqsAdmin(sqs.settings()).ensure_queue("hops")
    sqs_worker(start_worker, sqs, url)
    bridge = sqs_bridge(make_bridge, sqs, url)
    publish_hop(bridge, "job-far", url, due_ms=server_ms(redis_client) + TWENTY_MINUTES_MS)

    admin = SqsAdmin(sqs.settings())
    assert wait_for(lambda: admin.counts(url).delayed == 1, timeout=30)  # the next hop, 900 s away
    assert redis_client.exists("bridge:hop:job-far:0")
    assert read_ledger(redis_client) == []


def test_the_last_hop_sends_the_job_once_with_the_remaining_delay(
    sqs, start_worker, make_bridge, redis_client
):
    url = SqsAdmin(sqs.settings()).ensure_queue("landing")
    sqs_worker(start_worker, sqs, url, concurrency=2)
    bridge = sqs_bridge(make_bridge, sqs, url)
    due = server_ms(redis_client) + 3_000
    for _ in range(2):  # the same hop delivered twice, as SQS may: it must forward once
        publish_hop(bridge, "job-near", url, due_ms=due, hop=3)

    assert wait_for(lambda: redis_client.llen("test:ledger") >= 1, timeout=40)
    time.sleep(3.0)  # a second copy of the job would have run by now
    [line] = read_ledger(redis_client)
    assert line["id"] == "job-near"
    assert line["at_ms"] >= due - 1_000  # DelaySeconds is whole seconds, rounded up from the remaining time


def test_a_cancelled_long_delay_stops_at_its_next_hop(sqs, start_worker, make_bridge, redis_client):
    url = SqsAdmin(sqs.settings()).ensure_queue("cancelled-hops")
    sqs_worker(start_worker, sqs, url)
    bridge = sqs_bridge(make_bridge, sqs, url)
    job = bridge.jobs.schedule("ledger.record", {"key": "x"}, idempotency_key="x", delay_ms=TWENTY_MINUTES_MS)
    assert bridge.jobs.cancel(name="ledger.record", idempotency_key="x") is True
    publish_hop(bridge, job.id, url, due_ms=server_ms(redis_client) + 2_000, hop=1)  # as if 900 s had passed

    admin = SqsAdmin(sqs.settings())
    assert wait_for(lambda: admin.counts(url).visible == 0 and admin.counts(url).in_flight == 0, timeout=30)
    time.sleep(4.0)  # past the due time: a forwarded job would have run
    assert read_ledger(redis_client) == []
    assert not redis_client.exists(f"bridge:hop:{job.id}:1")  # it ended before claiming a forward
