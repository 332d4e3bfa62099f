"""The app's tasks: each run is recorded in the broker's Redis, so a test can count them."""

from __future__ import annotations

import json
import os
import time

import redis

from tests.apps.docs_app.celery import app

RUNS = "test:docs:runs"


@app.task(name="docs.record")
def record(label: str, **data: object) -> str:
    line = {"label": label, "data": data, "at": time.time()}
    redis.Redis.from_url(os.environ["DOCS_BROKER_URL"]).rpush(RUNS, json.dumps(line))
    return label
