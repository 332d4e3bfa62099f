"""An app whose tasks travel in another serializer than JSON (TEST_SERIALIZER: pickle, msgpack, yaml).

Run as ``celery -A tests.apps.serializer_app worker``; TEST_BROKER_URL names its Redis.
"""

from __future__ import annotations

import json
import os
from typing import Any

import redis
from celery import Celery

from bridge import Bridge

SERIALIZER = os.environ.get("TEST_SERIALIZER", "pickle")
RUNS = "test:serial:runs"

app = Celery("serial")
app.conf.update(
    broker_url=os.environ.get("TEST_BROKER_URL", "redis://127.0.0.1:6379/9"),
    result_backend=os.environ.get("TEST_BROKER_URL", "redis://127.0.0.1:6379/9"),
    task_serializer=SERIALIZER,
    result_serializer=SERIALIZER,
    accept_content=[SERIALIZER],
    result_accept_content=[SERIALIZER],
    task_acks_late=True,
)
bridge = Bridge(app)


@app.task(name="serial.record", bind=True)
def record(self: Any, key: str, **data: Any) -> dict[str, Any]:
    line = {"id": self.request.id, "key": key, "data": data}
    redis.Redis.from_url(app.conf.broker_url).rpush(RUNS, json.dumps(line))
    return {"ran": key}
