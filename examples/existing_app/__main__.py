"""Run the existing-app example: ``python -m examples.existing_app``.

It starts the shop's worker, charges an order twice with the same idempotency
key (the second add is deduplicated), sends the receipt through the app's own
route, and reads the results back with ``AsyncResult`` as the shop always has.
Exit status 0 when the order was charged once and both results came back.

Needs a Redis at SHOP_BROKER_URL (default redis://127.0.0.1:6379/0).
"""

from __future__ import annotations

import sys
import uuid

from examples._errors import example_errors
from examples._worker import celery_worker

with example_errors("examples.existing_app"):  # Bridge(app) reads the settings on import
    from examples.existing_app.celery_app import app, bridge


def main() -> int:
    order_id = uuid.uuid4().int % 1_000_000
    with celery_worker("examples.existing_app.celery_app", queues="celery,emails"):
        charge = {"order_id": order_id, "amount_cents": 4_200}
        first = bridge.queue.add("shop.orders.charge", charge, idempotency_key=f"charge-{order_id}")
        retry = bridge.queue.add("shop.orders.charge", charge, idempotency_key=f"charge-{order_id}")
        receipt = bridge.queue.add("shop.emails.receipt", {"order_id": order_id, "to": "ada@example.com"})
        print(f"charge  {first.id} queue={first.queue}")
        print(f"charge  {retry.id} deduplicated={retry.deduplicated}")
        print(f"receipt {receipt.id} queue={receipt.queue}")
        results = [app.AsyncResult(job.id).get(timeout=30) for job in (first, receipt)]
    for result in results:
        print(result)
    ok = retry.deduplicated and retry.id == first.id and receipt.queue == "emails"
    print("OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    with example_errors("examples.existing_app"):
        code = main()
    sys.exit(code)
