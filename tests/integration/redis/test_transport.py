"""The bridged app's own kombu transport: selected for its workers only, nothing of kombu changed.

The worker consumes through ``bridge.redis.transport`` (plain Redis, a unix socket on
the embedded server, Sentinel in ``test_sentinel.py``); the test process, a producer
and every other kombu user keep kombu's own classes.
"""

from __future__ import annotations

import statistics
import threading
import time

import pytest
import redis
from kombu import Connection
from kombu.transport import redis as kombu_redis

from tests.conftest import BACKENDS, read_ledger, server_ms, wait_for

pytestmark = [pytest.mark.redis, pytest.mark.worker]


@pytest.mark.parametrize("backend_kind", BACKENDS, indirect=True)
def test_the_worker_consumes_through_the_bridges_transport_and_no_kombu_class_is_changed(
    start_worker, make_bridge, backend_kind: str
) -> None:
    bridge = make_bridge()
    start_worker("w1")
    state = bridge.app.send_task("ledger.kombu_state").get(timeout=30)
    expected = "Transport" if backend_kind == "redis" else "SocketTransport"  # the embedded server: a socket
    assert state == {"broker_transport": f"bridge.redis.transport:{expected}", "patched": []}
    # The producer side of the same app is Celery's and kombu's, untouched.
    assert not bridge.app.conf.broker_transport
    with bridge.app.connection_for_write() as connection:
        assert type(connection.default_channel) is kombu_redis.Channel


def test_another_kombu_user_in_a_bridged_process_keeps_kombus_fetch(make_bridge, redis_url: str) -> None:
    """A kombu consumer of its own, in a process with a bridged app, gets kombu's BRPOP and its ack."""
    make_bridge()
    with Connection(redis_url) as connection:
        queue = connection.SimpleQueue("test-plain-kombu")
        queue.put({"n": 1})
        message = queue.get(timeout=5)
        assert type(connection.default_channel) is kombu_redis.Channel
        assert message.payload == {"n": 1}
        message.ack()
        queue.close()


def test_the_restore_sweeps_lock_expires_in_seconds_not_kombus_five_minutes(
    start_worker, redis_client
) -> None:
    """A worker killed mid-sweep leaves kombu's restore lock behind; the bridge's channel sets its expiry.

    With kombu's 300 s the lock a killed sweeper left kept every dead worker's jobs from
    coming back for five minutes. Redis's MONITOR shows the lock the worker takes.
    """
    start_worker("w1", JOBS_VISIBILITY_TIMEOUT_SEC="4")  # a sweep every second
    monitor_client = redis.Redis(connection_pool=redis_client.connection_pool)
    db = redis_client.connection_pool.connection_kwargs.get("db", 0)
    locks: list[str] = []
    stop = threading.Event()

    def watch() -> None:
        with monitor_client.monitor() as monitor:
            for command in monitor.listen():
                text = command["command"]
                if command.get("db") == db and "unacked_mutex" in text and text.upper().startswith("SET"):
                    locks.append(text)
                if stop.is_set() or len(locks) >= 2:
                    return

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        assert wait_for(lambda: len(locks) >= 1, timeout=30), "no restore sweep seen"
    finally:
        stop.set()
        redis_client.ping()  # a command for the monitor to see, so it notices the stop
        watcher.join(5)
    # redis-py's lock: SET unacked_mutex <token> NX PX <expiry in ms> (PX before NX in redis-py 5)
    words = locks[0].split()
    assert words[words.index("PX") + 1] == "10000", locks[0]


def test_an_idle_worker_starts_a_job_at_once_on_any_queue_and_priority(
    start_worker, make_bridge, redis_client
) -> None:
    """The doorbell: a job on a priority sublist or a second queue does not wait out the 1 s BLMOVE.

    Before it, an idle worker blocked on its first queue's plain key only and noticed
    anything else when that wait timed out: 0-1 s, about 0.55 s at the median.
    """
    worker = start_worker("w1")
    bridge = make_bridge()
    sends = {
        "priority 9 on the first queue": {"priority": 9},
        "the jobs queue": {"queue": bridge.jobs_queue},
        "the first queue, plain": {},
    }
    delays: dict[str, list[int]] = {name: [] for name in sends}
    for round_ in range(5):
        for name, options in sends.items():
            time.sleep(0.3)  # idle: the worker is back in its wait
            before = redis_client.llen("test:ledger")
            sent_ms = server_ms(redis_client)
            bridge.app.send_task("ledger.record", kwargs={"key": f"{name}-{round_}"}, **options)
            assert wait_for(lambda b=before: redis_client.llen("test:ledger") > b, timeout=10), name
            delays[name].append(read_ledger(redis_client)[-1]["at_ms"] - sent_ms)
    medians = {name: statistics.median(values) for name, values in delays.items()}
    assert all(median < 250 for median in medians.values()), (medians, worker.tail(40))


def test_a_queue_added_at_run_time_gets_the_doorbell_and_the_worker_keeps_fetching(
    start_worker, make_bridge, redis_client
) -> None:
    """``celery control add_consumer``: the channel's doorbell is replaced for the new set of lists.

    The old doorbell's connection is closed on the way; kombu 5.3 stops the worker's
    polling when a connection of the channel's asynchronous pool disconnects, so the
    doorbell must not be one of those.
    """
    worker = start_worker("w1")
    bridge = make_bridge()
    reply = bridge.app.control.add_consumer("extra", destination=[worker.hostname], reply=True, timeout=10)
    assert reply, "no reply from the worker"
    assert "ok" in reply[0][worker.hostname], reply
    time.sleep(1.5)  # idle: the channel is back in its wait, with the new doorbell

    def run(**options: object) -> int:
        before = redis_client.llen("test:ledger")
        sent_ms = server_ms(redis_client)
        bridge.app.send_task("ledger.record", kwargs={"key": str(options)}, **options)
        assert wait_for(lambda: redis_client.llen("test:ledger") > before, timeout=15), worker.tail(40)
        return int(read_ledger(redis_client)[-1]["at_ms"] - sent_ms)

    delays = [run(queue="extra"), run(priority=9), run(queue="extra", priority=6), run()]
    assert sorted(delays)[len(delays) // 2] < 500, delays  # at once, not after a 1 s wait each


def test_a_worker_whose_server_forgot_its_scripts_loads_the_take_again_and_runs_every_job(
    start_worker, make_bridge, redis_client
) -> None:
    """``SCRIPT FLUSH`` (or a failover to a replica that never saw the script) while workers run:
    the next take is answered NOSCRIPT; the worker loads it and goes on, losing and repeating nothing."""
    start_worker("w1")
    bridge = make_bridge()
    bridge.queue.add("ledger.record", {"key": "before"})
    assert wait_for(lambda: redis_client.llen("test:ledger") == 1, timeout=20)
    for round_ in range(3):
        redis_client.script_flush()
        for i in range(5):
            bridge.queue.add("ledger.record", {"key": f"after-{round_}-{i}"})
    assert wait_for(lambda: redis_client.llen("test:ledger") >= 16, timeout=30)
    time.sleep(1.0)  # proves no repeat: a second run of any of them would land within ms
    keys = [line["key"] for line in read_ledger(redis_client)]
    assert sorted(keys) == sorted(["before", *(f"after-{r}-{i}" for r in range(3) for i in range(5))])
