"""Load: 50,000 keyed jobs from 8 producer processes, drained by 2 workers, on a private redis-server.

Size: the full 50,000 of issue #8 (8 producers x 6,250, ``add_bulk`` in chunks of
500) plus 200 jobs that fail for good, drained by 2 workers of 2 processes with
the cheapest ledger handler (``ledger.cheap``: one RPUSH, no result stored). On
the 2-core CI machine this takes about 2 minutes (most of it the drain).

It checks what a user would: nothing lost and nothing run twice (the ledger holds
every key exactly once), Redis memory back near its baseline once the jobs ran
and their guards expired (``JOBS_DEDUPE_TTL_SEC=3``), no per-job key left
behind, and the dead letters capped at ``JOBS_DLQ_MAX``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time

import pytest

from tests.conftest import ROOT, Server, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.redis, pytest.mark.worker]

PRODUCERS = 8
# 50,000 in all by default; BRIDGE_LOAD_JOBS sets another total (a multiple of 8).
PER_PRODUCER = int(os.environ.get("BRIDGE_LOAD_JOBS", "50000")) // PRODUCERS
FAILING_PER_PRODUCER = 25
DLQ_MAX = 50
GUARD_TTL_S = 3
# Keys that may stand after the drain: kombu's bindings, the workers' readiness marks,
# the dead letters, kombu's restore mutex and the dashboard's per-minute counts (one per
# minute, each expiring after two hours). Nothing per job.
ALLOWED_LEFTOVERS = re.compile(
    r"^(_kombu\.binding[\w.@-]+|test:ready:[\w@.-]+|bridge:dead:celery|unacked_mutex|bridge:delayed-queues"
    r"|bridge:rate:\d+)$"
)


@pytest.mark.timeout(600)
def test_50k_jobs_from_8_producers_run_once_and_leave_redis_as_it_was(
    private_redis, start_worker_at, tmp_path
):
    server = Server("redis", private_redis.url)
    client = private_redis.client(decode_responses=True)
    env = {"JOBS_DEDUPE_TTL_SEC": str(GUARD_TTL_S), "JOBS_DLQ_MAX": str(DLQ_MAX)}
    for name in ("l1", "l2"):
        start_worker_at(server, name, concurrency=2, **env)
    baseline = int(client.info("memory")["used_memory"])

    started = time.monotonic()
    procs = []
    for i in range(PRODUCERS):
        args = ["--prefix", f"p{i}", "--count", str(PER_PRODUCER), "--chunk", "500",
                "--failing", str(FAILING_PER_PRODUCER)]  # fmt: skip
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "tests.apps.producer", *args],
                cwd=ROOT,
                env=server.env(**env),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    reports = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=300)
            assert proc.returncode == 0, err[-3000:]
            reports.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    produced_s = time.monotonic() - started
    total = PRODUCERS * PER_PRODUCER
    assert sum(r["sent"] for r in reports) == total + PRODUCERS * FAILING_PER_PRODUCER

    peak = 0

    def drained() -> bool:
        nonlocal peak
        peak = max(peak, int(client.info("memory")["used_memory"]))
        return (
            client.llen("test:runs") >= total and client.llen("celery") == 0 and client.hlen("unacked") == 0
        )

    assert wait_for(drained, timeout=420, interval=1.0), f"ran {client.llen('test:runs')} of {total}"
    drained_s = time.monotonic() - started
    print(f"load: {total} jobs produced in {produced_s:.1f} s, drained after {drained_s:.1f} s, peak {peak}")
    time.sleep(1.0)  # a duplicate run, had there been one, would have landed by now

    keys = [line.split(" ")[0] for line in client.lrange("test:runs", 0, -1)]
    assert len(keys) == total  # nothing ran twice
    assert set(keys) == {f"p{i}-{n}" for i in range(PRODUCERS) for n in range(PER_PRODUCER)}  # nothing lost
    dead = client.lrange("bridge:dead:celery", 0, -1)
    assert len(dead) == DLQ_MAX  # 200 jobs failed for good; the newest 50 are kept
    assert all(json.loads(entry)["exc_type"] == "ValueError" for entry in dead)

    client.delete("test:runs")
    time.sleep(GUARD_TTL_S)  # the guards' lifetime: after it, Redis must be back to its baseline
    assert wait_for(lambda: client.dbsize() < 20, timeout=60, interval=0.5), client.dbsize()
    leftovers = sorted(client.keys("*"))
    assert [k for k in leftovers if not ALLOWED_LEFTOVERS.match(k)] == []
    assert all(client.pttl(k) > 0 for k in leftovers if k.startswith("bridge:rate:"))  # they expire
    after = int(client.info("memory")["used_memory"])
    print(
        f"load: {total} jobs (+{PRODUCERS * FAILING_PER_PRODUCER} failing) produced in {produced_s:.1f} s, "
        f"drained after {drained_s:.1f} s; used_memory baseline {baseline / 1e6:.2f} MB, "
        f"peak >= {peak / 1e6:.2f} MB, after {after / 1e6:.2f} MB; leftover keys {leftovers}"
    )
    # Near the baseline: what remains is the capped dead letters and Lua scripts, not jobs.
    assert after - baseline < 1_000_000, (baseline, peak, after)
