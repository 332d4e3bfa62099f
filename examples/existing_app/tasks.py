"""The shop's tasks: plain Celery tasks, unchanged by the bridge."""

from __future__ import annotations

from examples.existing_app.celery_app import app


@app.task(name="shop.orders.charge")
def charge(order_id: int, amount_cents: int) -> str:
    """Charge an order (pretend)."""
    return f"charged order {order_id}: {amount_cents / 100:.2f}"


@app.task(name="shop.emails.receipt")
def send_receipt(order_id: int, to: str) -> str:
    """Email a receipt (pretend); routed to the 'emails' queue by the app's own task_routes."""
    return f"receipt for order {order_id} sent to {to}"
