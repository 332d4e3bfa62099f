"""Producer throughput of ``bridge.queue.add`` / ``add_bulk`` against plain Celery ``apply_async``.

Run from the repository root (a Redis server must be reachable)::

    .venv/bin/python bench/bench_add.py                 # 20,000 jobs x 5 rounds
    .venv/bin/python bench/bench_add.py --jobs 5000 --rounds 3 --chunk 500
    tox -e bench -- --rounds 3

Only the producer side is measured: no worker runs, so the messages pile up in the
``celery`` list of a dedicated Redis database (``--redis-url``, default
``$BRIDGE_TEST_REDIS_URL`` or ``redis://127.0.0.1:6379/14``). That database, and
only that one, is flushed before every measurement and at the end; the benchmark
refuses to start if it holds keys that do not look like its own.

Variants, each timed over ``--jobs`` jobs after a warm-up of 200 jobs, in an order
rotated every round:

* ``apply_async``: ``noop.apply_async(kwargs=data)``, the baseline;
* ``add (key)``: ``bridge.queue.add(name, data, idempotency_key=<unique>)``;
* ``add_bulk (key)``: ``bridge.queue.add_bulk([...])`` in chunks of ``--chunk``,
  every item with its own idempotency key;
* ``add (no key)``: ``bridge.queue.add(name, data)``, for information.

After every measurement the number of messages in the ``celery`` list must equal
the number of jobs, or the run stops with an error. The report is a markdown
table of the median jobs/s per variant and its ratio to the ``apply_async`` median.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import redis
from celery import Celery

ROOT = Path(__file__).resolve().parent.parent
BULLMQ = ROOT / "bench" / "bullmq"
if str(ROOT) not in sys.path:  # `python bench/bench_add.py` puts bench/, not the root, on the path
    sys.path.insert(0, str(ROOT))

from _common import rates_table, refuse_foreign_keys  # noqa: E402

from bridge import (  # noqa: E402
    Bridge,
    Settings,
    celeryconfig,
)

TASK_NAME = "bench.noop"
WARMUP_JOBS = 200
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/14"
# Keys the benchmark itself leaves behind (kombu's bindings, the queue, bridge guards).
OWN_KEY_PREFIXES = ("celery", "_kombu.", "bridge:", "unacked", "bull:")

Payload = dict[str, Any]
# Sends ``jobs`` (payload, idempotency key) pairs; returns nothing, is timed as a whole.
Sender = Callable[[Sequence[Payload], Sequence[str]], None]


@dataclass(frozen=True)
class Variant:
    name: str
    send: Sender | None = None  # None: a BullMQ variant
    target: float | None = None  # required ratio to the apply_async median, if any
    bullmq_mode: str | None = None  # BullMQ's producer (bench/bullmq/producer.mjs) in this mode
    anchor: str | None = None  # the variant whose median this one is also compared with


@dataclass
class Result:
    variant: Variant
    rates: list[float] = field(default_factory=list)  # jobs/s, one per round

    @property
    def median(self) -> float:
        return statistics.median(self.rates)


class Bench:
    """One Celery app, one Bridge and one Redis database, shared by all variants."""

    def __init__(self, redis_url: str, chunk: int, bullmq: bool = False) -> None:
        self.redis_url = redis_url
        self.chunk = chunk
        settings = Settings(
            redis_url=redis_url, queue_backend="redis", jobs_backend="redis", lock_backend="redis"
        )
        self.app = Celery("bench")
        self.app.config_from_object(celeryconfig.build(settings))

        @self.app.task(name=TASK_NAME)  # type: ignore[untyped-decorator]
        def noop(**kw: Any) -> None:
            pass

        self.noop: Any = noop
        self.bridge = Bridge(self.app, settings=settings)
        self.redis = redis.Redis.from_url(redis_url)
        self.queue_key: str = self.app.conf.task_default_queue
        self.run_id = uuid.uuid4().hex[:8]
        self.variants = [
            Variant("apply_async", self.send_apply_async),
            Variant("queue.add (key)", self.send_add_key, target=2.5),
            Variant(f"queue.add_bulk (key, chunk {chunk})", self.send_add_bulk, target=10.0),
            Variant("queue.add (no key)", self.send_add_no_key),
        ]
        if bullmq:
            check_bullmq_installed()
            self.variants[1:] = [
                Variant("queue.add (key)", self.send_add_key, anchor="BullMQ add (jobId)"),
                Variant("BullMQ add (jobId)", bullmq_mode="add-key"),
                Variant(
                    f"queue.add_bulk (key, chunk {chunk})",
                    self.send_add_bulk,
                    anchor=f"BullMQ addBulk (jobId, chunk {chunk})",
                ),
                Variant(f"BullMQ addBulk (jobId, chunk {chunk})", bullmq_mode="add-bulk"),
                Variant("queue.add (no key)", self.send_add_no_key, anchor="BullMQ add"),
                Variant("BullMQ add", bullmq_mode="add"),
            ]

    # -- the variants -----------------------------------------------------------

    def send_apply_async(self, payloads: Sequence[Payload], keys: Sequence[str]) -> None:
        apply_async = self.noop.apply_async
        for data in payloads:
            apply_async(kwargs=data)

    def send_add_key(self, payloads: Sequence[Payload], keys: Sequence[str]) -> None:
        add = self.bridge.queue.add
        for data, key in zip(payloads, keys, strict=True):
            add(TASK_NAME, data, idempotency_key=key)

    def send_add_no_key(self, payloads: Sequence[Payload], keys: Sequence[str]) -> None:
        add = self.bridge.queue.add
        for data in payloads:
            add(TASK_NAME, data)

    def send_add_bulk(self, payloads: Sequence[Payload], keys: Sequence[str]) -> None:
        add_bulk = self.bridge.queue.add_bulk
        for start in range(0, len(payloads), self.chunk):
            stop = start + self.chunk
            add_bulk(
                [
                    (TASK_NAME, data, {"idempotency_key": key})
                    for data, key in zip(payloads[start:stop], keys[start:stop], strict=True)
                ]
            )

    # -- measuring --------------------------------------------------------------

    def check_database(self) -> None:
        refuse_foreign_keys(self.redis, self.redis_url, OWN_KEY_PREFIXES)

    def flush(self) -> None:
        self.redis.flushdb()  # only the database selected by --redis-url

    def inputs(self, tag: str, jobs: int) -> tuple[list[Payload], list[str]]:
        """Payloads and idempotency keys unique to this run, measurement and variant."""
        payloads = [{"order_id": i, "email": f"user{i}@example.com"} for i in range(jobs)]
        keys = [f"bench-{self.run_id}-{tag}-{i}" for i in range(jobs)]
        return payloads, keys

    def measure(self, variant: Variant, jobs: int, tag: str) -> float:
        """Warm up, time ``jobs`` sends, check every one reached Redis; return jobs/s."""
        if variant.bullmq_mode:
            return self.measure_bullmq(variant.bullmq_mode, jobs)
        assert variant.send is not None
        self.flush()
        variant.send(*self.inputs(f"{tag}-warmup", WARMUP_JOBS))
        self.flush()
        payloads, keys = self.inputs(tag, jobs)
        gc.collect()
        started = time.perf_counter()
        variant.send(payloads, keys)
        elapsed = time.perf_counter() - started
        pushed = int(self.redis.llen(self.queue_key))
        if pushed != jobs:
            raise SystemExit(
                f"FAILED: {variant.name} sent {jobs} jobs but the {self.queue_key!r} list holds {pushed} "
                "messages; the measurement is meaningless."
            )
        self.flush()
        return jobs / elapsed

    def measure_bullmq(self, mode: str, jobs: int) -> float:
        """BullMQ's own producer in Node, on the same database: it warms up, times and checks its
        queue holds every job itself, as :meth:`measure` does."""
        out = subprocess.run(
            ["node", str(BULLMQ / "producer.mjs"), self.redis_url, mode, str(jobs), str(self.chunk),
             str(WARMUP_JOBS)],
            capture_output=True, text=True, check=False, timeout=600,
        )  # fmt: skip
        if out.returncode != 0:
            raise SystemExit(f"FAILED: BullMQ {mode}: {out.stderr.strip()[-2000:]}")
        report = json.loads(out.stdout)
        return float(report["jobs"]) / float(report["seconds"])

    def run(self, jobs: int, rounds: int) -> list[Result]:
        self.check_database()
        results = {v.name: Result(v) for v in self.variants}
        try:
            for r in range(rounds):
                shift = r % len(self.variants)
                order = self.variants[shift:] + self.variants[:shift]
                for variant in order:
                    rate = self.measure(variant, jobs, tag=f"r{r}-{self.variants.index(variant)}")
                    results[variant.name].rates.append(rate)
                    print(f"  round {r + 1}/{rounds}  {variant.name:<32} {rate:>10,.0f} jobs/s", flush=True)
        finally:
            self.flush()
            self.bridge.close()
            self.redis.close()
        return [results[v.name] for v in self.variants]


# -- reporting ------------------------------------------------------------------


def environment(redis_url: str, client: redis.Redis) -> list[str]:
    server = client.info("server")
    return [
        f"- CPU cores (os.cpu_count): {os.cpu_count()}",
        f"- Python {platform.python_version()} ({platform.system()} {platform.machine()})",
        f"- celery {version('celery')}, kombu {version('kombu')}, redis-py {version('redis')}",
        f"- Redis server {server.get('redis_version')} at {redis_url}",
    ]


def table(results: Sequence[Result]) -> str:
    rows = [(r.variant.name, r.median, r.rates, r.variant.target or None) for r in results]
    return rates_table("variant", "apply_async", rows)


def anchor_table(results: Sequence[Result]) -> str:
    """The bridge's variants against BullMQ's (``--bullmq``): target 1.0x, as fast or faster."""
    medians = {r.variant.name: r.median for r in results}
    lines = [
        "| bridge | BullMQ | bridge median / BullMQ median | target | met |",
        "|---|---|---:|---:|:---:|",
    ]
    for r in results:
        if r.variant.anchor:
            ratio = r.median / medians[r.variant.anchor]
            met = "yes" if ratio >= 1 else "NO"
            lines.append(f"| {r.variant.name} | {r.variant.anchor} | {ratio:.2f}x | >= 1x | {met} |")
    return "\n".join(lines)


def check_bullmq_installed() -> None:
    if shutil.which("node") is None or not (BULLMQ / "node_modules" / "bullmq").is_dir():
        raise SystemExit(
            "--bullmq needs Node.js and BullMQ: install them with `npm ci --prefix bench/bullmq` "
            "(the versions pinned in bench/bullmq/package-lock.json)."
        )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--jobs", type=int, default=20_000, help="jobs per measurement (default 20000)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds; variant order rotates (default 5)")
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("BRIDGE_TEST_REDIS_URL", DEFAULT_REDIS_URL),
        help="a dedicated Redis database, flushed before every measurement "
        f"(default $BRIDGE_TEST_REDIS_URL or {DEFAULT_REDIS_URL})",
    )
    parser.add_argument("--chunk", type=int, default=1000, help="items per add_bulk call (default 1000)")
    parser.add_argument(
        "--bullmq", action="store_true",
        help="also run BullMQ's producer (Node; npm ci --prefix bench/bullmq) as the anchor",
    )  # fmt: skip
    args = parser.parse_args(argv)
    for name in ("jobs", "rounds", "chunk"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    bench = Bench(args.redis_url, args.chunk, bullmq=args.bullmq)
    env = environment(args.redis_url, bench.redis)
    print(f"{args.jobs:,} jobs per measurement, {args.rounds} rounds, add_bulk chunk {args.chunk}")
    print("\n".join(env), flush=True)
    results = bench.run(args.jobs, args.rounds)
    print()
    print(table(results))
    if args.bullmq:
        print()
        print(anchor_table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
