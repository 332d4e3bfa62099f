"""A Django project adopting the bridge: ``python -m examples.django_app``.

The shop (``shop/settings.py``) keeps Celery's settings and the bridge's in
Django's settings, in the ``CELERY_`` namespace; its Celery app is written as
Celery's Django guide writes it, plus ``Bridge(app)``. This runs a worker and beat,
then:

* places an order and adds its confirmation with ``bridge.queue.add_on_commit``
  inside the transaction: the job is added when the transaction commits, so the
  worker finds the order;
* places a second order in a transaction that rolls back: nothing is added;
* schedules a repeat beside the project's static ``beat_schedule`` entry;

and checks all of it. Exit status 0 when everything held, 1 when not, 2 for a
configuration mistake. Needs a Redis at SHOP_BROKER_URL (default
redis://127.0.0.1:6379/0); the database is SQLite (SHOP_DB, default
examples/django_app/shop.sqlite3).
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid

from examples._errors import example_errors
from examples._worker import celery_beat, celery_worker

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "examples.django_app.shop.settings")

with example_errors("examples.django_app"):  # Bridge(app) reads the settings on import
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import transaction

    from examples.django_app.orders.models import Order
    from examples.django_app.orders.tasks import RUNS
    from examples.django_app.shop.celery import app, bridge

APP = "examples.django_app.shop"
TIMEOUT_S = 60


class Rollback(Exception):
    """Raised to roll a transaction back."""


def runs() -> list[dict[str, object]]:
    client = app.connection_for_write().default_channel.client
    return [json.loads(line) for line in client.lrange(RUNS, 0, -1)]


def wait(predicate: object, what: str) -> bool:
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.2)
    print(f"timed out waiting for {what}", file=sys.stderr)
    return False


def main() -> int:
    call_command("migrate", verbosity=0)
    run = uuid.uuid4().hex[:8]
    print(f"bridge settings from settings.py: jobs queue {bridge.settings.jobs_queue_name!r}")
    with celery_worker(APP), celery_beat(APP):  # the worker takes shop:jobs too (the bridge adds it)
        with transaction.atomic():
            kept = Order.objects.create(item=f"book {run}")
            kept_job = bridge.queue.add_on_commit("orders.confirm", {"order_id": kept.pk},
                                                  idempotency_key=f"confirm-{kept.pk}")  # fmt: skip
            time.sleep(1.0)  # nothing is sent while the transaction is open
            early = any(line.get("order_id") == kept.pk for line in runs())
        try:
            with transaction.atomic():
                dropped = Order.objects.create(item=f"lamp {run}")
                bridge.queue.add_on_commit("orders.confirm", {"order_id": dropped.pk},
                                           idempotency_key=f"confirm-{dropped.pk}")  # fmt: skip
                raise Rollback
        except Rollback:
            pass
        repeat = bridge.jobs.schedule("orders.report", {"kind": run}, every_ms=1000, idempotency_key=run)
        print(f"order {kept.pk}: confirmation job {kept_job} added on commit")
        print(f"order {dropped.pk}: rolled back, so its confirmation was never added")
        ok = not early and wait(lambda: Order.objects.get(pk=kept.pk).confirmed, "the order's confirmation")
        ok = ok and wait(lambda: sum(1 for r in runs() if r.get("kind") == run) >= 2, "the repeat's runs")
        ok = ok and wait(lambda: sum(1 for r in runs() if r["task"] == "orders.heartbeat") >= 2, "heartbeats")
        bridge.jobs.cancel(name="orders.report", idempotency_key=run, every_ms=1000)
        time.sleep(1.5)  # a confirmation of the rolled-back order would have run by now
        never = not any(line.get("order_id") == dropped.pk for line in runs())
    print(f"repeat {repeat.id} ran beside the static heartbeat entry; cancelled")
    if ok and never:
        print("OK: added on commit only, none for the rolled-back order; static entry and repeat both ran.")
        return 0
    print(f"FAILED: sent early={early}, rolled-back order confirmed={not never}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    with example_errors("examples.django_app"):
        code = main()
    sys.exit(code)
