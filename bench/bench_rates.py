"""Cost of the dashboard's per-minute counters on the hot paths: this code against the code before them.

Run from the repository root (a Redis server must be reachable)::

    .venv/bin/python bench/bench_rates.py                    # 5,000 jobs x 5 rounds
    .venv/bin/python bench/bench_rates.py --jobs 3000 --rounds 3 --baseline main

The counters (``bridge/redis/rates.py``) cost something in two places: the add script counts
``added`` (one HINCRBY per script call), and a worker counts ``done``/``failed`` from Celery's
signals (written by a thread once a second). Both sides are measured against ``--baseline``
(a git ref, default ``main``: the code before the counters), each variant's ``bridge`` package
exported with ``git archive`` into a folder of its own and imported from there:

* **producer**: ``bridge.queue.add`` with a unique idempotency key per job, one job per call
  (the hot path: one script call per add). Both variants' producers run at once and take
  turns, ``--chunks`` turns of ``jobs / chunks`` adds each per round, so a machine that gets
  busier slows both alike; a round's figure is the median of its turns. The add script's
  server time per call (``INFO commandstats``) is reported too;
* **worker**: ``--jobs`` jobs of ``bench.noop`` (``bench/drain_app.py``) drained by one
  ``celery worker -P solo``, jobs/s from the worker's ready mark to the last ack.

The worker variants alternate within each round; the report is the median of the rounds per variant
and the ratio of this code's median to the baseline's. The database of ``--redis-url`` (default
``$BRIDGE_TEST_REDIS_URL`` or ``redis://127.0.0.1:6379/14``) is flushed between measurements;
the benchmark refuses to start if it holds keys it would not have written.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT / "bench") not in sys.path:
    sys.path.insert(0, str(ROOT / "bench"))

from _common import refuse_foreign_keys, stop_process_group  # noqa: E402

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/14"
OWN_KEY_PREFIXES = ("celery", "_kombu.", "bridge:", "unacked", "bench:")
QUEUE = "celery"
COUNTER = "bench:done"
READY = "bench:ready:"

# A producer that adds on request: for each line "<count>" on stdin it adds that many jobs (one
# queue.add each, a unique key each) and prints the seconds they took, so the parent can alternate
# two variants chunk by chunk (a busy machine then slows both alike).
PRODUCER = """
import os, sys, time
from celery import Celery
import bridge
from bridge import Bridge, Settings, celeryconfig
assert bridge.__file__.startswith(os.getcwd()), bridge.__file__  # this variant's code, not another's
settings = Settings(redis_url=os.environ["REDIS_URL"], queue_backend="redis", jobs_backend="redis",
                    lock_backend="redis")
app = Celery("bench")
app.config_from_object(celeryconfig.build(settings))
b = Bridge(app, settings=settings)
tag = os.path.basename(os.getcwd())
for i in range(200):
    b.queue.add("bench.noop", {"i": i}, idempotency_key=f"warm-{tag}-{i}")
add = b.queue.add
done = 0
print("ready", flush=True)
for line in sys.stdin:
    n = int(line)
    keys = [f"key-{tag}-{i}" for i in range(done, done + n)]
    data = [{"order_id": i, "email": f"user{i}@example.com"} for i in range(done, done + n)]
    started = time.perf_counter()
    for i in range(n):
        add("bench.noop", data[i], idempotency_key=keys[i])
    print(time.perf_counter() - started, flush=True)
    done += n
"""

ENQUEUE = """
import os, sys
from celery import Celery
from bridge import Bridge, Settings, celeryconfig
settings = Settings(redis_url=os.environ["REDIS_URL"], queue_backend="redis", jobs_backend="redis",
                    lock_backend="redis")
app = Celery("bench")
app.config_from_object(celeryconfig.build(settings))
b = Bridge(app, settings=settings)
n = int(sys.argv[1])
for start in range(0, n, 1000):
    b.queue.add_bulk([("bench.noop", {"i": i}) for i in range(start, min(start + 1000, n))])
"""


def export(ref: str, into: Path) -> Path:
    """``bridge/`` and ``bench/drain_app.py`` of git ref ``ref``, in a folder of their own."""
    into.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref, "bridge", "bench/drain_app.py"],
                             check=True, capture_output=True).stdout  # fmt: skip
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def env_for(tree: Path, redis_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "QUEUE_BACKEND", "BRIDGE_HOME")}
    env.update(PYTHONPATH=str(tree), REDIS_URL=redis_url, QUEUE_BACKEND="redis", PYTHONUNBUFFERED="1")
    return env


def producer_rates(
    trees: dict[str, Path], client: redis.Redis, redis_url: str, jobs: int, chunks: int
) -> dict[str, tuple[list[float], list[float]]]:
    """Per variant: jobs/s of each chunk, and the add script's server time per call (µs) in it.

    The variants' producers take turns, chunk by chunk, each adding ``jobs / chunks`` jobs.
    """
    procs = {
        name: subprocess.Popen(
            [sys.executable, "-c", PRODUCER],
            cwd=tree,
            env=env_for(tree, redis_url),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for name, tree in trees.items()
    }
    out: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in trees}
    try:
        for proc in procs.values():
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready"
        size = max(1, jobs // chunks)
        for chunk in range(chunks):
            order = list(procs) if chunk % 2 == 0 else list(reversed(procs))
            for name in order:
                proc = procs[name]
                assert proc.stdin is not None
                assert proc.stdout is not None
                client.config_resetstat()
                proc.stdin.write(f"{size}\n")
                proc.stdin.flush()
                seconds = float(proc.stdout.readline())
                stats = client.info("commandstats").get("cmdstat_evalsha", {})
                out[name][0].append(size / seconds)
                out[name][1].append(float(stats.get("usec_per_call", 0.0)))
    finally:
        for proc in procs.values():
            if proc.stdin is not None:
                proc.stdin.close()
            proc.wait(30)
    return out


def worker_rate(tree: Path, client: redis.Redis, redis_url: str, jobs: int, tag: str) -> float:
    env = env_for(tree, redis_url)
    subprocess.run([sys.executable, "-c", ENQUEUE, str(jobs)], cwd=tree, env=env, check=True, timeout=600)
    hostname = f"rates-{tag}@bench"
    log = tree / f"{tag}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "bench.drain_app", "worker", "-n", hostname, "-P", "solo",
             "--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel=WARNING"],
            cwd=tree, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not (mark := client.get(f"{READY}{hostname}")):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"FAILED: worker not ready:\n{log.read_text()[-3000:]}")
            time.sleep(0.02)
        ready_us, done_before = (int(x) for x in mark.split())
        while True:
            with client.pipeline(transaction=True) as pipe:
                pipe.get(COUNTER).llen(QUEUE).hlen("unacked").time()
                done, queued, unacked, (seconds, micros) = pipe.execute()
            if int(done or 0) == jobs and queued == 0 and unacked == 0:
                drained_us = int(seconds) * 1_000_000 + int(micros)
                break
            if proc.poll() is not None or time.monotonic() > deadline + 300:
                raise SystemExit(f"FAILED: worker did not drain:\n{log.read_text()[-3000:]}")
            time.sleep(0.02)
    finally:
        stop_process_group(proc)
    return (jobs - done_before) / ((drained_us - ready_us) / 1_000_000)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--jobs", type=int, default=5_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--chunks", type=int, default=20, help="producer turns per variant and round")
    parser.add_argument("--baseline", default="main", help="git ref of the code before the counters")
    parser.add_argument("--redis-url", default=os.environ.get("BRIDGE_TEST_REDIS_URL", DEFAULT_REDIS_URL))
    args = parser.parse_args(argv)
    client = redis.Redis.from_url(args.redis_url)
    refuse_foreign_keys(client, args.redis_url, OWN_KEY_PREFIXES)
    work = Path(tempfile.mkdtemp(prefix="bench-rates-"))
    try:
        trees = {
            "baseline": export(args.baseline, work / "baseline"),
            "counters": export("HEAD", work / "head"),
        }
        rates: dict[tuple[str, str], list[float]] = {}
        server_us: dict[str, list[float]] = {}
        for round_no in range(args.rounds):
            client.flushdb()
            for name, (chunk_rates, chunk_us) in producer_rates(
                trees, client, args.redis_url, args.jobs, args.chunks
            ).items():
                rates.setdefault((name, "producer"), []).append(statistics.median(chunk_rates))
                server_us.setdefault(name, []).extend(chunk_us)
            order = list(trees) if round_no % 2 == 0 else list(reversed(trees))
            for name in order:
                client.flushdb()
                rates.setdefault((name, "worker"), []).append(
                    worker_rate(trees[name], client, args.redis_url, args.jobs, f"{name}-{round_no}")
                )
            client.flushdb()
            latest = ", ".join(f"{n}/{side} {v[-1]:,.0f}" for (n, side), v in rates.items())
            print(f"round {round_no + 1}: {latest}", flush=True)
        print(f"\n{args.jobs:,} jobs x {args.rounds} rounds; baseline = {args.baseline}, counters = HEAD\n")
        print("| side | baseline median jobs/s | counters median jobs/s | min-max (counters) | ratio | met |")
        print("|---|---:|---:|---:|---:|:---:|")
        for side in ("producer", "worker"):
            base = statistics.median(rates[("baseline", side)])
            ours = statistics.median(rates[("counters", side)])
            spread = rates[("counters", side)]
            ratio = ours / base
            cells = f"{base:,.0f} | {ours:,.0f} | {min(spread):,.0f}-{max(spread):,.0f} | {ratio:.3f}"
            print(f"| {side} | {cells} | {'yes' if ratio >= 0.97 else 'NO'} |")
        base_us, ours_us = statistics.median(server_us["baseline"]), statistics.median(server_us["counters"])
        print(f"\nthe add script on the server (EVALSHA, median µs per call): baseline {base_us:.1f}, "
              f"counters {ours_us:.1f} (+{ours_us - base_us:.1f})")  # fmt: skip
    finally:
        client.flushdb()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
