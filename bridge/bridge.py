"""``Bridge(app)``: binds the jobs API to an existing Celery app."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from celery import Celery

from bridge.core import registry
from bridge.core.backend import OWN_BROKER_SCHEMES, QueueBackend, resolve_backend
from bridge.core.connect import redis_client
from bridge.core.keys import global_keyprefix
from bridge.core.tls import store_url_of_broker, verify_broker_tls
from bridge.queue import JobQueue
from bridge.settings import Settings

if TYPE_CHECKING:  # redis loads with the backend, not with `import bridge`
    import redis

    from bridge.dynamodb.store import DynamoStore
    from bridge.lock import Lock
    from bridge.redis.deadletters import DeadLetters
    from bridge.stats import QueueCounts

__all__ = ["Bridge"]

F = TypeVar("F", bound=Callable[..., Any])


class Bridge:
    """The jobs API of one Celery app.

    Example::

        app = Celery("shop")
        app.config_from_object("bridge.celeryconfig")
        bridge = Bridge(app)
        bridge.queue.add("emails.send", {"to": "a@b.c"}, idempotency_key="order-42")
        bridge.jobs.schedule("reports.daily", {}, cron="0 6 * * *", tz="Europe/Berlin")

    Binding registers the worker and beat side (see :mod:`bridge.worker.install`:
    a promoter of delayed jobs, the beat scheduler when the app uses Celery's
    default one, the backend's own worker pieces) and changes nothing else about
    the app.

    Args:
        app: the Celery app whose tasks are the handlers.
        settings: defaults to ``Settings.from_env(conf=app.conf)``: each setting from
            the environment, else from the app's Celery config (``jobs_queue_name``,
            ``bridge_redis_url``, ...); when no Redis URL is given and the app's broker
            is Redis, that broker is used.
    """

    def __init__(self, app: Celery, settings: Settings | None = None) -> None:
        # Here, not at the top: they import redis (and celery-redbeat), which `import bridge` must not.
        from bridge.jobs import Jobs
        from bridge.worker.install import install as install_worker_side

        self.app = app
        verify_broker_tls(app.conf)  # before anything connects: kombu alone would not verify
        self.settings = settings or Settings.from_env(
            default_redis_url=_redis_broker_url(app), default_backend=_broker_backend(app), conf=app.conf
        )
        self.backend: QueueBackend = resolve_backend(self.settings.queue_backend)(app, self.settings)  # type: ignore[call-arg]
        if self.settings.jobs_backend == self.settings.queue_backend:
            self.jobs_backend = self.backend
        else:
            # JOBS_BACKEND differs from the app's broker (QUEUE_BACKEND): scheduled jobs are
            # published through a companion app of their own, on their own connection.
            jobs_app = _companion_app(app, self.settings)
            self.jobs_backend = resolve_backend(self.settings.jobs_backend)(jobs_app, self.settings)  # type: ignore[call-arg]
        self.queue = JobQueue(self.backend)
        # A broker that consumes predefined queues only (SQS): scheduled jobs go to its queue.
        jobs_conf = self.jobs_backend.app.conf  # type: ignore[attr-defined]
        self.jobs_queue: str = (
            jobs_conf.task_default_queue
            if self.jobs_backend.predefined_queues_only
            else self.settings.jobs_queue_name
        )
        self._store: redis.Redis | DynamoStore | None = None
        self._store_lock = threading.Lock()  # threads racing for the first lock make one client
        self.key_prefix = global_keyprefix(app.conf)  # before the keys of locks and @idempotent
        self.jobs = Jobs(app, self.jobs_backend, self.jobs_queue)
        self.dead_letters: DeadLetters | None = self.backend.dead_letters()
        registry.register(app, self)
        install_worker_side(self)

    def stats(self, queues: Sequence[str]) -> dict[str, QueueCounts]:
        """Counts per queue: ``{queue: QueueCounts(waiting, active, delayed, scheduled, failed)}``."""
        from bridge.stats import collect

        return collect(self.backend, list(queues), self.jobs.count_per_queue)

    @property
    def store(self) -> redis.Redis | DynamoStore:
        """The store of locks and idempotency guards (``LOCK_BACKEND``): shared by every process."""
        if self._store is None:
            with self._store_lock:
                if self._store is None:
                    self._store = self._connect_store()
        return self._store

    def _connect_store(self) -> redis.Redis | DynamoStore:
        if self.settings.lock_backend == "dynamodb":
            from bridge.dynamodb.store import DynamoStore
            from bridge.dynamodb.table import DynamoTable

            return DynamoStore(DynamoTable.of(self.settings))
        from bridge.embedded.server import shared_store_url

        redis_url = self.settings.redis_url if self.settings.lock_backend == "redis" else None
        return redis_client(
            shared_store_url(redis_url, self.settings.bridge_home),
            sentinel_master=self.settings.redis_sentinel_master,
        )

    def lock(
        self, name: str, *, ttl_ms: int, blocking: bool = True, timeout_ms: int | None = None,
        auto_extend: bool = False,
    ) -> Lock:  # fmt: skip
        """A lock shared by every process of the app: ``with bridge.lock("nightly", ttl_ms=60_000):``.

        Also a decorator. See :class:`bridge.lock.Lock` for the arguments.

        Raises:
            LockNotAcquired: not acquired (non-blocking, or ``timeout_ms`` passed).
            LockLost: on release, the lock had expired (another holder may have it).
        """
        from bridge.lock import Lock

        return Lock(self.store, name, ttl_ms=ttl_ms, blocking=blocking, timeout_ms=timeout_ms,
                    auto_extend=auto_extend, key_prefix=self.key_prefix + "bridge:lock:")  # fmt: skip

    def idempotent(
        self, key: Callable[..., str] | None = None, ttl_ms: int = 86_400_000, lease_ms: int = 30_000
    ) -> Callable[[F], F]:
        """Make a task body run at most once per key (default: the job id). Place below ``@app.task``.

        See :mod:`bridge.idempotent`.
        """
        from bridge.idempotent import idempotent

        return idempotent(lambda: self.store, key=key, ttl_ms=ttl_ms, lease_ms=lease_ms,
                          key_prefix=self.key_prefix + "bridge:idem:")  # fmt: skip

    def close(self) -> None:
        """Release this process's connections."""
        self.backend.close()
        if self.jobs_backend is not self.backend:
            self.jobs_backend.close()
        if self._store is not None:
            self._store.close()


def _companion_app(app: Celery, settings: Settings) -> Celery:
    """A Celery app that only publishes, configured for JOBS_BACKEND's broker."""
    import dataclasses

    from bridge import celeryconfig

    companion = Celery(f"{app.main or 'app'}-jobs", set_as_current=False)
    companion.config_from_object(
        celeryconfig.build(dataclasses.replace(settings, queue_backend=settings.jobs_backend))
    )
    return companion


def _broker_backend(app: Celery) -> str | None:
    """``broker`` when the app names a kombu broker the bridge has no backend of its own for."""
    url = app.conf.broker_write_url or app.conf.broker_url
    if not isinstance(url, str) or "://" not in url:
        return None
    return None if url.split("://", 1)[0].lower() in OWN_BROKER_SCHEMES else "broker"


def _redis_broker_url(app: Celery) -> str | None:
    url = app.conf.broker_write_url or app.conf.broker_url
    if isinstance(url, str) and OWN_BROKER_SCHEMES.get(url.split("://", 1)[0].lower()) == "redis":
        return store_url_of_broker(url, app.conf.broker_use_ssl)
    return None
