"""Idle worker memory: the bridged worker against stock Celery with the same settings, per pool.

Run from the repository root (the system Redis must be reachable)::

    .venv/bin/python bench/bench_memory.py                    # 3 rounds, prefork, threads, solo
    .venv/bin/python bench/bench_memory.py --rounds 5 --pools prefork

Each measurement starts a real worker (``celery -A bench.drain_app worker``, as
``bench_drain.py --vs-stock`` starts it: ``BENCH_APP=bridged`` or ``stock``, the same
Celery settings), waits for its ``worker_ready`` mark, lets it sit idle for
``--idle-s`` seconds (default 3), then sums the resident set size (``VmRSS`` in
``/proc/PID/status``) of the worker's main process and every pool process, and stops
it. The report is the median over the rounds per variant and the ratio of the
bridged worker's median to stock Celery's, per pool. No job runs.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from _common import refuse_foreign_keys, stop_process_group  # noqa: E402
from bench_drain import OWN_KEY_PREFIXES, POOLS, READY, worker_env  # noqa: E402

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/13"
APPS = {"bridged": "bridged", "stock": "stock Celery, the same settings"}


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def group_rss_kib(pgid: int) -> int:
    """The worker's main process and its pool processes: every process in its process group."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError):
            if os.getpgid(int(entry.name)) == pgid:
                total += rss_kib(int(entry.name))
    return total


def measure(redis_url: str, pool: str, app: str, idle_s: float, tag: str) -> int:
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    hostname = f"mem-{pool}-{app}-{tag}@bench"
    args = [sys.executable, "-m", "celery", "-A", "bench.drain_app", "worker", "-n", hostname, *POOLS[pool],
            "--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel=WARNING"]  # fmt: skip
    env = worker_env(REDIS_URL=redis_url, QUEUE_BACKEND="redis", BENCH_APP=app)
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not client.get(f"{READY}{hostname}"):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"FAILED: worker {hostname} did not become ready")
            time.sleep(0.05)
        time.sleep(idle_s)
        return group_rss_kib(proc.pid)
    finally:
        stop_process_group(proc)
        client.flushdb()
        client.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pools", default="prefork,threads,solo")
    parser.add_argument("--idle-s", type=float, default=3.0)
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL, help="a dedicated database, flushed")
    args = parser.parse_args(argv)
    pools = [p.strip() for p in args.pools.split(",")]
    if any(p not in POOLS for p in pools) or args.rounds < 1:
        parser.error(f"--pools takes {', '.join(POOLS)}; --rounds at least 1")
    refuse_foreign_keys(redis.Redis.from_url(args.redis_url), args.redis_url, OWN_KEY_PREFIXES)
    results: dict[tuple[str, str], list[int]] = {(p, a): [] for p in pools for a in APPS}
    for r in range(args.rounds):
        for pool in pools:
            order = list(APPS) if r % 2 == 0 else list(reversed(APPS))
            for app in order:
                kib = measure(args.redis_url, pool, app, args.idle_s, f"r{r}")
                results[(pool, app)].append(kib)
                print(
                    f"  round {r + 1}/{args.rounds}  {pool:8} {APPS[app]:32} {kib / 1024:7.1f} MiB",
                    flush=True,
                )
    print()
    print("| pool | worker | median RSS MiB | min-max MiB | ratio to stock |")
    print("|---|---|---:|---:|---:|")
    for pool in pools:
        stock = statistics.median(results[(pool, "stock")])
        for app, label in APPS.items():
            values = results[(pool, app)]
            median = statistics.median(values)
            spread = f"{min(values) / 1024:.1f}-{max(values) / 1024:.1f}"
            print(f"| {pool} | {label} | {median / 1024:.1f} | {spread} | {median / stock:.3f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
