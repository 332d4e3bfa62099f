"""An app whose Bridge points at a Redis nobody listens on (port 1): for command-line units that
must show how a failure to connect is reported, with no server to start or reach."""

from __future__ import annotations

from celery import Celery

from bridge import Bridge, Settings, celeryconfig

settings = Settings(
    redis_url="redis://:hunter2@127.0.0.1:1/0",
    queue_backend="redis",
    jobs_backend="redis",
    lock_backend="redis",
)
app = Celery("unreachable", set_as_current=False)
app.config_from_object(celeryconfig.build(settings))
bridge = Bridge(app, settings=settings)
