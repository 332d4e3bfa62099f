"""A Celery app on SQS whose bridge keeps everything else in DynamoDB: nothing but AWS to run.

Settings, as the environment gives them (``python -m examples.aws_only`` sets the
defaults below and creates the queue and table)::

    QUEUE_BACKEND=sqs  SQS_QUEUE_URL=https://sqs.REGION.amazonaws.com/ACCOUNT/jobs
    GUARD_STORE=dynamodb  DYNAMODB_TABLE=jobs-guards   (LOCK_BACKEND follows: dynamodb)

Run a worker for it::

    celery -A examples.aws_only.app worker

``orders.confirm`` is deduped by its order (``idempotency_key``); ``reports.tally``
counts, under ``bridge.lock``, how often each key ran, in the same table;
``payments.capture`` is ``@bridge.idempotent``: its body runs once per job however
often SQS delivers it.
"""

from __future__ import annotations

from typing import Any

from celery import Celery

from bridge import Bridge

app = Celery("aws_only")
app.config_from_object("bridge.celeryconfig")
bridge = Bridge(app)


def count(key: str) -> int:
    """How often ``key`` ran (read from the DynamoDB table)."""
    return int(bridge.store.get(f"aws_only:ran:{key}") or 0)


def _ran(key: str) -> None:
    # A read-modify-write: the lock (DynamoDB conditional writes) keeps concurrent runs from losing counts.
    with bridge.lock(f"aws_only:{key}", ttl_ms=30_000):
        bridge.store.set(f"aws_only:ran:{key}", count(key) + 1, px=3_600_000)


@app.task(name="orders.confirm")
def confirm(order_id: int) -> None:
    _ran(f"order-{order_id}")


@app.task(name="payments.capture")
@bridge.idempotent(lease_ms=10_000)
def capture(order_id: int, amount_cents: int) -> dict[str, Any]:
    _ran(f"capture-{order_id}")
    return {"captured": amount_cents}
