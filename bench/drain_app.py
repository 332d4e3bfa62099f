"""The Celery app of ``bench_drain.py``: one task that only counts its runs.

Started as a real worker with ``celery -A bench.drain_app worker``; the server
(system Redis or the embedded Valkey server) comes from the environment, as for
any app configured with ``app.config_from_object("bridge.celeryconfig")``.
"""

from __future__ import annotations

import os
from typing import Any

import redis
from celery import Celery, signals

from bridge import Bridge

# BENCH_APP: "bridged" (default), "stock" (the same Celery settings, no Bridge: the honest
# baseline), or "stock-default" (Celery's own defaults, only the broker set: for reference).
MODE = os.environ.get("BENCH_APP", "bridged")
app = Celery("bench-drain")
if MODE == "stock-default":
    app.conf.broker_url = os.environ["REDIS_URL"]
else:
    app.config_from_object("bridge.celeryconfig")
bridge = Bridge(app) if MODE == "bridged" else None
if bridge is not None and os.environ.get("BENCH_FETCH") == "kombu":
    # The baseline of the fetch comparisons: kombu's own Redis transport (its BRPOP fetch)
    # instead of the bridge's (bridge/redis/transport.py); everything else stays bridged.
    app.steps["consumer"] = {s for s in app.steps["consumer"] if s.label != "bridge transport"}

TASK_NAME = "bench.noop"
COUNTER = "bench:done"  # INCR once per run: the benchmark's exact completion check
STAMPS = "bench:stamps"  # bench_pickup.py: "<added µs> <started µs>" per run, on the server's clock
READY = "bench:ready:"  # + hostname; the server time (µs) and counter when the worker was ready


_own: dict[int, redis.Redis] = {}


def client() -> redis.Redis:
    """The server under test: the bridge's client, or (stock) one redis-py client per process."""
    if bridge is not None:
        return bridge.backend.client  # type: ignore[attr-defined, no-any-return]
    pid = os.getpid()
    if pid not in _own:
        _own[pid] = redis.Redis.from_url(os.environ["REDIS_URL"])
    return _own[pid]


@app.task(name=TASK_NAME, ignore_result=True)  # type: ignore[untyped-decorator]
def noop(**_: Any) -> None:
    client().incr(COUNTER)


@app.task(name="bench.stamp", ignore_result=True)  # type: ignore[untyped-decorator]
def stamp(added_us: int) -> None:
    """Record when the job started, on the server's clock (as its add was)."""
    seconds, micros = client().time()
    client().rpush(STAMPS, f"{added_us} {int(seconds) * 1_000_000 + int(micros)}")


@signals.worker_process_init.connect
def _connect(**_: Any) -> None:
    # Each pool process opens its connection before the worker is ready, not in the timed run.
    client().ping()


@signals.worker_ready.connect
def _announce_ready(sender: Any = None, **_: Any) -> None:
    # Sent after the consumer was registered and before the event loop delivers a message.
    with client().pipeline(transaction=True) as pipe:
        pipe.time()
        pipe.get(COUNTER)
        (seconds, micros), done = pipe.execute()
    client().set(f"{READY}{sender.hostname}", f"{int(seconds) * 1_000_000 + int(micros)} {int(done or 0)}")
