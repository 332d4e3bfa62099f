"""The shop's Celery app, as Celery's Django guide writes it; the bridge is the two marked lines."""

import os

from celery import Celery

from bridge import Bridge  # bridge: added

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "examples.django_app.shop.settings")

app = Celery("shop")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
bridge = Bridge(app)  # bridge: added; its settings come from settings.py too
