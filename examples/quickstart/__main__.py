"""The README's main job, in one command: ``python -m examples.quickstart``.

It starts a ``celery worker`` for examples/quickstart/app.py, adds jobs through
the bridge (duplicates, a bulk add and one delayed job), waits for them, prints
what ran and when, and checks that each job ran exactly once and the delayed one
not before its delay. Exit status 0 means all of that held; 1 means it did not.

Needs no server: with REDIS_URL unset it runs on the embedded Valkey server
(state in ./.bridge). With REDIS_URL set it uses that Redis.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from typing import Any

from bridge import Job
from examples._errors import example_errors
from examples._worker import celery_worker

with example_errors("examples.quickstart"):  # Bridge(app) reads the settings on import
    from examples.quickstart.app import LEDGER, bridge, ledger

DELAY_MS = 2_000
TIMEOUT_S = 60


def add_jobs(run: str) -> list[Job]:
    """Add six jobs, two of them duplicates; keys are per run so a rerun is not deduplicated away."""
    ada = {"to": "ada@example.com", "subject": "Welcome", "run": run}
    bob = {"to": "bob@example.com", "subject": "Receipt", "run": run}
    jobs = [
        bridge.queue.add("emails.send", ada, idempotency_key=f"{run}:welcome-ada"),
        bridge.queue.add("emails.send", ada, idempotency_key=f"{run}:welcome-ada"),  # duplicate
        bridge.queue.add(
            "reports.build", {"kind": "sales", "run": run}, delay_ms=DELAY_MS, idempotency_key=f"{run}:sales"
        ),
    ]
    jobs += bridge.queue.add_bulk(
        [
            ("emails.send", bob, {"idempotency_key": f"{run}:receipt-bob"}),
            ("emails.send", bob, {"idempotency_key": f"{run}:receipt-bob"}),  # duplicate
            ("reports.build", {"kind": "stock", "run": run}),
        ]
    )
    return jobs


def wait_for_runs(run: str, expected: set[str]) -> list[dict[str, Any]]:
    """Poll the ledger until every expected job has run (or the timeout passes)."""

    def runs() -> list[dict[str, Any]]:
        lines = (json.loads(raw) for raw in ledger().lrange(LEDGER, 0, -1))
        return [line for line in lines if line["run"] == run]

    deadline = time.monotonic() + TIMEOUT_S
    while {line["id"] for line in runs()} < expected and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(0.5)  # a job running twice would show up now
    return runs()


def main() -> int:
    run = uuid.uuid4().hex[:8]
    with celery_worker("examples.quickstart.app"):
        seconds, micros = ledger().time()
        added_at = seconds * 1000 + micros // 1000
        jobs = add_jobs(run)
        for job in jobs:
            flag = "duplicate: nothing sent" if job.deduplicated else "added"
            delay = f" (delayed {DELAY_MS / 1000:.0f} s)" if job.due_ms else ""
            print(f"{job.name:14} {job.id}  queue={job.queue}  {flag}{delay}")
        expected = {job.id for job in jobs}
        runs = wait_for_runs(run, expected)

    print("\nwhat ran:")
    for line in runs:
        print(f"  +{(line['at_ms'] - added_at) / 1000:4.1f} s  {line['what']}")
    ran = [line["id"] for line in runs]
    delayed = next(job for job in jobs if job.due_ms)
    on_time = all(line["at_ms"] >= (delayed.due_ms or 0) for line in runs if line["id"] == delayed.id)
    once = sorted(ran) == sorted(expected)
    print(f"\n{len(expected)} distinct jobs from {len(jobs)} adds, {len(ran)} runs.")
    if once and on_time:
        print("OK: every job ran exactly once, the delayed one after its delay; duplicates were not sent.")
        return 0
    print(
        "FAILED: expected each job to run exactly once and the delayed one after its delay.", file=sys.stderr
    )
    return 1


if __name__ == "__main__":
    with example_errors("examples.quickstart"):
        code = main()
    sys.exit(code)
