"""An app on RabbitMQ, as Celery's docs write one, adopting the bridge (QUEUE_BACKEND follows its broker).

Run as ``celery -A tests.apps.amqp_app worker|beat``. TEST_AMQP_URL names the broker,
REDIS_URL the guard store (dedupe guards, delayed jobs, repeats) and the ledger.
"""

from __future__ import annotations

import json
import os
from typing import Any

import redis
from celery import Celery

from bridge import Bridge

app = Celery("rabbit")
app.conf.update(
    broker_url=os.environ.get("TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//"),
    result_backend=os.environ.get("REDIS_URL"),
    task_acks_late=True,
    worker_prefetch_multiplier=int(os.environ.get("TEST_PREFETCH_MULTIPLIER", "1")),
)
bridge = Bridge(app)

RUNS = "test:amqp:runs"


def ledger() -> redis.Redis:
    return redis.Redis.from_url(os.environ["REDIS_URL"])


@app.task(name="amqp.record", bind=True)
def record(self: Any, key: str, **data: Any) -> str:
    ledger().rpush(RUNS, json.dumps({"id": self.request.id, "key": key, "data": data}))
    return key


@app.task(name="amqp.block", bind=True)
def block(self: Any, key: str) -> None:
    """Holds the worker until killed (the test kills it with its job unacked)."""
    ledger().rpush("test:amqp:blocked", key)
    ledger().blpop(["test:amqp:release"], timeout=60)


class PaymentDeclined(Exception):
    pass


@app.task(name="amqp.fail_once", bind=True)
def fail_once(self: Any, key: str) -> str:
    """Fails for good on its first run (no retry: a dead letter), succeeds when retried from there."""
    if ledger().sadd("test:amqp:failed-once", key):
        raise PaymentDeclined(f"{key}: card declined")
    ledger().rpush(RUNS, json.dumps({"id": self.request.id, "key": key, "data": {}}))
    return key
