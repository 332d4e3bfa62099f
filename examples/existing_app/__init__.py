"""A typical existing Celery project adopting the bridge: see celery_app.py."""
