"""``Bridge(app)``: binds the jobs API to an existing Celery app."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from celery import Celery, signals, states

from bridge import registry
from bridge.backends import resolve_backend
from bridge.backends.base import QueueBackend
from bridge.promoter import install_promoter
from bridge.queue import JobQueue
from bridge.settings import Settings

if TYPE_CHECKING:  # redis loads with the backend, not with `import bridge`
    import redis

    from bridge.deadletters import DeadLetters
    from bridge.lock import Lock
    from bridge.stats import QueueCounts

__all__ = ["Bridge"]

logger = logging.getLogger("bridge")
F = TypeVar("F", bound=Callable[..., Any])

_CELERY_DEFAULT_SCHEDULERS = ("celery.beat:PersistentScheduler", "celery.beat.PersistentScheduler")
_BRIDGE_SCHEDULER = "bridge.beat:BridgeScheduler"


class Bridge:
    """The jobs API of one Celery app.

    Example::

        app = Celery("shop")
        app.config_from_object("celeryconfig")
        bridge = Bridge(app)
        bridge.queue.add("emails.send", {"to": "a@b.c"}, idempotency_key="order-42")
        bridge.jobs.schedule("reports.daily", {}, cron="0 6 * * *", tz="Europe/Berlin")

    Binding registers, and changes nothing else about the app:

    * a promoter of delayed jobs in the app's workers and beat (a bootstep and a
      ``beat_init`` handler);
    * ``beat_scheduler = bridge.beat:BridgeScheduler`` (celery-redbeat) when the app
      uses Celery's default scheduler, so a plain ``celery beat`` fires repeats;
    * ``JOBS_QUEUE_NAME`` in the queues of workers that consume the default queue;
    * with ``JOBS_DEDUPE_UNTIL=finish``, a ``task_postrun`` handler that frees a
      job's key when it has finished.

    Args:
        app: the Celery app whose tasks are the handlers.
        settings: defaults to ``Settings.from_env()``; when ``REDIS_URL`` is unset
            and the app's broker is Redis, that broker is used.
    """

    def __init__(self, app: Celery, settings: Settings | None = None) -> None:
        from bridge.jobs import Jobs

        self.app = app
        self.settings = settings or Settings.from_env(default_redis_url=_redis_broker_url(app))
        self.backend: QueueBackend = resolve_backend(self.settings.queue_backend)(app, self.settings)  # type: ignore[call-arg]
        if self.settings.jobs_backend == self.settings.queue_backend:
            self.jobs_backend = self.backend
        else:
            # JOBS_BACKEND differs from the app's broker (QUEUE_BACKEND): scheduled jobs are
            # published through a companion app of their own, on their own connection.
            jobs_app = _companion_app(app, self.settings)
            self.jobs_backend = resolve_backend(self.settings.jobs_backend)(jobs_app, self.settings)  # type: ignore[call-arg]
        self.queue = JobQueue(self.backend)
        # SQS consumes only predefined queues: scheduled jobs go to the configured one there.
        self.on_sqs = self.settings.jobs_backend == "sqs"
        jobs_conf = self.jobs_backend.app.conf  # type: ignore[attr-defined]
        self.jobs_queue: str = jobs_conf.task_default_queue if self.on_sqs else self.settings.jobs_queue_name
        self._store: redis.Redis | None = None
        self.jobs = Jobs(self)
        registry.register(app, self)
        interval_s = self.settings.promote_interval_ms / 1000.0
        for backend in {id(b): b for b in (self.backend, self.jobs_backend)}.values():
            install_promoter(app, backend, interval_s)
        self._configure_beat()
        self.dead_letters = self._dead_letters()
        from bridge.reconnect import install_reconnect_guard
        from bridge.rejected import install_rejected
        from bridge.reliable_fetch import install_reliable_fetch

        install_rejected(app, self.dead_letters)
        install_reconnect_guard(app)
        install_reliable_fetch(app)
        signals.celeryd_after_setup.connect(self._consume_jobs_queue, weak=False)
        # The app's own broker is QUEUE_BACKEND's: its workers consume that backend's queues.
        if hasattr(self.backend, "is_cancelled"):
            signals.task_received.connect(self._honour_tombstone, weak=False)
        if self.settings.queue_backend == "sqs" and self.settings.sqs_heartbeat_sec:
            from bridge.sqs_heartbeat import install_heartbeat

            install_heartbeat(app, self.settings)
        if self.settings.queue_backend == "sqs" and self.settings.sqs_fifo:
            signals.before_task_publish.connect(self._keep_fifo_group, weak=False)
        if self.settings.dedupe_until == "finish":
            signals.task_postrun.connect(self._release_on_finish, weak=False)

    def _configure_beat(self) -> None:
        from bridge.beat import LOCK_TIMEOUT_S, LOOP_INTERVAL_S

        conf = self.app.conf
        if conf.beat_scheduler in _CELERY_DEFAULT_SCHEDULERS:
            conf.beat_scheduler = _BRIDGE_SCHEDULER
        elif conf.beat_scheduler != _BRIDGE_SCHEDULER:
            logger.warning(
                "bridge: beat_scheduler is %r, so jobs.schedule repeats will not fire; "
                "run beat with -S %s", conf.beat_scheduler, _BRIDGE_SCHEDULER,
            )  # fmt: skip
        redis_url = getattr(self.jobs_backend, "redis_url", None)
        if redis_url and not conf.get("redbeat_redis_url"):
            conf.redbeat_redis_url = redis_url
        if not conf.get("redbeat_redis_options"):
            # Explicit, so redbeat does not hand the broker's transport options to redis-py.
            conf.redbeat_redis_options = {"health_check_interval": 25}
        if not conf.get("redbeat_key_prefix"):
            conf.redbeat_key_prefix = "bridge:repeat:"
        # redbeat's defaults (a 5-minute loop, a 25-minute lock) would fire a repeat
        # added at run time minutes late and leave no beat for 25 minutes after a crash.
        if not conf.get("redbeat_lock_timeout"):
            conf.redbeat_lock_timeout = LOCK_TIMEOUT_S
        if not conf.beat_max_loop_interval:
            conf.beat_max_loop_interval = LOOP_INTERVAL_S

    def _consume_jobs_queue(self, sender: Any = None, instance: Any = None, **_: Any) -> None:
        # Only a general worker (one that consumes the default queue) takes scheduled
        # jobs too; a worker started with -Q for other queues is left as configured.
        app: Any = self.app
        ours = getattr(instance, "app", None) is app
        if not ours or self.on_sqs or self.jobs_backend is not self.backend:
            return  # scheduled jobs travel on another broker: its own workers consume them
        queues = app.amqp.queues
        if app.conf.task_default_queue in queues.consume_from:
            queues.select_add(self.jobs_queue)

    def _honour_tombstone(self, sender: Any = None, request: Any = None, **_: Any) -> None:
        # Runs in the worker when a message arrives, before the job starts: a job
        # cancelled by jobs.cancel is marked revoked, so Celery discards it unrun.
        if request is None or getattr(request, "app", self.app) is not self.app:
            return
        backend: Any = self.backend
        if backend.is_cancelled(request.id):
            from celery.worker import state

            state.revoked.add(request.id)

    def _keep_fifo_group(
        self, headers: dict[str, Any] | None = None, properties: dict[str, Any] | None = None, **_: Any
    ) -> None:
        # Celery's Task.retry() republishes without the SQS message group, so the retry
        # would land in group "default" and lose its place in the order: keep the group,
        # with a deduplication id of its own (SQS would drop a repeat of the old one).
        from celery import current_task

        task = current_task
        if task is None or headers is None or properties is None or headers.get("id") != task.request.id:
            return  # not a task republishing itself
        original = task.request.properties or {}
        group = original.get("MessageGroupId")
        if group and "MessageGroupId" not in properties:
            seed = original.get("MessageDeduplicationId") or task.request.id
            properties["MessageGroupId"] = group
            properties["MessageDeduplicationId"] = hashlib.sha256(
                f"{seed}:retry:{headers.get('retries')}".encode()
            ).hexdigest()

    def _release_on_finish(
        self, sender: Any = None, task_id: str | None = None, state: str | None = None, **_: Any
    ) -> None:
        # A retry is not the end of the job: its key must keep deduping until it is done.
        if task_id and getattr(sender, "app", None) is self.app and state in states.READY_STATES:
            self.backend.release_guard(task_id)

    def _dead_letters(self) -> DeadLetters | None:
        from bridge.backends.redis import RedisBackend
        from bridge.deadletters import DeadLetters

        if not isinstance(self.backend, RedisBackend):
            return None
        letters = DeadLetters(self.app, self.backend, self.settings.dlq_max)
        letters.install()
        return letters

    def stats(self, queues: Sequence[str]) -> dict[str, QueueCounts]:
        """Counts per queue: ``{queue: QueueCounts(waiting, active, delayed, scheduled, failed)}``."""
        from bridge.stats import collect

        return collect(self, list(queues))

    @property
    def store(self) -> redis.Redis:
        """The Redis of locks and idempotency guards (``LOCK_BACKEND``): shared by every process."""
        if self._store is None:
            import redis

            from bridge.embedded import shared_store_url

            redis_url = self.settings.redis_url if self.settings.lock_backend == "redis" else None
            self._store = redis.Redis.from_url(shared_store_url(redis_url, self.settings.bridge_home))
        return self._store

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
                    auto_extend=auto_extend)  # fmt: skip

    def idempotent(
        self, key: Callable[..., str] | None = None, ttl_ms: int = 86_400_000, lease_ms: int = 30_000
    ) -> Callable[[F], F]:
        """Make a task body run at most once per key (default: the job id). Place below ``@app.task``.

        See :mod:`bridge.idempotent`.
        """
        from bridge.idempotent import idempotent

        return idempotent(lambda: self.store, key=key, ttl_ms=ttl_ms, lease_ms=lease_ms)

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

    import celeryconfig

    companion = Celery(f"{app.main or 'app'}-jobs", set_as_current=False)
    companion.config_from_object(
        celeryconfig.build(dataclasses.replace(settings, queue_backend=settings.jobs_backend))
    )
    return companion


def _redis_broker_url(app: Celery) -> str | None:
    url = app.conf.broker_write_url or app.conf.broker_url
    if isinstance(url, str) and url.split("://", 1)[0].lower() in ("redis", "rediss", "unix"):
        return url
    return None
