"""bridge.lock on a real server: mutual exclusion across processes, expiry, extension."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time

import pytest

from bridge import Bridge, LockLost, LockNotAcquired, Settings
from tests.conftest import BACKENDS, wait_for

pytestmark = pytest.mark.redis
both_backends = pytest.mark.parametrize("backend_kind", BACKENDS, indirect=True)


def _bridge(settings: Settings) -> Bridge:
    from celery import Celery

    from bridge import celeryconfig

    app = Celery("locker")
    app.config_from_object(celeryconfig.build(settings))
    return Bridge(app, settings=settings)


def _increment(settings: Settings, times: int, barrier: multiprocessing.Barrier) -> None:
    """Read-modify-write outside Redis atomics: only the lock keeps it right."""
    bridge = _bridge(settings)
    barrier.wait()
    for _ in range(times):
        with bridge.lock("counter", ttl_ms=5_000):
            value = int(bridge.store.get("test:counter") or 0)
            bridge.store.set("test:counter", value + 1)


@both_backends
def test_eight_processes_increment_exactly_1600_times(redis_client, server):
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(8)
    procs = [ctx.Process(target=_increment, args=(server.settings(), 200, barrier)) for _ in range(8)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(180)
        assert p.exitcode == 0
    assert int(redis_client.get("test:counter")) == 1600


def test_a_holder_that_outlives_its_ttl_gets_lock_lost_and_spares_the_new_holder(make_bridge, redis_client):
    bridge = make_bridge()
    first = bridge.lock("report", ttl_ms=300)
    first.acquire()
    time.sleep(0.5)  # expired
    second = bridge.lock("report", ttl_ms=10_000, blocking=False)
    second.acquire()

    with pytest.raises(LockLost, match="report"):
        first.release()
    assert second.held
    assert redis_client.exists("bridge:lock:report")
    second.release()
    assert not redis_client.exists("bridge:lock:report")


def test_non_blocking_and_timed_acquire_fail_clearly(make_bridge):
    bridge = make_bridge()
    with bridge.lock("busy", ttl_ms=5_000):
        with (
            pytest.raises(LockNotAcquired, match="held elsewhere"),
            bridge.lock("busy", ttl_ms=1000, blocking=False),
        ):
            pass
        with pytest.raises(LockNotAcquired, match="200 ms"), bridge.lock("busy", ttl_ms=1000, timeout_ms=200):
            pass


def test_release_happens_when_the_block_raises(make_bridge, redis_client):
    bridge = make_bridge()
    with pytest.raises(ZeroDivisionError), bridge.lock("boom", ttl_ms=5_000):
        1 / 0
    assert not redis_client.exists("bridge:lock:boom")


def test_auto_extend_keeps_the_lock_past_its_ttl_and_stops_on_exit(make_bridge, redis_client):
    bridge = make_bridge()
    # A ttl of 1.5 s, extended every 0.5 s: a busy machine stalling the extender for a moment
    # does not lose it, as a 300 ms ttl could.
    with bridge.lock("long", ttl_ms=1500, auto_extend=True):
        time.sleep(4.5)  # three times the ttl
        with pytest.raises(LockNotAcquired):
            bridge.lock("long", ttl_ms=1500, blocking=False).acquire()
    assert not redis_client.exists("bridge:lock:long")


def _hold_forever(settings: Settings) -> None:
    bridge = _bridge(settings)
    with bridge.lock("orphan", ttl_ms=1500, auto_extend=True):
        time.sleep(60)  # holds it until the test kills this process


def test_auto_extend_stops_when_the_holder_dies(server, redis_client):
    ctx = multiprocessing.get_context("spawn")
    holder = ctx.Process(target=_hold_forever, args=(server.settings(),))
    holder.start()
    assert wait_for(lambda: bool(redis_client.exists("bridge:lock:orphan")), timeout=30)
    time.sleep(4.0)  # well past its 1.5 s ttl: only the extender keeps it
    assert redis_client.exists("bridge:lock:orphan")
    os.kill(holder.pid, signal.SIGKILL)
    holder.join(10)
    assert redis_client.pttl("bridge:lock:orphan") <= 1500  # nobody extends it any more
    assert wait_for(lambda: not redis_client.exists("bridge:lock:orphan"), timeout=10)


def test_lock_as_a_decorator_takes_a_fresh_lock_per_call(make_bridge, redis_client):
    bridge = make_bridge()
    calls = []

    @bridge.lock("decorated", ttl_ms=5_000, blocking=False)
    def singleton(n: int) -> int:
        calls.append(redis_client.exists("bridge:lock:decorated"))
        return n * 2

    assert [singleton(1), singleton(2)] == [2, 4]
    assert calls == [1, 1]
    assert not redis_client.exists("bridge:lock:decorated")
