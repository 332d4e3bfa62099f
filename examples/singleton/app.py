"""Locks and idempotency guards in a Celery app.

Run three workers and beat for it::

    celery -A examples.singleton.app worker -n a@%h
    celery -A examples.singleton.app worker -n b@%h
    celery -A examples.singleton.app worker -n c@%h
    celery -A examples.singleton.app beat

``maintenance.vacuum`` is fired by beat on a repeat; a run can outlast the interval,
so two workers could run it at once: ``bridge.lock`` makes it a singleton, and an
overlapping run skips. ``payments.capture`` may be delivered twice (a lost ack, a
redelivery): ``@bridge.idempotent`` makes its side effect happen once per job.
"""

from __future__ import annotations

import json
import time
from typing import Any

from celery import Celery

from bridge import Bridge, LockNotAcquired

app = Celery("singleton")
app.config_from_object("bridge.celeryconfig")
bridge = Bridge(app)

EVENTS = "singleton:events"


def record(**event: Any) -> None:
    seconds, micros = bridge.store.time()
    event["at_ms"] = seconds * 1000 + micros // 1000
    bridge.store.rpush(EVENTS, json.dumps(event))


@app.task(name="maintenance.vacuum", bind=True)
def vacuum(self: Any, run: str, seconds: float = 3.0) -> str:
    """Pretend maintenance that may outlast its interval; never two at once."""
    try:
        with bridge.lock("maintenance", ttl_ms=10_000, blocking=False, auto_extend=True):
            record(run=run, what="vacuum-start", worker=self.request.hostname)
            time.sleep(seconds)
            record(run=run, what="vacuum-end", worker=self.request.hostname)
            return "vacuumed"
    except LockNotAcquired:
        record(run=run, what="vacuum-skipped", worker=self.request.hostname)
        return "skipped: another run holds the lock"


@app.task(name="payments.capture", bind=True)
@bridge.idempotent(lease_ms=5_000)
def capture(self: Any, run: str, order_id: int, amount_cents: int) -> dict[str, Any]:
    """Capture a payment once per job, however often it is delivered."""
    record(run=run, what="captured", order_id=order_id, job=self.request.id)
    return {"order_id": order_id, "captured": amount_cents}
