"""An app whose config names its own queues, as Celery's routing docs write one: a default queue
that is not ``celery``, ``task_queues`` and ``task_routes`` (a queue name, and a dict)."""

from __future__ import annotations

import os

from celery import Celery
from kombu import Queue

from bridge import Bridge

app = Celery("routed")
app.conf.update(
    broker_url=os.environ["ROUTED_BROKER_URL"],
    task_default_queue="default",
    task_queues=[Queue("default"), Queue("media")],
    task_routes={"feeds.*": "feeds", "media.resize": {"queue": "media"}, "reports.*": {"exchange": "x"}},
)
bridge = Bridge(app)
