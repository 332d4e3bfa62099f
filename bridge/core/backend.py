"""The small contract every queue backend fulfils, and the registry that finds one by name.

The registry is modelled on kombu's ``TRANSPORT_ALIASES``: names resolve lazily to
classes, so ``import bridge`` imports no client, and this is the only place that
maps a backend name to code.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from importlib import import_module
from typing import TYPE_CHECKING, Any, ClassVar

from bridge.errors import ConfigError
from bridge.job import Job, JobRequest

if TYPE_CHECKING:
    from bridge.core.repeats import RepeatScheduler
    from bridge.settings import Settings

__all__ = ["BACKENDS", "OWN_BROKER_SCHEMES", "QueueBackend", "resolve_backend"]

BACKENDS: dict[str, str] = {
    "redis": "bridge.redis.backend:RedisBackend",
    "embedded": "bridge.embedded.backend:EmbeddedBackend",
    "sqs": "bridge.sqs.backend:SqsBackend",
    "broker": "bridge.broker.backend:BrokerBackend",
}

#: Broker URL schemes served by a backend of their own; any other kombu broker is ``broker``'s.
OWN_BROKER_SCHEMES: dict[str, str] = {
    "redis": "redis", "rediss": "redis", "unix": "redis", "socket": "redis", "redis+socket": "redis",
    "sentinel": "redis", "sqs": "sqs",
}  # fmt: skip


class QueueBackend(ABC):
    """Where jobs go: atomic dedupe-and-enqueue, delays, and the worker-side duties."""

    #: The broker consumes only queues configured in advance (SQS): scheduled jobs go
    #: to the app's default queue there, not to ``JOBS_QUEUE_NAME``.
    predefined_queues_only: ClassVar[bool] = False

    @classmethod
    @abstractmethod
    def broker_settings(cls, settings: Settings) -> dict[str, Any]:
        """The Celery settings that put an app on this backend's broker (``bridge.celeryconfig``)."""

    @classmethod  # noqa: B027 - optional hook
    def start_broker(cls, settings: Settings) -> None:
        """Make the broker answer before an app uses it (the embedded server starts on demand)."""

    @abstractmethod
    def enqueue(self, requests: Sequence[JobRequest]) -> list[Job]:
        """Send each request unless its idempotency key already stands.

        Each item is atomic on its own (claim and send together); a batch is sent
        in as few round trips as the backend allows. Returns one Job per request,
        in order.
        """

    def add_one(self, name: object, data: object, idempotency_key: object) -> Job | None:
        """``queue.add(name, data, idempotency_key=...)`` with no other option, by a shorter path.

        None where the backend has none for this add, before anything is checked or sent:
        the caller then validates and calls :meth:`enqueue`. A backend that adds here
        validates as that would, raising the same errors for the same input.
        """
        return None

    @abstractmethod
    def promote_due(self) -> float | None:
        """Move delayed jobs that are due onto their queues.

        Safe to call from any number of processes at once. Returns the seconds
        until the next delayed job is due (0 when more are due now), or None when
        no job is waiting.
        """

    @abstractmethod
    def cancel_delayed(self, job_id: str) -> bool:
        """Remove a job that still waits for its delay; True if one was removed."""

    @abstractmethod
    def withdraw(self, job_id: str) -> bool:
        """Remove a tracked job from its queue if no worker has taken it; True if removed."""

    @abstractmethod
    def release_guard(self, job_id: str) -> None:
        """Free a job's idempotency key (used when dedupe lasts until the job finishes)."""

    def repeat_scheduler(self) -> RepeatScheduler | None:
        """The broker's own scheduler of repeats, when it fires them instead of ``celery beat``."""
        return None

    def dead_letters(self) -> Any:
        """This backend's dead letters (list, retry, purge), or None where the broker keeps them."""
        return None

    def install_worker(self) -> None:  # noqa: B027 - optional hook
        """Install this backend's own pieces into the app's worker and beat processes.

        Called once by ``bridge.worker.install`` when the app is bridged; the pieces
        are bootsteps and signal handlers, so they act only inside ``celery worker``
        and ``celery beat``.
        """

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections held by this process."""


def resolve_backend(name: str) -> type[QueueBackend]:
    """Return the backend class registered under ``name``.

    Raises:
        ConfigError: the name is unknown.
    """
    target = BACKENDS.get(name)
    if target is None:
        raise ConfigError(f"QUEUE_BACKEND={name!r} is not a backend; accepted: {', '.join(BACKENDS)}.")
    module, _, attr = target.partition(":")
    cls: type[QueueBackend] = getattr(import_module(module), attr)
    return cls
