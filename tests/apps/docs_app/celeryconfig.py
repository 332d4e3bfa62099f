"""The app's own Celery settings: its own broker, and static beat entries of every kind Celery ships."""

import os
from datetime import timedelta

from celery.schedules import crontab, solar

from tests.apps.docs_app.schedules import gated

broker_url = os.environ["DOCS_BROKER_URL"]
# A result backend that does not expire results by itself: Celery's beat then adds its own
# static entry, celery.backend_cleanup (a crontab), to every schedule.
result_backend = "file://" + os.environ["DOCS_RESULTS_DIR"]
task_serializer = "json"
accept_content = ["json"]
timezone = "Europe/Berlin"

beat_schedule = {
    "every-second": {"task": "docs.record", "schedule": timedelta(seconds=1), "args": ("timedelta",)},
    "every-two-seconds": {"task": "docs.record", "schedule": 2.0, "args": ("number",)},
    "every-minute": {"task": "docs.record", "schedule": crontab(), "args": ("crontab",)},
    "at-sunset": {"task": "docs.record", "schedule": solar("sunset", 52.52, 13.40), "args": ("solar",)},
    "gated": {"task": "docs.record", "schedule": gated(timedelta(seconds=1)), "args": ("gated",)},
}
