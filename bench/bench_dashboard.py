"""Response time of each dashboard page with 10,000 delayed jobs, 10,000 repeats and 10,000 dead letters.

Run from the repository root (a Redis server must be reachable)::

    .venv/bin/python bench/bench_dashboard.py                 # 10,000 of each, 20 requests per page
    .venv/bin/python bench/bench_dashboard.py --size 1000 --requests 10

The database of ``--redis-url`` (default ``$BRIDGE_TEST_REDIS_URL`` or
``redis://127.0.0.1:6379/14``) is filled through the bridge's own API (``add_bulk`` with
delays and keys, ``jobs.schedule``, the dead letters' ``record``), then ``jobs dashboard``
is started as users start it and every page is fetched ``--requests`` times over HTTP
(first page and last page of each listing, the job lookup of a delayed job and of an
unknown id, which looks through every list, ``/metrics``). The report is the median and
the slowest response per page; the target is under 200 ms. The database is flushed
before and after; the benchmark refuses to start if it holds keys it would not have written.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
if str(ROOT / "bench") not in sys.path:
    sys.path.insert(0, str(ROOT / "bench"))

from _common import refuse_foreign_keys  # noqa: E402
from celery import Celery  # noqa: E402

from bridge import Bridge, Settings, celeryconfig  # noqa: E402
from bridge.redis.deadletters import DeadLetter  # noqa: E402

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/14"
OWN_KEY_PREFIXES = ("celery", "_kombu.", "bridge:", "unacked", "redbeat:")
TARGET_MS = 200.0
JOBS = str(Path(sys.executable).with_name("jobs"))


def fill(bridge: Bridge, size: int) -> str:
    """``size`` delayed jobs, repeats and dead letters on queue ``celery``; returns a delayed job's id."""
    first = ""
    for start in range(0, size, 1000):
        added = bridge.queue.add_bulk([
            ("bench.noop", {"i": i}, {"idempotency_key": f"later-{i}", "delay_ms": 3_600_000 + i * 1000})
            for i in range(start, min(start + 1000, size))
        ])  # fmt: skip
        first = first or added[0].id
    for i in range(size):
        bridge.jobs.schedule("bench.noop", {"i": i}, every_ms=60_000 + i, idempotency_key=f"rep-{i}",
                             queue="celery")  # fmt: skip
    letters = bridge.dead_letters
    assert letters is not None
    client = bridge.backend.client  # type: ignore[attr-defined]
    with client.pipeline(transaction=False) as pipe:
        for i in range(size):
            letter = DeadLetter(
                id=f"dead-{i}", name="bench.noop", queue="celery", data={"i": i}, exc_type="ValueError",
                exc_message=f"cannot process {i}", traceback="Traceback (most recent call last):\n" * 20,
                attempts=3, failed_at=time.time(),
            )  # fmt: skip
            pipe.lpush(letters.key("celery"), json.dumps(letter.as_json()))
        pipe.execute()
    return first


def timed_get(url: str) -> float:
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=30) as response:
        response.read()
        assert response.status == 200, url
    return (time.perf_counter() - started) * 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--size", type=int, default=10_000, help="delayed jobs, repeats and dead letters each"
    )
    parser.add_argument("--requests", type=int, default=20, help="requests per page")
    parser.add_argument("--redis-url", default=os.environ.get("BRIDGE_TEST_REDIS_URL", DEFAULT_REDIS_URL))
    args = parser.parse_args(argv)
    client = redis.Redis.from_url(args.redis_url)
    refuse_foreign_keys(client, args.redis_url, OWN_KEY_PREFIXES)
    client.flushdb()
    settings = Settings(
        redis_url=args.redis_url, queue_backend="redis", jobs_backend="redis", lock_backend="redis"
    )
    app = Celery("bench-dashboard")
    app.config_from_object(celeryconfig.build(settings))
    bridge = Bridge(app, settings=settings)
    proc = None
    try:
        started = time.perf_counter()
        delayed_id = fill(bridge, args.size)
        took = time.perf_counter() - started
        print(f"filled {args.size:,} delayed jobs, repeats and dead letters in {took:.0f} s")
        env = {k: v for k, v in os.environ.items() if k not in ("QUEUE_BACKEND", "BRIDGE_HOME")}
        env.update(REDIS_URL=args.redis_url, QUEUE_BACKEND="redis")
        proc = subprocess.Popen([JOBS, "dashboard", "--port", "0"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)  # fmt: skip
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith("serving"):
            raise SystemExit(f"FAILED: dashboard did not start: {line}{proc.communicate(timeout=10)[1]}")
        base = line.split()[1].rstrip("/")
        last = (args.size // 50) * 50 - 50
        pages = {
            "overview": "/",
            "overview (live part)": "/partials/overview",
            "delayed, first page": "/delayed?queue=celery",
            "delayed, last page": f"/delayed?queue=celery&offset={last}",
            "repeats, first page": "/repeats",
            "repeats, last page": f"/repeats?offset={last}",
            "dead letters, first page": "/dead?queue=celery",
            "dead letters, last page": f"/dead?queue=celery&offset={last}",
            "lookup of a delayed job": f"/lookup?id={delayed_id}",
            "lookup of an unknown id": "/lookup?id=00000000-0000-0000-0000-000000000000",
            "/metrics": "/metrics",
        }
        for path in pages.values():
            timed_get(base + path)  # warm-up: scripts loaded, templates compiled
        print(f"\n{args.size:,} delayed jobs, {args.size:,} repeats, {args.size:,} dead letters; "
              f"{args.requests} requests per page\n")  # fmt: skip
        print("| page | median ms | slowest ms | under 200 ms |")
        print("|---|---:|---:|:---:|")
        for name, path in pages.items():
            times = [timed_get(base + path) for _ in range(args.requests)]
            print(f"| {name} | {statistics.median(times):.1f} | {max(times):.1f} | "
                  f"{'yes' if max(times) < TARGET_MS else 'NO'} |")  # fmt: skip
    finally:
        if proc is not None:
            proc.terminate()
            proc.communicate(timeout=15)
        bridge.close()
        client.flushdb()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
