"""The shop's tasks: plain Celery shared tasks. Each run is noted in the broker's Redis for the demo."""

from __future__ import annotations

import json
import time

import redis
from celery import shared_task
from django.conf import settings

from examples.django_app.orders.models import Order

RUNS = "shop:runs"


def note(task: str, **data: object) -> None:
    line = json.dumps({"task": task, "at": time.time(), **data})
    redis.Redis.from_url(settings.CELERY_BROKER_URL).rpush(RUNS, line)


@shared_task(name="orders.confirm")
def confirm(order_id: int) -> bool:
    """Confirm an order: it exists, because the job was added after its transaction committed."""
    updated = Order.objects.filter(pk=order_id).update(confirmed=True)
    note("orders.confirm", order_id=order_id, found=bool(updated))
    return bool(updated)


@shared_task(name="orders.heartbeat")
def heartbeat() -> None:
    note("orders.heartbeat")


@shared_task(name="orders.report")
def report(kind: str) -> None:
    note("orders.report", kind=kind)
