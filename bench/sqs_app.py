"""The Celery app of ``bench_sqs.py``: one task that only counts its runs, with or without a Bridge.

``BENCH_BRIDGE=1`` binds ``Bridge(app)`` (tombstone check on receipt, the
visibility heartbeat, the hop task); ``BENCH_BRIDGE=0`` is plain Celery on the
same kombu SQS transport and settings. The counter lives in ``BENCH_REDIS_URL``.
"""

from __future__ import annotations

import os
from typing import Any

import redis
from celery import Celery, signals

app = Celery("bench-sqs")
app.config_from_object("bridge.celeryconfig")
if os.environ.get("BENCH_BRIDGE") == "1":
    from bridge import Bridge

    bridge = Bridge(app)

TASK_NAME = "bench.noop"
COUNTER = "bench:done"  # INCR once per run: the exact completion check
READY = "bench:ready:"  # + hostname: the Redis server time (µs) when the worker was ready
_client: redis.Redis | None = None


def client() -> redis.Redis:
    global _client
    if _client is None:
        _client = redis.Redis.from_url(os.environ["BENCH_REDIS_URL"])
    return _client


@app.task(name=TASK_NAME, ignore_result=True)  # type: ignore[untyped-decorator]
def noop(**_: Any) -> None:
    client().incr(COUNTER)


@signals.worker_process_init.connect
def _connect(**_: Any) -> None:
    global _client
    _client = None  # a fresh connection per pool process, opened before the timed run
    client().ping()


@signals.worker_ready.connect
def _announce_ready(sender: Any = None, **_: Any) -> None:
    seconds, micros = client().time()
    client().set(f"{READY}{sender.hostname}", int(seconds) * 1_000_000 + int(micros))
