"""The bridged app's own kombu transport: selected for its workers only, nothing of kombu changed.

The worker consumes through ``bridge.redis.transport`` (plain Redis, a unix socket on
the embedded server, Sentinel in ``test_sentinel.py``); the test process, a producer
and every other kombu user keep kombu's own classes.
"""

from __future__ import annotations

import threading

import pytest
import redis
from kombu import Connection
from kombu.transport import redis as kombu_redis

from tests.conftest import BACKENDS, wait_for

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
    # redis-py's lock: SET unacked_mutex <token> NX PX <expiry in ms>
    assert locks[0].split()[-2:] == ["PX", "10000"], locks[0]
