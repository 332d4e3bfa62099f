"""The shop's Celery app. Adopting the bridge is the two marked lines; nothing else changes.

Run a worker as before::

    celery -A examples.existing_app.celery_app worker -Q celery,emails
"""

from celery import Celery

from bridge import Bridge  # bridge: added

app = Celery("shop")
app.config_from_object("examples.existing_app.settings")
bridge = Bridge(app)  # bridge: added; uses the app's own Redis broker
