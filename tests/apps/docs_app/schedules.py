"""A schedule class of the app's own, as Celery's docs allow (a ``schedule`` subclass)."""

from __future__ import annotations

import os
from datetime import datetime

import redis
from celery.schedules import schedstate, schedule

GATE = "test:docs:gate"


class gated(schedule):
    """Every ``run_every``, but only while the key ``test:docs:gate`` stands in the broker's Redis.

    Stored as a plain interval, this would fire whether or not the gate stands: a test
    tells the two apart.
    """

    def is_due(self, last_run_at: datetime) -> schedstate:
        due, wait = super().is_due(last_run_at)
        if due and not redis.Redis.from_url(os.environ["DOCS_BROKER_URL"]).exists(GATE):
            return schedstate(False, 0.5)
        return schedstate(due, wait)
