"""Pickup latency of an idle ``celery worker``: the bridge's transport vs kombu's own fetch.

Run from the repository root (the system Redis must be reachable)::

    .venv/bin/python bench/bench_pickup.py                 # 40 jobs per list x 3 rounds
    .venv/bin/python bench/bench_pickup.py --samples 100 --rounds 5

One real worker per variant and round (``celery -A bench.drain_app worker -c 2 -P
prefork``, as in ``bench_drain.py``): the bridge's transport, and kombu's own
(``BENCH_FETCH=kombu``). The worker is left idle between jobs (a random 50-250 ms,
so that it is back in its wait), then one job is added with ``queue.add`` to one
of three lists it consumes: the first queue's plain list (``celery``), the same
queue at priority 9 (kombu's priority sublist), and the second queue every bridged
worker consumes (``app:jobs``). The job, ``bench.stamp``, records the server's
clock when it starts; the latency is that minus the server's clock read just
before the add, so it includes the add's own round trip and Celery's hand-off to
the pool process. Lists and variants rotate; the report is the median, p99 and
maximum per list and variant, over every sample of every round. ``--vs-stock``
compares with stock Celery with the same settings (``BENCH_APP=stock``: no Bridge)
instead of kombu's fetch; stock Celery does not consume ``app:jobs``.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Sequence

from bench_drain import (  # bench/ is on the path when run as a script
    DEFAULT_REDIS_URL,
    POOLS,
    Backend,
    Bench,
    environment,
)

STAMPS = "bench:stamps"  # as in bench/drain_app.py
STOCK = "stock Celery, the same settings"
TARGET_P99_MS = 10.0  # the target for the bridge's transport on this machine
LISTS = {
    "first queue": {},
    "first queue, priority 9": {"priority": 9},
    "second queue (app:jobs)": {"queue": "app:jobs"},
}


class PickupBench(Bench):
    """Reuses ``bench_drain``'s worker handling; only the two system-Redis variants."""

    def __init__(self, redis_url: str, poll_s: float, pool_args: tuple[str, ...], vs_stock: bool) -> None:
        super().__init__(redis_url, jobs=1, poll_s=poll_s, embedded=False)
        self.backends[0].name = "bridge transport"
        self.backends[1].name = STOCK if vs_stock else "kombu's fetch"
        if vs_stock:  # no Bridge in the worker at all (bench/drain_app.py, BENCH_APP=stock)
            self.backends[1].worker_env = {**self.backends[0].worker_env, "BENCH_APP": "stock"}
        for backend in self.backends:
            backend.pool_args = pool_args
        self.latencies: dict[tuple[str, str], list[float]] = {}

    def lists_of(self, backend: Backend) -> list[str]:
        # Only a bridged worker consumes the jobs queue (Bridge adds it to the worker's queues).
        return [name for name in LISTS if backend.name != STOCK or name != "second queue (app:jobs)"]

    def server_us(self, backend: Backend) -> int:
        seconds, micros = backend.client.time()
        return int(seconds) * 1_000_000 + int(micros)

    def sample(self, backend: Backend, list_name: str) -> float:
        client = backend.client
        before = client.llen(STAMPS)
        time.sleep(random.uniform(0.05, 0.25))  # idle: the worker is back in its wait
        added_us = self.server_us(backend)
        backend.bridge.queue.add("bench.stamp", {"added_us": added_us}, **LISTS[list_name])
        deadline = time.monotonic() + 10
        while client.llen(STAMPS) == before:
            if time.monotonic() > deadline:
                raise SystemExit(f"FAILED: {backend.name}: a job on {list_name} did not start in 10 s")
            time.sleep(0.001)
        added, started = (int(v) for v in client.lindex(STAMPS, -1).split())
        if added != added_us:
            raise SystemExit(f"FAILED: {backend.name}: the stamp recorded is not the job just added")
        return (started - added) / 1000

    def measure_latencies(self, backend: Backend, tag: str, samples: int) -> None:
        backend.flush()
        hostname = f"pickup-{backend.kind}-{tag}@bench"
        log = self.logs / f"pickup-{backend.kind}-{tag}.log"
        self.start_worker(backend, hostname, log)
        try:
            self.wait_ready(backend, hostname, log)
            time.sleep(1.0)  # past start-up: the worker is idle in its wait
            names = self.lists_of(backend)
            for i in range(samples):
                shift = i % len(names)
                for list_name in names[shift:] + names[:shift]:
                    latency = self.sample(backend, list_name)
                    self.latencies.setdefault((backend.name, list_name), []).append(latency)
        finally:
            self.stop_worker()
        backend.flush()

    def run_rounds(self, rounds: int, samples: int) -> None:
        try:
            self.check_database()
            for r in range(rounds):
                order = self.backends if r % 2 == 0 else self.backends[::-1]
                for backend in order:
                    self.measure_latencies(backend, f"r{r}", samples)
                    print(f"  round {r + 1}/{rounds}  {backend.name} done", flush=True)
        finally:
            self.close()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def table(latencies: dict[tuple[str, str], list[float]], baseline: str) -> str:
    lines = [
        "| list | fetch | samples | median ms | p99 ms | max ms | target p99 | met |",
        "|---|---|---:|---:|---:|---:|---:|:---:|",
    ]
    for list_name in LISTS:
        for fetch in (baseline, "bridge transport"):
            if (fetch, list_name) not in latencies:
                continue  # stock Celery does not consume the jobs queue
            values = latencies[(fetch, list_name)]
            p99 = percentile(values, 0.99)
            target = f"<= {TARGET_P99_MS:g} ms" if fetch == "bridge transport" else "-"
            met = ("yes" if p99 <= TARGET_P99_MS else "NO") if fetch == "bridge transport" else "-"
            lines.append(
                f"| {list_name} | {fetch} | {len(values)} | {statistics.median(values):.2f} "
                f"| {p99:.2f} | {max(values):.2f} | {target} | {met} |"
            )
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--samples", type=int, default=40, help="jobs per list, variant and round (40)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; variant order alternates (3)")
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL, help="a dedicated database, flushed")
    parser.add_argument(
        "--pool", choices=["prefork", "solo"], default="prefork",
        help="the worker's pool: prefork -c 2 (default) or solo (no hand-off to a child process)",
    )  # fmt: skip
    parser.add_argument(
        "--vs-stock", action="store_true",
        help="compare with stock Celery with the same settings (no Bridge) instead of kombu's fetch",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.samples <= 0 or args.rounds <= 0:
        parser.error("--samples and --rounds must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    pool_args = POOLS[args.pool]
    bench = PickupBench(args.redis_url, poll_s=0.01, pool_args=pool_args, vs_stock=args.vs_stock)
    try:
        env = environment(bench.backends)
    except BaseException:
        bench.close()
        raise
    pool = " ".join(pool_args)
    print(f"{args.samples} jobs per list, variant and round; {args.rounds} rounds; worker {pool}")
    print("\n".join(env), flush=True)
    bench.run_rounds(args.rounds, args.samples)
    print()
    print(table(bench.latencies, STOCK if args.vs_stock else "kombu's fetch"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
