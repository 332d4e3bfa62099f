"""Cost of one beat tick with 100 vs 10,000 standing repeats, 10 of them due per tick.

Run from the repository root (a Redis server must be reachable)::

    .venv/bin/python bench/bench_beat_tick.py             # 100 vs 10,000 standing, 20 ticks each
    .venv/bin/python bench/bench_beat_tick.py --large 2000 --ticks 10

For each count of standing repeats, on a dedicated Redis database (``--redis-url``,
default ``redis://127.0.0.1:6379/12``; that database, and only that one, is flushed
before each case and at the end):

1. build an app + ``Bridge`` as users do and create the standing repeats with
   ``bridge.jobs.schedule(name, data, every_ms=86_400_000, idempotency_key="idle-<i>")``;
2. instantiate the scheduler ``celery beat`` would run, ``bridge.worker.beat.BridgeScheduler``,
   in-process and without the beat lock;
3. a new ``every_ms`` repeat is due at once (its first run is at its anchor), so tick
   until none is due, check every standing repeat fired once, and delete the
   ``app:jobs`` list: from then on the standing repeats are next due in a day;
4. create ``--due`` hot repeats (``every_ms=1000``, keys ``hot-0``...) and fire them
   once (a warm-up tick, checked but not timed);
5. ``--ticks`` times: sleep until every hot repeat is due again (from the entries'
   own due instants: redbeat's scores are whole seconds), check exactly ``--due``
   repeats are due, time ``scheduler.tick()`` with ``time.perf_counter()``,
   and check it enqueued exactly ``--due`` jobs (``LLEN app:jobs`` before/after);
   otherwise the run stops with an error.

The report is a markdown table of the median tick time per count and its ratio to
the smaller count (the issue's target: at most 1.5).
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path

import redis
from celery import Celery

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python bench/bench_beat_tick.py` puts bench/, not the root, on the path
    sys.path.insert(0, str(ROOT))

from _common import refuse_foreign_keys, target_cells  # noqa: E402

from bridge import (  # noqa: E402
    Bridge,
    Settings,
    celeryconfig,
)
from bridge.worker.beat import BridgeEntry, BridgeScheduler  # noqa: E402

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/12"
TARGET = 1.5  # median tick with --large standing / with --small standing, from the issue
IDLE_EVERY_MS = 86_400_000  # a day: never due again during the run
HOT_EVERY_MS = 1000
IDLE_TASK = "bench.idle"
HOT_TASK = "bench.hot"
DUE_MARGIN_S = 0.02  # sleep this much past the last hot repeat's due time
MAX_DRAIN_TICKS = 20
# Keys the benchmark itself leaves behind (repeats, guards, the jobs queue, kombu's bindings).
OWN_KEY_PREFIXES = ("bridge:", "app:jobs", "_kombu.", "celery")


@dataclass
class Case:
    standing: int
    times: list[float] = field(default_factory=list)  # seconds per timed tick, all rounds

    @property
    def median_ms(self) -> float:
        return statistics.median(self.times) * 1000


class Bench:
    def __init__(self, redis_url: str, due: int, ticks: int) -> None:
        self.redis_url = redis_url
        self.due = due
        self.ticks = ticks
        self.settings = Settings(
            redis_url=redis_url, queue_backend="redis", jobs_backend="redis", lock_backend="redis"
        )
        self.redis = redis.Redis.from_url(redis_url)
        self.runs = 0

    def check_database(self) -> None:
        refuse_foreign_keys(self.redis, self.redis_url, OWN_KEY_PREFIXES)

    def flush(self) -> None:
        self.redis.flushdb()  # only the database selected by --redis-url

    def measure(self, case: Case) -> None:
        """One case from a flushed database: create, drain, then time ``--ticks`` ticks."""
        self.flush()
        self.runs += 1
        app = Celery(f"bench-beat-{self.runs}")
        app.config_from_object(celeryconfig.build(self.settings))
        bridge = Bridge(app, settings=self.settings)
        jobs_key = bridge.settings.jobs_queue_name  # kombu's list of the queue (no key prefix, priority)
        scheduler: BridgeScheduler | None = None
        try:
            started = time.perf_counter()
            for i in range(case.standing):
                bridge.jobs.schedule(IDLE_TASK, {"i": i}, every_ms=IDLE_EVERY_MS, idempotency_key=f"idle-{i}")
                if (i + 1) % 1000 == 0 or i + 1 == case.standing:
                    print(f"    {i + 1:>6,}/{case.standing:,} standing repeats created", end="\r", flush=True)
            print(f"\n    created in {time.perf_counter() - started:.1f} s", flush=True)

            # RedBeatScheduler.__init__ falls back to the app's lock key when lock_key is
            # None (`lock_key or app.redbeat_conf.lock_key`), and tick() then extends a lock
            # it never took (that happens on beat_init). No lock: clear it afterwards.
            scheduler = BridgeScheduler(app=app, lock_key=None)
            scheduler.lock_key = None
            schedule_key = app.redbeat_conf.schedule_key

            started = time.perf_counter()
            for _ in range(MAX_DRAIN_TICKS):
                if not self.redis.zcount(schedule_key, 0, time.time()):
                    break
                scheduler.tick()
            else:
                raise SystemExit(f"FAILED: standing repeats still due after {MAX_DRAIN_TICKS} ticks")
            fired = int(self.redis.llen(jobs_key))
            if fired != case.standing:
                raise SystemExit(
                    f"FAILED: {case.standing} new standing repeats fired {fired} jobs, not one each"
                )
            self.redis.delete(jobs_key)
            print(f"    first runs of the standing repeats drained in {time.perf_counter() - started:.1f} s")

            hot_keys = [
                app.redbeat_conf.key_prefix
                + bridge.jobs.schedule(
                    HOT_TASK, {"k": k}, every_ms=HOT_EVERY_MS, idempotency_key=f"hot-{k}"
                ).id
                for k in range(self.due)
            ]
            for n in range(self.ticks + 1):  # the first tick warms up and is not timed
                # From the entries, not their scores: redbeat scores are whole seconds
                # (calendar.timegm), so a score says "due" up to 1 s before the instant.
                due_at = max(BridgeEntry.from_key(key, app=app).due_at for key in hot_keys)
                time.sleep(max(0.0, due_at.timestamp() + DUE_MARGIN_S - time.time()))
                due_now = int(self.redis.zcount(schedule_key, 0, time.time()))
                if due_now != self.due:
                    raise SystemExit(
                        f"FAILED: {due_now} repeats are due before tick {n}, expected {self.due}"
                    )
                before = int(self.redis.llen(jobs_key))
                gc.collect()
                t0 = time.perf_counter()
                scheduler.tick()
                elapsed = time.perf_counter() - t0
                enqueued = int(self.redis.llen(jobs_key)) - before
                if enqueued != self.due:
                    raise SystemExit(
                        f"FAILED: tick {n} with {case.standing:,} standing repeats enqueued {enqueued} jobs, "
                        f"expected {self.due}; the measurement is meaningless."
                    )
                if n:
                    case.times.append(elapsed)
            recent = case.times[-self.ticks :]
            print(
                f"    {case.standing:>6,} standing: median tick {statistics.median(recent) * 1000:.2f} ms "
                f"over {self.ticks} ticks ({self.due} enqueued by each)",
                flush=True,
            )
        finally:
            if scheduler is not None:
                scheduler.close()
            bridge.close()
            self.flush()

    def run(self, cases: Sequence[Case], rounds: int) -> None:
        self.check_database()
        try:
            for r in range(rounds):
                order = list(cases) if r % 2 == 0 else list(cases)[::-1]
                for case in order:
                    print(f"  round {r + 1}/{rounds}: {case.standing:,} standing repeats", flush=True)
                    self.measure(case)
        finally:
            self.flush()
            self.redis.close()


# -- reporting ------------------------------------------------------------------


def environment(redis_url: str, client: redis.Redis) -> list[str]:
    server = client.info("server")
    return [
        f"- CPU cores (os.cpu_count): {os.cpu_count()}",
        f"- Python {platform.python_version()} ({platform.system()} {platform.machine()})",
        f"- celery {version('celery')}, celery-redbeat {version('celery-redbeat')}, "
        f"redis-py {version('redis')}",
        f"- Redis server {server.get('redis_version')} at {redis_url}",
    ]


def table(cases: Sequence[Case], due: int) -> str:
    baseline = cases[0].median_ms
    lines = [
        "| standing repeats | due per tick | timed ticks | median tick ms | min-max ms "
        f"| ratio to {cases[0].standing:,} | target | met |",
        "|---:|---:|---:|---:|---:|---:|---:|:---:|",
    ]
    for i, case in enumerate(cases):
        ratio = case.median_ms / baseline
        target = TARGET if i else None
        lines.append(
            f"| {case.standing:,} | {due} | {len(case.times)} | {case.median_ms:.2f} "
            f"| {min(case.times) * 1000:.2f}-{max(case.times) * 1000:.2f} "
            f"| {target_cells(ratio, target, at_least=False)} |"
        )
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--small", type=int, default=100, help="standing repeats, baseline (default 100)")
    parser.add_argument(
        "--large", type=int, default=10_000, help="standing repeats, compared (default 10000)"
    )
    parser.add_argument("--due", type=int, default=10, help="hot repeats, due every tick (default 10)")
    parser.add_argument("--ticks", type=int, default=20, help="timed ticks per case and round (default 20)")
    parser.add_argument(
        "--rounds", type=int, default=1, help="rounds; the order of the cases alternates (default 1)"
    )
    parser.add_argument(
        "--redis-url",
        default=DEFAULT_REDIS_URL,
        help=f"a dedicated Redis database, flushed before each case (default {DEFAULT_REDIS_URL})",
    )
    args = parser.parse_args(argv)
    for name in ("small", "large", "due", "ticks", "rounds"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    bench = Bench(args.redis_url, args.due, args.ticks)
    cases = [Case(args.small), Case(args.large)]
    print(
        f"{args.small:,} vs {args.large:,} standing repeats, {args.due} due per tick, "
        f"{args.ticks} timed ticks per case, {args.rounds} round(s)"
    )
    print("\n".join(environment(args.redis_url, bench.redis)), flush=True)
    bench.run(cases, args.rounds)
    print()
    print(table(cases, args.due))
    return 0


if __name__ == "__main__":
    sys.exit(main())
