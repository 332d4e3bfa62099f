"""queue.add / add_bulk against a real Redis: what lands in the broker, dedupe, delays, refusals."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis
from celery import signals

from bridge import BackendUnavailable, Bridge, InvalidJob, InvalidPayload
from bridge.core.ids import job_id_for
from tests.reply_dropper import ReplyDropper

pytestmark = pytest.mark.redis


def messages(client: redis.Redis, queue: str = "celery") -> list[dict[str, Any]]:
    """The Celery messages waiting in a broker list, oldest first."""
    return [json.loads(raw) for raw in reversed(client.lrange(queue, 0, -1))]


def body_of(message: dict[str, Any]) -> Any:
    return json.loads(base64.b64decode(message["body"]))


def snapshot(client: redis.Redis) -> dict[bytes, bytes | None]:
    return {key: client.dump(key) for key in client.keys("*")}


def test_add_pushes_a_celery_protocol_2_message(make_bridge: Callable[..., Bridge], redis_client):
    bridge = make_bridge()
    job = bridge.queue.add("emails.send", {"to": "a@b.c", "n": 1}, idempotency_key="order-42")

    assert job.id == job_id_for("emails.send", "order-42")
    assert (job.queue, job.deduplicated, job.name) == ("celery", False, "emails.send")
    [message] = messages(redis_client)
    assert message["headers"]["task"] == "emails.send"
    assert message["headers"]["id"] == job.id
    assert message["content-type"] == "application/json"
    assert body_of(message)[:2] == [[], {"to": "a@b.c", "n": 1}]


def test_duplicate_add_sends_nothing_and_returns_the_standing_job(make_bridge, redis_client):
    bridge = make_bridge()
    first = bridge.queue.add("emails.send", {"to": "a"}, idempotency_key="k1")
    second = bridge.queue.add("emails.send", {"to": "changed"}, idempotency_key="k1", queue="other")

    assert second.deduplicated
    assert not first.deduplicated
    assert (second.id, second.queue) == (first.id, "celery")
    assert redis_client.llen("celery") == 1
    assert redis_client.llen("other") == 0


def test_identity_is_name_and_key(make_bridge, redis_client):
    bridge = make_bridge()
    a = bridge.queue.add("emails.send", {}, idempotency_key="same")
    b = bridge.queue.add("sms.send", {}, idempotency_key="same")
    c = bridge.queue.add("emails.send", {})
    d = bridge.queue.add("emails.send", {})

    assert not any(j.deduplicated for j in (a, b, c, d))
    assert len({a.id, b.id, c.id, d.id}) == 4
    assert redis_client.llen("celery") == 4


def test_guard_lifetime_is_the_dedupe_ttl(make_bridge, redis_client):
    bridge = make_bridge(dedupe_ttl_sec=1)
    bridge.queue.add("emails.send", {}, idempotency_key="short")
    ttl_ms = redis_client.pttl(f"bridge:guard:{job_id_for('emails.send', 'short')}")
    assert 0 < ttl_ms <= 1000
    time.sleep(1.2)  # past the 1 s guard ttl (Redis expires keys to the millisecond)
    again = bridge.queue.add("emails.send", {}, idempotency_key="short")
    assert not again.deduplicated
    assert redis_client.llen("celery") == 2


@pytest.mark.parametrize(
    ("call", "error", "field"),
    [
        (lambda q: q.add("emails.send", ["not", "a", "dict"], idempotency_key="x"), InvalidPayload, "data"),
        (lambda q: q.add("emails.send", {"when": object()}, idempotency_key="x"), InvalidPayload, "data"),
        (lambda q: q.add("emails.send", {"t": (1, 2)}, idempotency_key="x"), InvalidPayload, "data"),
        (lambda q: q.add("emails.send", {}, idempotency_key=""), InvalidJob, "idempotency_key"),
        (lambda q: q.add("emails.send", {}, idempotency_key="k" * 513), InvalidJob, "idempotency_key"),
        (lambda q: q.add("emails.send", {}, idempotency_key="x", delay_ms=-1), InvalidJob, "delay_ms"),
        (lambda q: q.add("emails.send", {}, idempotency_key="x", delay_ms=1.5), InvalidJob, "delay_ms"),
        (lambda q: q.add("", {}, idempotency_key="x"), InvalidJob, "name"),
        (lambda q: q.add("emails.send", {}, priority=-3), InvalidJob, "priority"),
        (
            lambda q: q.add_bulk([("emails.send", {}, {"idempotency_key": "ok"}), ("emails.send", 5)]),
            InvalidPayload,
            "jobs[1].data",
        ),
    ],
)
def test_refused_add_leaves_redis_unchanged(make_bridge, redis_client, call, error, field):
    bridge = make_bridge()
    bridge.queue.add("emails.send", {"seed": True}, idempotency_key="seed", delay_ms=60_000)
    bridge.queue.add("emails.send", {"seed": True})
    before = snapshot(redis_client)

    with pytest.raises(error) as excinfo:
        call(bridge.queue)

    assert excinfo.value.field == field
    assert field in str(excinfo.value)
    assert snapshot(redis_client) == before


def test_unknown_task_name_is_allowed_like_send_task(make_bridge, redis_client):
    job = make_bridge().queue.add("billing.service.elsewhere", {"x": 1})
    assert messages(redis_client)[0]["headers"]["task"] == "billing.service.elsewhere"
    assert job.queue == "celery"


def test_routes_queue_override_and_priority(make_bridge, redis_client):
    bridge = make_bridge(conf={"task_routes": {"reports.*": {"queue": "reports"}}})
    routed = bridge.queue.add("reports.daily", {})
    overridden = bridge.queue.add("reports.daily", {}, queue="urgent")
    prioritised = bridge.queue.add("emails.send", {}, priority=6)

    assert (routed.queue, overridden.queue, prioritised.queue) == ("reports", "urgent", "celery")
    assert redis_client.llen("reports") == 1
    assert redis_client.llen("urgent") == 1
    # kombu's redis transport keeps priority 6 in the queue's "\x06\x166" sub-list.
    [message] = messages(redis_client, "celery\x06\x166")
    assert message["properties"]["priority"] == 6


def test_global_keyprefix_is_honoured(make_bridge, redis_client):
    bridge = make_bridge(conf={"broker_transport_options": {"global_keyprefix": "tenant1:"}})
    job = bridge.queue.add("emails.send", {}, idempotency_key="p", delay_ms=50_000)
    bridge.queue.add("emails.send", {}, idempotency_key="q")

    assert redis_client.llen("tenant1:celery") == 1
    assert redis_client.exists(f"tenant1:bridge:guard:{job.id}")
    assert redis_client.zcard("tenant1:bridge:delayed:celery") == 1


def test_delayed_job_waits_in_redis_then_is_promoted(make_bridge, redis_client):
    bridge = make_bridge()
    job = bridge.queue.add("emails.send", {"x": 1}, idempotency_key="later", delay_ms=400)

    assert job.due_ms is not None
    assert redis_client.llen("celery") == 0
    assert bridge.backend.delayed_count("celery") == 1  # type: ignore[attr-defined]
    next_due = bridge.backend.promote_due()
    assert next_due is not None
    assert 0 < next_due <= 0.4
    assert redis_client.llen("celery") == 0

    time.sleep(0.5)  # past the job's 400 ms delay: now it is due
    assert bridge.backend.promote_due() is None
    [message] = messages(redis_client)
    assert message["headers"]["id"] == job.id
    assert message["headers"]["eta"] is None  # the worker runs it at once: it is due
    assert bridge.backend.delayed_count("celery") == 0  # type: ignore[attr-defined]


def test_many_promoters_move_each_job_once(make_bridge, redis_client):
    bridge = make_bridge()
    for i in range(300):
        bridge.queue.add("emails.send", {"i": i}, delay_ms=200)
    time.sleep(0.3)  # past the 200 ms delay: all 300 are due before the promoters start
    threads = [threading.Thread(target=bridge.backend.promote_due) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ids = [m["headers"]["id"] for m in messages(redis_client)]
    assert len(ids) == 300 == len(set(ids))


def test_cancel_delayed_removes_the_job_and_frees_the_key(make_bridge, redis_client):
    bridge = make_bridge()
    job = bridge.queue.add("emails.send", {}, idempotency_key="reminder-42", delay_ms=300)
    assert bridge.backend.cancel_delayed(job.id) is True
    assert bridge.backend.cancel_delayed(job.id) is False
    time.sleep(0.4)  # past the cancelled job's 300 ms delay: it would be due now
    bridge.backend.promote_due()
    assert redis_client.llen("celery") == 0
    again = bridge.queue.add("emails.send", {}, idempotency_key="reminder-42")
    assert not again.deduplicated


def test_zero_delay_is_an_immediate_add(make_bridge, redis_client):
    job = make_bridge().queue.add("emails.send", {}, delay_ms=0)
    assert job.due_ms is None
    assert redis_client.llen("celery") == 1


def test_add_bulk_dedupes_each_item(make_bridge, redis_client):
    bridge = make_bridge()
    bridge.queue.add("emails.send", {"i": -1}, idempotency_key="k0")
    jobs = bridge.queue.add_bulk(
        [
            ("emails.send", {"i": 0}, {"idempotency_key": "k0"}),  # already standing
            ("emails.send", {"i": 1}, {"idempotency_key": "k1"}),
            ("emails.send", {"i": 1}, {"idempotency_key": "k1"}),  # duplicate within the batch
            ("emails.send", {"i": 2}),
            ("emails.send", {"i": 3}, {"delay_ms": 60_000, "idempotency_key": "k3"}),
        ]
    )
    assert [j.deduplicated for j in jobs] == [True, False, True, False, False]
    assert jobs[1].id == jobs[2].id
    assert redis_client.llen("celery") == 3  # k0 from before, k1, the keyless one
    assert bridge.backend.delayed_count("celery") == 1  # type: ignore[attr-defined]


def test_add_bulk_loads_the_script_on_a_fresh_server(make_bridge, redis_client):
    bridge = make_bridge()
    redis_client.script_flush()
    jobs = bridge.queue.add_bulk([("emails.send", {"i": i}, {"idempotency_key": str(i)}) for i in range(5)])
    assert [j.deduplicated for j in jobs] == [False] * 5
    assert redis_client.llen("celery") == 5


def test_racing_threads_send_one_job_per_key(make_bridge, redis_client):
    bridge = make_bridge()
    results: list[bool] = []

    def add() -> None:
        for i in range(50):
            results.append(
                bridge.queue.add("emails.send", {"i": i}, idempotency_key=f"race-{i}").deduplicated
            )

    threads = [threading.Thread(target=add) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(False) == 50
    assert redis_client.llen("celery") == 50


def test_unreachable_redis_raises_backend_unavailable_without_the_password(make_bridge, redis_client):
    bridge = make_bridge(
        conf={"broker_url": "redis://:hunter2secret@127.0.0.1:1/0"},
        redis_url="redis://:hunter2secret@127.0.0.1:1/0",
    )
    with pytest.raises(BackendUnavailable) as excinfo:
        bridge.queue.add("emails.send", {}, idempotency_key="down")
    assert "hunter2secret" not in str(excinfo.value)
    assert "127.0.0.1:1" in str(excinfo.value)
    assert redis_client.dbsize() == 0


def test_after_task_publish_fires_for_sent_jobs_only(make_bridge, redis_client):
    seen: list[str] = []

    def receiver(sender: str | None = None, headers: dict[str, Any] | None = None, **_: Any) -> None:
        seen.append(headers["id"] if headers else "?")

    signals.after_task_publish.connect(receiver)
    try:
        bridge = make_bridge()
        job = bridge.queue.add("emails.send", {}, idempotency_key="signal")
        bridge.queue.add("emails.send", {}, idempotency_key="signal")
    finally:
        signals.after_task_publish.disconnect(receiver)
    assert seen == [job.id]


def test_before_task_publish_hooks_still_shape_the_message(make_bridge, redis_client):
    def add_trace(headers: dict[str, Any] | None = None, **_: Any) -> None:
        assert headers is not None
        headers["traceparent"] = "00-abc-def-01"

    signals.before_task_publish.connect(add_trace)
    try:
        make_bridge().queue.add("emails.send", {"a": 1}, idempotency_key="traced")
    finally:
        signals.before_task_publish.disconnect(add_trace)
    [message] = messages(redis_client)
    assert message["headers"]["traceparent"] == "00-abc-def-01"


def test_template_message_equals_celerys_own_message(make_bridge, redis_client):
    """The fast path writes field for field what Celery's publish path writes."""
    from bridge.redis.message import message_of

    bridge = make_bridge(conf={"task_routes": {"r.*": {"queue": "routed"}}})
    builder = bridge.backend._builder()  # type: ignore[attr-defined]
    for name, queue, priority in [("emails.send", None, None), ("r.x", None, 3), ("emails.send", "q2", 9)]:
        data = {"to": "é@x", "nested": {"list": [1, 2.5, None, True]}}
        fast = message_of(builder.build("fixed-id", name, data, queue, priority))
        assert builder._templates[(name, queue, priority)] is not None  # the fast path was taken
        builder._templates[(name, queue, priority)] = None  # force Celery's full path
        full = message_of(builder.build("fixed-id", name, data, queue, priority))
        del builder._templates[(name, queue, priority)]
        for message in (fast, full):
            message["properties"].pop("delivery_tag")
        assert fast == full


def test_a_single_add_writes_what_the_general_path_writes(make_bridge, redis_client):
    """queue.add's own path for the common add (bridge.redis.single_add) against enqueue's."""
    from bridge.queue import make_request

    bridge = make_bridge()
    backend = bridge.backend
    data = {"to": "é@x", "quote": 'it\'s "here"', "n": -1, "ok": True, "none": None, "f": 2.5}
    redis_client.script_flush()  # the single add loads the script too
    for key in ("k", None):
        single = bridge.queue.add("emails.send", data, idempotency_key=key and f"single-{key}")
        assert "emails.send" in backend._state.plans  # type: ignore[attr-defined] - its path was taken
        request = make_request("emails.send", data, idempotency_key=key and f"general-{key}")
        [general] = backend.enqueue([request])
        if key:
            assert single.id == job_id_for("emails.send", f"single-{key}")
        assert (single.name, single.queue, single.deduplicated, single.due_ms) == (
            general.name, general.queue, general.deduplicated, general.due_ms,
        )  # fmt: skip
        guards = [redis_client.get(f"bridge:guard:{job.id}") for job in (single, general)]
        assert guards == ([b"celery", b"celery"] if key else [None, None])
        if key:
            ttls = [redis_client.pttl(f"bridge:guard:{job.id}") for job in (single, general)]
            assert abs(ttls[0] - ttls[1]) < 5_000
        written = messages(redis_client)[-2:]
        for message, job in zip(written, (single, general), strict=True):
            assert message["headers"]["id"] == message["headers"]["root_id"] == job.id
            assert message["properties"]["correlation_id"] == job.id
            for place, field in (("headers", "id"), ("headers", "root_id"), ("properties", "correlation_id"),
                                 ("properties", "delivery_tag")):  # fmt: skip
                message[place].pop(field)
        assert written[0] == written[1]
        again = bridge.queue.add("emails.send", {"other": 1}, idempotency_key=key and f"single-{key}")
        assert again.deduplicated == bool(key)
    minute = int(time.time()) // 60
    added = sum(int(redis_client.hget(f"bridge:rate:{m}", "added") or 0) for m in (minute - 1, minute))
    assert added == 5  # the chart counts both paths' adds, and not the deduplicated one
    assert redis_client.llen("celery") == 5


def test_an_add_whose_reply_was_lost_publishes_one_job_however_often_it_is_retried(
    make_bridge: Callable[..., Bridge], redis_client, server
):
    """The add's script ran, its reply never came back: the add (and the user's retry) publish once."""
    target = urlsplit(server.url)
    dropper = ReplyDropper((target.hostname or "127.0.0.1", target.port or 6379), marker=b"EVALSHA")
    try:
        bridge = make_bridge(redis_url=f"redis://127.0.0.1:{dropper.port}{target.path}")
        bridge.queue.add("ledger.record", {"key": "warm-up"})  # the script and template are loaded
        dropper.arm()
        try:
            first = bridge.queue.add("ledger.record", {"key": "k"}, idempotency_key="order-1")
        except BackendUnavailable:
            first = None  # what a user sees when the client gives up: retrying is safe
        assert dropper.dropped == 1  # the fault happened
        again = bridge.queue.add("ledger.record", {"key": "k"}, idempotency_key="order-1")
        assert again.deduplicated
        if first is not None:  # redis-py resent the command itself, and the script saw its own claim
            assert first.id == again.id
        keyed = [m for m in messages(redis_client) if body_of(m)[1] == {"key": "k"}]
        assert len(keyed) == 1
        assert keyed[0]["headers"]["id"] == again.id
    finally:
        dropper.close()
