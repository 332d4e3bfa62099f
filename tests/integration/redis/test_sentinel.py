"""Redis Sentinel and unix-socket URLs, as Celery takes them, with real servers.

The Sentinel group is a primary, a replica and three sentinels on loopback ports
(:class:`tests.redis_server.SentinelGroup`). Workers, beat and producers reach the
primary through the sentinels; after ``kill -9`` of the primary they carry on
against the promoted replica.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from celery import Celery

from bridge import Bridge, celeryconfig
from bridge.errors import BackendUnavailable
from tests.conftest import JOBS, CeleryProcess, Server, read_ledger, wait_for
from tests.redis_server import RedisServerProcess, SentinelGroup

pytestmark = [pytest.mark.redis, pytest.mark.worker, pytest.mark.slow]


@pytest.fixture
def sentinel_group(tmp_path: Path) -> Iterator[SentinelGroup]:
    group = SentinelGroup(tmp_path / "sentinel")
    try:
        group.start()
        yield group
    finally:
        group.stop()


def producer(server: Server, **conf: object) -> Bridge:
    """An app configured as a user would: ``bridge.celeryconfig`` from the environment's settings."""
    app = Celery("producer-sentinel")
    app.config_from_object(celeryconfig.build(server.settings()))
    app.conf.update(conf)
    return Bridge(app, settings=server.settings())


def add_through_failover(bridge: Bridge, key: str, **options: object) -> str:
    """Add as a producer should during a failover: a BackendUnavailable is retried with the same key."""
    deadline = time.monotonic() + 60
    while True:
        try:
            return bridge.queue.add("ledger.record", {"key": key}, idempotency_key=key, **options).id  # type: ignore[arg-type]
        except BackendUnavailable:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)  # between retries while the sentinels promote the replica


def test_workers_beat_and_producers_carry_on_after_the_primary_is_killed(
    sentinel_group: SentinelGroup, start_worker_at, tmp_path: Path
) -> None:
    server = Server("redis", sentinel_group.url, sentinel_master=SentinelGroup.MASTER)
    client = server.client()
    worker = start_worker_at(server, "w1")
    beat_args = ["beat", "--loglevel=INFO", "-s", str(tmp_path / "beat-schedule")]
    beat = CeleryProcess.spawn(beat_args, tmp_path / "beat.log", server.env())
    bridge = producer(server)

    def ran(key: str) -> bool:
        return any(line["key"] == key for line in read_ledger(client))

    def ticks() -> int:
        return sum(line["key"] == "tick" for line in read_ledger(client))

    try:
        # Before the failover: an add, its duplicate, a delayed job due after it, and a repeat.
        first = bridge.queue.add("ledger.record", {"key": "before"}, idempotency_key="before")
        assert bridge.queue.add("ledger.record", {"key": "before"}, idempotency_key="before").deduplicated
        delayed = bridge.queue.add("ledger.record", {"key": "delayed"}, delay_ms=20_000)
        bridge.jobs.schedule("ledger.record", {"key": "tick"}, every_ms=1000, idempotency_key="tick")
        assert wait_for(lambda: ran("before"), 60), worker.tail()
        assert wait_for(lambda: ran("tick"), 60), beat.tail()
        # Asynchronous replication: only what reached the replica survives the primary.
        assert wait_for(sentinel_group.in_sync, 10)

        assert not ran("delayed")  # still waiting in the primary when it dies
        old_primary = sentinel_group.primary_port()
        sentinel_group.primary.kill9()
        assert wait_for(lambda: sentinel_group.primary_port() != old_primary, 60), "no failover happened"
        assert sentinel_group.primary_port() == sentinel_group.replica.port

        after = add_through_failover(bridge, "after")
        ticks_at_failover = ticks()

        assert wait_for(lambda: ran("after"), 90), worker.tail()
        assert wait_for(lambda: ran("delayed"), 60), worker.tail()
        # The repeat keeps firing from the new primary.
        assert wait_for(lambda: ticks() >= ticks_at_failover + 3, 60), beat.tail()
        ids = {line["key"]: line["id"] for line in read_ledger(client) if line["key"] != "tick"}
        assert ids == {"before": first.id, "delayed": delayed.id, "after": after}
        # The dedupe guard of a job added before the failover was replicated with it.
        assert bridge.queue.add("ledger.record", {"key": "before"}, idempotency_key="before").deduplicated
        # The jobs command reaches the new primary through the same sentinels.
        out = subprocess.run(
            [JOBS, "stats", "--json"],
            env=server.env(), capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["app:jobs"]["scheduled"] == 1
    finally:
        beat.stop()
        bridge.close()
        client.close()


def test_a_unix_socket_url_in_kombus_spelling_serves_adds_delays_and_workers(tmp_path: Path, start_worker_at):
    socket_path = tmp_path / "r.sock"
    redis_server = RedisServerProcess(tmp_path / "redis", extra=["--unixsocket", str(socket_path)])
    redis_server.start()
    try:
        server = Server("redis", f"redis+socket://{socket_path}")
        client = server.client()
        start_worker_at(server, "w1")
        bridge = producer(server)
        try:
            now = bridge.queue.add("ledger.record", {"key": "now"}, idempotency_key="now")
            assert bridge.queue.add("ledger.record", {"key": "now"}, idempotency_key="now").deduplicated
            later = bridge.queue.add("ledger.record", {"key": "later"}, delay_ms=1_000)
            assert wait_for(lambda: len(read_ledger(client)) == 2, 60)
            assert {line["id"] for line in read_ledger(client)} == {now.id, later.id}
            assert redis_server.client().llen("test:ledger") == 2  # the server behind the socket
        finally:
            bridge.close()
            client.close()
    finally:
        redis_server.kill9()
