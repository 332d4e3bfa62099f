"""The shop's Django settings: Celery's and the bridge's settings live here, in the CELERY_ namespace."""

import os
from pathlib import Path

SECRET_KEY = "example-only-not-secret"
DEBUG = False
USE_TZ = True
INSTALLED_APPS = ["django.contrib.contenttypes", "examples.django_app.orders"]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("SHOP_DB", str(Path(__file__).resolve().parent.parent / "shop.sqlite3")),
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Celery, as its Django guide configures it.
CELERY_BROKER_URL = os.environ.get("SHOP_BROKER_URL", "redis://127.0.0.1:6379/0")
CELERY_RESULT_BACKEND = CELERY_BROKER_URL
CELERY_TASK_ACKS_LATE = True
CELERY_BEAT_SCHEDULE = {
    "heartbeat": {"task": "orders.heartbeat", "schedule": 1.0},  # a static entry, as before the bridge
}

# The bridge's settings, beside Celery's (the environment would override them).
CELERY_JOBS_QUEUE_NAME = "shop:jobs"
CELERY_JOBS_DEDUPE_TTL_SEC = 3600
