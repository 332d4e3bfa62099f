"""The quickstart app: a Celery app with two handlers, bound to the bridge.

Run a worker for it with::

    celery -A examples.quickstart.app worker --loglevel=INFO

Handlers append to a ledger list in Redis so the quickstart can show that each
job ran exactly once, and when.
"""

from __future__ import annotations

import json
from typing import Any

import redis
from celery import Celery

from bridge import Bridge

app = Celery("quickstart")
app.config_from_object("bridge.celeryconfig")
bridge = Bridge(app)

LEDGER = "quickstart:runs"


def ledger() -> redis.Redis:
    """The server holding the ledger: the same one as the jobs (embedded, or REDIS_URL)."""
    return bridge.backend.client  # type: ignore[attr-defined, no-any-return]


def _record(task: Any, what: str, run: str) -> None:
    seconds, micros = ledger().time()
    line = {"run": run, "id": task.request.id, "what": what, "at_ms": seconds * 1000 + micros // 1000}
    with ledger().pipeline() as pipe:
        pipe.rpush(LEDGER, json.dumps(line)).expire(LEDGER, 86_400).execute()


@app.task(name="emails.send", bind=True)
def send_email(self: Any, to: str, subject: str, run: str) -> str:
    """Pretend to send an email."""
    _record(self, f"emails.send to={to} subject={subject!r}", run)
    return f"sent to {to}"


@app.task(name="reports.build", bind=True)
def build_report(self: Any, kind: str, run: str) -> str:
    """Pretend to build a report."""
    _record(self, f"reports.build kind={kind}", run)
    return f"{kind} report"
