"""Queue counts: waiting, active, delayed, scheduled repeats and dead letters, per queue."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from kombu.exceptions import KombuError
from redis.exceptions import RedisError

from bridge.errors import ConfigError, InvalidInput, backend_unavailable

if TYPE_CHECKING:
    from bridge.broker.backend import BrokerBackend
    from bridge.core.backend import QueueBackend

__all__ = ["QueueCounts", "collect", "configured_queues", "parse_queues"]


@dataclass(frozen=True)
class QueueCounts:
    """Counts of one queue; exact on Redis and the embedded server (see :func:`collect` for other brokers).

    Attributes:
        waiting: messages in the queue, all priority sub-queues counted.
        active: reserved by a worker and not yet acknowledged (running or prefetched).
        delayed: waiting for their delay, in the bridge's delayed set.
        scheduled: standing repeats whose runs go to this queue.
        failed: dead letters.
    """

    waiting: int
    active: int
    delayed: int
    scheduled: int
    failed: int

    def as_json(self) -> dict[str, int]:
        return asdict(self)


def configured_queues(conf: Any, jobs_queue: str) -> list[str]:
    """The queues an app's config names, each once: ``task_default_queue``, ``JOBS_QUEUE_NAME``,
    ``task_queues``, and the queues ``task_routes`` names (what ``jobs stats`` counts by default)."""
    found: list[str] = [conf.task_default_queue, jobs_queue]
    found += [getattr(q, "name", str(q)) for q in (conf.task_queues or ())]
    found += _routed_queues(conf.task_routes)
    return list(dict.fromkeys(q for q in found if q))


def _routed_queues(routes: Any) -> list[str]:
    """The queues ``task_routes`` names, in the shapes Celery takes (``celery.app.routes.prepare``):
    a map, or a list of maps, each route a queue name or a dict with ``queue``. A router function
    names its queues only when it routes a task: it adds none here."""
    maps = routes if isinstance(routes, (list, tuple)) else [routes]
    found: list[str] = []
    for routing in maps:
        if not isinstance(routing, Mapping):
            continue
        for route in routing.values():
            queue = route.get("queue") if isinstance(route, Mapping) else route
            name = getattr(queue, "name", queue)  # a kombu Queue, or its name
            if isinstance(name, str):
                found.append(name)
    return found


def parse_queues(text: str) -> list[str]:
    """``"a,b"`` -> ``["a", "b"]``; raises InvalidInput naming ``--queues`` for an empty list or name."""
    names = [part.strip() for part in text.split(",")]
    if not text.strip() or any(not name for name in names):
        raise InvalidInput(
            "--queues", f"{text!r} is not a comma-separated list of queue names, e.g. celery,app:jobs."
        )
    return names


def collect(
    queue_backend: QueueBackend, queues: Sequence[str], repeats: Callable[[], Mapping[str, int]]
) -> dict[str, QueueCounts]:
    """Count each queue (one pipeline for the lists, one scan of in-flight messages).

    ``repeats`` counts the standing repeats per queue (``bridge.jobs.count_per_queue``).
    """
    from bridge.broker.backend import BrokerBackend
    from bridge.redis.backend import RedisBackend

    backend: Any = queue_backend
    if isinstance(backend, BrokerBackend):
        return _broker_counts(backend, queues, repeats)
    if not isinstance(backend, RedisBackend):
        raise ConfigError("jobs stats counts Redis, embedded and broker queues; for SQS run jobs stats-sqs.")
    try:
        channel = backend._builder().channel
        steps = channel.priority_steps
        prefix = channel.global_keyprefix or ""
        client = backend.client
        with client.pipeline(transaction=False) as pipe:
            for queue in queues:
                for step in steps:
                    pipe.llen(prefix + channel._q_for_pri(queue, step))
                pipe.zcard(backend.key("delayed", queue))
                pipe.llen(backend.key("dead", queue))
            counts = pipe.execute()
            unacked = client.hvals(prefix + channel.unacked_key)
        standing = repeats()
    except RedisError as exc:
        raise backend_unavailable("jobs stats", exc, backend.url) from None
    in_flight: dict[str, int] = {}
    for raw in unacked:
        try:
            routing_key = json.loads(raw)[2]
        except (ValueError, IndexError, TypeError):
            continue
        in_flight[routing_key] = in_flight.get(routing_key, 0) + 1
    out = {}
    per_queue = len(steps) + 2
    for i, queue in enumerate(queues):
        chunk = counts[i * per_queue : (i + 1) * per_queue]
        out[queue] = QueueCounts(
            waiting=sum(chunk[: len(steps)]),
            active=in_flight.get(queue, 0),
            delayed=chunk[len(steps)],
            scheduled=standing.get(queue, 0),
            failed=chunk[len(steps) + 1],
        )
    return out


# How long ``jobs stats`` waits for workers to say what they hold (Celery's inspect).
INSPECT_TIMEOUT_S = 1.0


def _broker_counts(
    backend: BrokerBackend, queues: Sequence[str], repeats: Callable[[], Mapping[str, int]]
) -> dict[str, QueueCounts]:
    """Counts on another kombu broker: waiting from the broker, active from the workers.

    The broker counts messages ready for delivery (AMQP's ``queue.declare``, passive: a
    queue that does not exist counts 0 and is not created). What workers hold
    unacknowledged (running or prefetched) is what they report to Celery's
    ``inspect active``/``reserved``; delayed jobs and dead letters are in the guard store.
    """
    app: Any = backend.app
    waiting: dict[str, int] = {}
    try:
        with app.connection_for_read() as connection:
            for queue in queues:
                channel = connection.channel()  # a missing queue closes its channel
                try:
                    waiting[queue] = int(channel.queue_declare(queue=queue, passive=True).message_count)
                except connection.channel_errors:
                    waiting[queue] = 0
                finally:
                    with contextlib.suppress(*connection.connection_errors, *connection.channel_errors):
                        channel.close()
        inspect = app.control.inspect(timeout=INSPECT_TIMEOUT_S)
        held = [*_tasks(inspect.active()), *_tasks(inspect.reserved())]
    except (KombuError, OSError) as exc:
        raise backend_unavailable("jobs stats", exc, backend.url) from None
    try:
        letters = backend.dead_letters()
        # The dead-letter counts first: a store that is gone then reads as "jobs stats failed",
        # not as the narrower "counting delayed jobs failed" delayed_count would say.
        failed = {queue: letters.count(queue) for queue in queues}
        delayed = {queue: backend.delayed_count(queue) for queue in queues}
        standing = repeats()
    except RedisError as exc:
        raise backend_unavailable("jobs stats", exc, backend.store.url) from None
    active: dict[str, int] = {}
    for task in held:
        routing_key = str((task.get("delivery_info") or {}).get("routing_key"))
        active[routing_key] = active.get(routing_key, 0) + 1
    return {
        queue: QueueCounts(
            waiting=waiting[queue],
            active=active.get(queue, 0),
            delayed=delayed[queue],
            scheduled=standing.get(queue, 0),
            failed=failed[queue],
        )
        for queue in queues
    }


def _tasks(reply: dict[str, list[dict[str, Any]]] | None) -> list[dict[str, Any]]:
    return [task for tasks in (reply or {}).values() for task in tasks]
