"""The README's main job, in one command: ``python -m examples.quickstart``.

It starts a ``celery worker`` for examples/quickstart/app.py, adds jobs through
the bridge (with duplicates, a bulk add and one delayed job), waits for them,
prints what ran and checks that each job ran exactly once. Exit status 0 means
every job ran once; 1 means something did not.

Needs a Redis at REDIS_URL (default redis://127.0.0.1:6379/0).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid

from examples.quickstart.app import LEDGER, bridge

DELAY_MS = 2_000
TIMEOUT_S = 60


def main() -> int:
    run = uuid.uuid4().hex[:8]  # keys are per run, so a second run is not deduplicated away
    client = bridge.backend.client  # type: ignore[attr-defined]
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "examples.quickstart.app", "worker",
         "--loglevel=WARNING", "--concurrency=2", "--without-gossip", "--without-mingle"],
    )
    try:
        started = time.monotonic()
        jobs = [
            bridge.queue.add("emails.send", {"to": "ada@example.com", "subject": "Welcome", "run": run},
                             idempotency_key=f"{run}:welcome-ada"),
            # The same key again: deduplicated, nothing is sent.
            bridge.queue.add("emails.send", {"to": "ada@example.com", "subject": "Welcome", "run": run},
                             idempotency_key=f"{run}:welcome-ada"),
            bridge.queue.add("reports.build", {"kind": "sales", "run": run}, delay_ms=DELAY_MS,
                             idempotency_key=f"{run}:sales"),
        ]
        jobs += bridge.queue.add_bulk([
            ("emails.send", {"to": "bob@example.com", "subject": "Receipt", "run": run},
             {"idempotency_key": f"{run}:receipt-bob"}),
            ("emails.send", {"to": "bob@example.com", "subject": "Receipt", "run": run},
             {"idempotency_key": f"{run}:receipt-bob"}),
            ("reports.build", {"kind": "stock", "run": run}),
        ])
        for job in jobs:
            flag = "duplicate (nothing sent)" if job.deduplicated else "added"
            print(f"{job.name:14} {job.id}  queue={job.queue:8} {flag}")

        expected = {job.id for job in jobs}
        seen: list[str] = []
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline:
            seen = [line.decode() for line in client.lrange(LEDGER, 0, -1) if line.decode().startswith(run)]
            if {line.split()[1] for line in seen} >= expected:
                break
            time.sleep(0.2)
        elapsed = time.monotonic() - started

        print("\nwhat ran:")
        for line in seen:
            print("  " + line.split(" ", 2)[2])
        ran = [line.split()[1] for line in seen]
        once = all(ran.count(job_id) == 1 for job_id in expected) and len(ran) == len(expected)
        print(f"\n{len(expected)} distinct jobs from {len(jobs)} adds; {len(ran)} runs in {elapsed:.1f} s")
        if once:
            print("OK: every job ran exactly once; duplicates were not sent.")
            return 0
        print("FAILED: expected each job to run exactly once.", file=sys.stderr)
        return 1
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
        bridge.close()


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
