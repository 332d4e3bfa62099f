"""Run the lock and idempotency example: ``python -m examples.singleton``.

It starts three workers and beat, schedules the maintenance repeat every 2 s (each
run takes 3 s, so runs would overlap without the lock), delivers one payment
capture twice, waits about 10 s, then checks: maintenance never ran twice at
once, and the payment was captured once. Exit status 0 when both hold.

Like the quickstart it needs no server (embedded), or uses REDIS_URL.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import uuid
from contextlib import ExitStack
from typing import Any

from examples._errors import example_errors
from examples._worker import celery_worker

with example_errors("examples.singleton"):  # Bridge(app) reads the settings on import
    from examples.singleton.app import EVENTS, app, bridge

RUN_FOR_S = 10


def events(run: str) -> list[dict[str, Any]]:
    return [e for e in (json.loads(raw) for raw in bridge.store.lrange(EVENTS, 0, -1)) if e["run"] == run]


def main() -> int:
    run = uuid.uuid4().hex[:8]
    with ExitStack() as stack:
        for name in ("a", "b", "c"):
            stack.enter_context(celery_worker("examples.singleton.app", concurrency=1, name=name))
        beat = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "examples.singleton.app", "beat", "--loglevel=WARNING"],
            stdout=subprocess.DEVNULL,
        )
        stack.callback(beat.wait, 20)
        stack.callback(beat.send_signal, signal.SIGTERM)
        bridge.jobs.schedule("maintenance.vacuum", {"run": run}, every_ms=2_000, idempotency_key=run)
        stack.callback(bridge.jobs.cancel, name="maintenance.vacuum", idempotency_key=run, every_ms=2_000)

        payment = {"run": run, "order_id": 42, "amount_cents": 1999}
        job_id = str(uuid.uuid4())
        for _ in range(2):  # the same message twice: a redelivery
            app.send_task("payments.capture", kwargs=payment, task_id=job_id)
        print("payment result:", app.AsyncResult(job_id).get(timeout=30))
        time.sleep(RUN_FOR_S)

    log = events(run)
    for e in log:
        print(f"  {e['at_ms'] % 100_000:>6} ms  {e['what']:15} {e.get('worker', '')}")
    starts = sorted(e["at_ms"] for e in log if e["what"] == "vacuum-start")
    ends = sorted(e["at_ms"] for e in log if e["what"] == "vacuum-end")
    overlapping = any(nxt < end for nxt, end in zip(starts[1:], ends, strict=False))
    skipped = sum(e["what"] == "vacuum-skipped" for e in log)
    captured = sum(e["what"] == "captured" for e in log)
    print(f"\nmaintenance: {len(starts)} runs, {skipped} skipped while another held the lock; "
          f"payment captured {captured} time(s) from 2 deliveries")  # fmt: skip
    if starts and not overlapping and captured == 1:
        print("OK: maintenance never ran twice at once; the payment was captured once.")
        return 0
    print("FAILED", file=sys.stderr)
    return 1


if __name__ == "__main__":
    with example_errors("examples.singleton"):
        code = main()
    sys.exit(code)
