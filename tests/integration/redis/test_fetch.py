"""Reliable fetch: a Redis worker takes a job and records it as unacked in one step.

The message is never only "on the wire": it is on its queue or in kombu's
``unacked`` hash, from which kombu's own sweep hands it out again. These tests
run real ``celery worker`` processes against a real Redis; the restart tests in
``test_faults.py`` check the same promise under load, with the server stopped.
"""

from __future__ import annotations

import json
import time

import celery
import pytest
import redis
from celery import Celery

from bridge import Bridge, celeryconfig
from bridge.redis.fetch import SETTLE_SCRIPT, TAKE_SCRIPT
from tests.conftest import Server, read_ledger, wait_for

# Celery before 5.7 drops the result of a job that finished while its consumer reconnected.
ACKS_A_JOB_THAT_RAN_THROUGH_A_RECONNECT = celery.VERSION >= (5, 7)

pytestmark = [pytest.mark.redis, pytest.mark.worker]

# kombu's keys for the "celery" queue with its default priority steps, in its BRPOP order.
CELERY_KEYS = ["celery", "celery\x06\x163", "celery\x06\x166", "celery\x06\x169"]


def take(client: redis.Redis, keys: list[str], now: float) -> list[bytes | int] | None:
    """What a worker's fetch does, run by hand: the caller then "loses" the reply."""
    reply = client.eval(TAKE_SCRIPT, len(keys) + 2, *keys, "unacked", "unacked_index", len(keys), repr(now))
    return reply  # type: ignore[no-any-return]


def test_a_job_taken_whose_reply_never_arrived_runs_once_after_the_visibility_timeout(
    make_bridge, redis_client, start_worker
):
    """The window kombu's BRPOP left open: the server handed the job out and the worker never saw it."""
    bridge = make_bridge()
    job = bridge.queue.add("ledger.record", {"key": "lost-reply"})
    item = redis_client.lindex("celery", 0)
    assert item is not None

    taken_at = time.time()
    reply = take(redis_client, CELERY_KEYS, taken_at)
    assert reply == [1, item, 1]
    # Off the queue, and recorded exactly as kombu's QoS.append records a delivery.
    assert redis_client.llen("celery") == 0
    message = json.loads(item)
    tag = message["properties"]["delivery_tag"]
    info = message["properties"]["delivery_info"]
    assert json.loads(redis_client.hget("unacked", tag)) == [message, info["exchange"], info["routing_key"]]
    assert redis_client.zscore("unacked_index", tag) == pytest.approx(taken_at, abs=1e-3)

    # The reply is gone with its worker. A worker with a 3 s visibility timeout hands it out again.
    start_worker("w1", JOBS_VISIBILITY_TIMEOUT_SEC="3")
    assert wait_for(lambda: len(read_ledger(redis_client)) >= 1, timeout=30)
    assert wait_for(lambda: redis_client.hlen("unacked") == 0, timeout=10)
    time.sleep(4)  # past another visibility timeout: a second run would show now
    ledger = read_ledger(redis_client)
    assert [(line["id"], line["key"]) for line in ledger] == [(job.id, "lost-reply")]


def test_an_owed_ack_settles_only_the_delivery_its_own_take_recorded(redis_client):
    """An ack deferred through an outage must never drop a record someone else wrote since."""
    redis_client.hset("unacked", mapping={"ours": "[]", "retaken": "[]"})
    redis_client.zadd("unacked_index", {"ours": 1000.25, "retaken": 2000.5})
    # "retaken" was handed out again by the visibility sweep and taken by another worker
    # (a new score); "ours" still holds the score our take wrote.
    owed = ["ours", repr(1000.25), "retaken", repr(1500.75), "gone", repr(900.0)]
    redis_client.eval(SETTLE_SCRIPT, 2, "unacked", "unacked_index", *owed)
    assert redis_client.hkeys("unacked") == [b"retaken"]
    assert redis_client.zrange("unacked_index", 0, -1) == [b"retaken"]


def test_an_idle_worker_picks_up_jobs_on_priority_sublists_and_on_every_queue(
    make_bridge, redis_client, start_worker
):
    """The idle wait watches one list; the others are looked at after each wait (at most 1 s)."""
    start_worker("w1", queues="celery,second")
    bridge = make_bridge()
    time.sleep(1.5)  # the worker is idle, waiting on "celery"'s plain list
    # Waiting without taking: BLMOVE of a list onto itself, not kombu's BRPOP.
    assert "blmove" in {client.get("cmd") for client in redis_client.client_list()}
    bridge.app.send_task("ledger.record", kwargs={"key": "urgent"}, priority=9)
    bridge.app.send_task("ledger.record", kwargs={"key": "elsewhere"}, queue="second")
    assert wait_for(lambda: len(read_ledger(redis_client)) >= 2, timeout=20)
    assert sorted(line["key"] for line in read_ledger(redis_client)) == ["elsewhere", "urgent"]
    # Taken from where kombu put them: the priority 9 sublist and the second queue.
    assert redis_client.exists("celery\x06\x169", "second") == 0
    assert redis_client.hlen("unacked") == 0


def test_a_worker_keeps_fetching_after_the_server_forgets_its_script(make_bridge, redis_client, start_worker):
    """A Redis restart or ``SCRIPT FLUSH`` drops the take script: the worker loads it again."""
    start_worker("w1")
    bridge = make_bridge()
    bridge.queue.add("ledger.record", {"key": "before"})
    assert wait_for(lambda: len(read_ledger(redis_client)) == 1, timeout=20)
    redis_client.script_flush()
    for n in range(5):
        bridge.queue.add("ledger.record", {"key": f"after-{n}"})
    assert wait_for(lambda: len(read_ledger(redis_client)) == 6, timeout=20)
    assert redis_client.hlen("unacked") == 0


def producer(server: Server) -> Bridge:
    app = Celery("producer-private")
    app.config_from_object(celeryconfig.build(server.settings()))
    return Bridge(app, settings=server.settings())


def test_a_server_that_refuses_blmove_gets_kombus_brpop_and_a_warning(private_redis, start_worker_at):
    """A Redis before 6.2 (no BLMOVE) or an ACL without it: the worker still works, and says what it lost."""
    client = private_redis.client()
    client.execute_command("ACL", "SETUSER", "default", "-blmove")
    server = Server("redis", private_redis.url)
    worker = start_worker_at(server, "w1")
    bridge = producer(server)
    try:
        for n in range(3):
            bridge.queue.add("ledger.record", {"key": f"brpop-{n}"})
        assert wait_for(lambda: client.llen("test:ledger") == 3, timeout=30), worker.tail()
        assert "cannot fetch reliably" in worker.log.read_text()
        assert client.hlen("unacked") == 0
    finally:
        bridge.close()
        client.close()


def test_a_job_running_through_a_redis_restart_runs_once_and_is_acked_when_the_worker_reconnects(
    private_redis, start_worker_at
):
    """The connection drops mid-job; the job runs on, succeeds, and its ack is owed, then sent.

    Celery acks through the connection it lost. The bridge owes the ack and sends it on
    the worker's first fetch after reconnecting, so the job is neither lost nor run
    again after the visibility timeout (600 s here); ``bridge.celeryconfig`` leaves
    Celery's stopping of running jobs off on Redis (nothing is handed out again before
    the visibility timeout, so nothing else runs it meanwhile).

    Celery before 5.7 never finishes such a job's request in the worker: the pool's
    result arrives while the consumer reconnects and is dropped, so no ack is sent at
    all, and the job runs a second time after the visibility timeout (at least once).
    """
    client = private_redis.client()
    server = Server("redis", private_redis.url)
    worker = start_worker_at(server, "w1", JOBS_VISIBILITY_TIMEOUT_SEC="600")
    bridge = producer(server)
    try:
        job = bridge.queue.add("ledger.record", {"key": "through", "sleep_s": 4, "trace": True})
        assert wait_for(lambda: client.llen("test:deliveries") == 1, timeout=30), worker.tail()
        private_redis.stop()  # mid-run: the ledger line is written after the 4 s sleep
        time.sleep(2)  # the outage: long enough that the worker sees the connection drop mid-run
        private_redis.start()

        assert wait_for(lambda: client.llen("test:ledger") == 1, timeout=60), worker.tail()
        if ACKS_A_JOB_THAT_RAN_THROUGH_A_RECONNECT:
            assert wait_for(lambda: client.hlen("unacked") == 0, timeout=30), worker.tail()  # the owed ack
            assert "the worker acks it when it reconnects" in worker.log.read_text()
        time.sleep(2)  # a second run would show now
        assert [(line["id"], line["key"]) for line in read_ledger(client)] == [(job.id, "through")]
        assert client.llen("test:deliveries") == 1
        assert client.llen("celery") == 0
        if not ACKS_A_JOB_THAT_RAN_THROUGH_A_RECONNECT:
            assert client.hlen("unacked") == 1  # comes back after the visibility timeout
    finally:
        bridge.close()
        client.close()


def test_a_job_running_when_the_connection_drops_and_redis_stays_up_is_not_put_back_to_run_twice(
    make_bridge, redis_client, start_worker
):
    """Every connection cut (``CLIENT KILL``) mid-job, the server still up: a network blip.

    Celery closes the broken connection, and kombu puts every delivered message back
    on its queue when a channel closes; with the server reachable that succeeded, so a
    job still running was taken by the reconnected worker and ran a second time. The
    bridge's channel keeps a running job's record instead; its ack follows when it ends.
    """
    worker = start_worker("w1", JOBS_VISIBILITY_TIMEOUT_SEC="600")
    bridge = make_bridge()
    job = bridge.queue.add("ledger.record", {"key": "blip", "sleep_s": 3, "trace": True})
    assert wait_for(lambda: redis_client.llen("test:deliveries") == 1, timeout=30), worker.tail()
    killed = redis_client.client_kill_filter(_type="normal", skipme=True)
    assert killed >= 1

    assert wait_for(lambda: redis_client.llen("test:ledger") == 1, timeout=30), worker.tail()
    if ACKS_A_JOB_THAT_RAN_THROUGH_A_RECONNECT:
        assert wait_for(lambda: redis_client.hlen("unacked") == 0, timeout=30), worker.tail()
    time.sleep(5)  # a second run would show now
    assert [line["id"] for line in read_ledger(redis_client)] == [job.id]
    assert redis_client.llen("test:deliveries") == 1, worker.tail()
    assert redis_client.llen("celery") == 0


def test_acks_ride_with_the_next_take_and_none_is_left_behind(private_redis, start_worker_at):
    """A busy worker's ack goes out with its next take: one round trip per job, and no job runs twice."""
    client = private_redis.client()  # a server of its own: its command counts are this worker's alone
    server = Server("redis", private_redis.url)
    bridge = producer(server)
    jobs = 300
    try:
        bridge.queue.add_bulk([("ledger.record", {"key": f"ride-{n}"}) for n in range(jobs)])
        client.config_resetstat()
        worker = start_worker_at(server, "w1")
        assert wait_for(lambda: client.llen("test:ledger") == jobs, timeout=120), worker.tail()
        assert wait_for(lambda: client.hlen("unacked") == 0, timeout=30)  # every ack landed
        assert client.zcard("unacked_index") == 0
        time.sleep(1.0)
        assert sorted(line["key"] for line in read_ledger(client)) == sorted(f"ride-{n}" for n in range(jobs))
        # kombu sends each ack as its own MULTI/EXEC (ZREM, HDEL), as Celery's result backend
        # sends each state (SETEX, PUBLISH): what is not a result is an ack sent on its own.
        stats = {name: value["calls"] for name, value in client.info("commandstats").items()}
        separate_acks = stats.get("cmdstat_exec", 0) - stats.get("cmdstat_setex", 0)
        assert stats.get("cmdstat_zrem", 0) >= jobs  # every job was acked...
        assert separate_acks < jobs // 10, stats  # ...nearly all of them with a take
    finally:
        bridge.close()
        client.close()
