"""The shop's own Celery settings, as they were before the bridge (nothing changed here)."""

import os

broker_url = os.environ.get("SHOP_BROKER_URL", "redis://127.0.0.1:6379/0")
result_backend = broker_url
task_serializer = "json"
accept_content = ["json"]
task_acks_late = True
task_routes = {"shop.emails.*": {"queue": "emails"}}
imports = ["examples.existing_app.tasks"]
