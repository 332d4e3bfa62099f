"""The quickstart app: a Celery app with two handlers, bound to the bridge.

Run a worker for it with::

    celery -A examples.quickstart.app worker --loglevel=INFO

Handlers append to a ledger list in Redis so the quickstart can show that each
job ran exactly once.
"""

from __future__ import annotations

import os

import redis
from celery import Celery

from bridge import Bridge

# The quickstart runs against a local Redis unless told otherwise.
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/0")

app = Celery("quickstart")
app.config_from_object("celeryconfig")
bridge = Bridge(app)

LEDGER = "quickstart:ledger"


def _record(line: str) -> None:
    redis.Redis.from_url(os.environ["REDIS_URL"]).rpush(LEDGER, line)


@app.task(name="emails.send", bind=True)
def send_email(self, to: str, subject: str, run: str) -> str:  # type: ignore[no-untyped-def]
    """Pretend to send an email."""
    _record(f"{run} {self.request.id} emails.send to={to} subject={subject}")
    return f"sent to {to}"


@app.task(name="reports.build", bind=True)
def build_report(self, kind: str, run: str) -> str:  # type: ignore[no-untyped-def]
    """Pretend to build a report."""
    _record(f"{run} {self.request.id} reports.build kind={kind}")
    return f"{kind} report"
