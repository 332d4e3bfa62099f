"""An app laid out as Celery's docs lay one out (``proj/celery.py``, ``proj/celeryconfig.py``,
``proj/tasks.py``), with static ``beat_schedule`` entries of every kind, adopting the bridge
with two lines. Run as ``celery -A tests.apps.docs_app worker|beat``.
"""

from tests.apps.docs_app.celery import app as celery_app

__all__ = ("celery_app",)
