"""``Bridge(app)``: binds the jobs API to an existing Celery app."""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery, signals, states

from bridge.backends import resolve_backend
from bridge.backends.base import QueueBackend
from bridge.promoter import install_promoter
from bridge.queue import JobQueue
from bridge.settings import Settings

__all__ = ["Bridge"]

logger = logging.getLogger("bridge")


class Bridge:
    """The jobs API of one Celery app.

    Example::

        app = Celery("shop")
        app.config_from_object("celeryconfig")
        bridge = Bridge(app)
        bridge.queue.add("emails.send", {"to": "a@b.c"}, idempotency_key="order-42")

    Binding registers a promoter of delayed jobs in the app's workers and beat
    (a bootstep and a ``beat_init`` handler) and, with ``JOBS_DEDUPE_UNTIL=finish``,
    a ``task_postrun`` handler that frees a job's key when it has finished. It
    changes nothing else about the app.

    Args:
        app: the Celery app whose tasks are the handlers.
        settings: defaults to ``Settings.from_env()``; when ``REDIS_URL`` is unset
            and the app's broker is Redis, that broker is used.
    """

    def __init__(self, app: Celery, settings: Settings | None = None) -> None:
        self.app = app
        self.settings = settings or Settings.from_env(default_redis_url=_redis_broker_url(app))
        backend_cls = resolve_backend(self.settings.queue_backend)
        self.backend: QueueBackend = backend_cls(app, self.settings)  # type: ignore[call-arg]
        self.queue = JobQueue(self.backend)
        install_promoter(app, self.backend, self.settings.promote_interval_ms / 1000.0)
        if self.settings.dedupe_until == "finish":
            signals.task_postrun.connect(self._release_on_finish, weak=False)

    def _release_on_finish(
        self, sender: Any = None, task_id: str | None = None, state: str | None = None, **_: Any
    ) -> None:
        # A retry is not the end of the job: its key must keep deduping until it is done.
        if task_id and getattr(sender, "app", None) is self.app and state in states.READY_STATES:
            self.backend.release_guard(task_id)

    def close(self) -> None:
        """Release this process's connections."""
        self.backend.close()


def _redis_broker_url(app: Celery) -> str | None:
    url = app.conf.broker_write_url or app.conf.broker_url
    if isinstance(url, str) and url.split("://", 1)[0].lower() in ("redis", "rediss", "unix"):
        return url
    return None
