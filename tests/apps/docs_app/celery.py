"""The app, as in Celery's "First steps" and "Next steps" guides; the bridge is the two marked lines."""

from celery import Celery

from bridge import Bridge  # bridge: added

app = Celery("proj", include=["tests.apps.docs_app.tasks"])
app.config_from_object("tests.apps.docs_app.celeryconfig")
bridge = Bridge(app)  # bridge: added
