"""Broker backend (``QUEUE_BACKEND=broker``): any kombu broker but Redis and SQS, RabbitMQ first.

Jobs are published through Celery's own producer (``app.send_task``), so the
message is exactly what the app would send, in its serializer, on its routes. What
the broker cannot do lives in the guard store (:class:`~bridge.broker.guard.GuardStore`):

* dedupe: the add claims the key (``SET NX``), publishes, and frees the key if the
  publish fails: nothing stays claimed without a job;
* delays: a delayed job waits in the guard store (:mod:`bridge.broker.scripts`),
  never as a Celery ETA in worker memory; the promoter in every worker and beat
  publishes it when it is due;
* repeats: stored in the guard store, fired by ``celery beat``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

from celery import Celery
from kombu.exceptions import KombuError
from redis.exceptions import RedisError

from bridge.broker.deadletters import PublishedDeadLetters
from bridge.broker.guard import GuardedBackend, GuardStore
from bridge.broker.scripts import ADD_DELAYED, CANCEL_DELAYED, FORGET, TAKE_DUE
from bridge.core.backend import OWN_BROKER_SCHEMES
from bridge.core.publish import routed_queue, send_detached
from bridge.core.redact import redact
from bridge.errors import ConfigError, backend_unavailable
from bridge.job import Job, JobRequest
from bridge.settings import Settings

__all__ = ["BrokerBackend"]

logger = logging.getLogger("bridge.broker")

_PREFIX = "bridge:broker:"
# Jobs one promoter pass publishes at most, and how long one may take before another
# promoter takes its jobs over (it died mid-send).
PROMOTE_BATCH = 200
PROMOTE_LEASE_MS = 30_000


class BrokerBackend(GuardedBackend):
    """Queue backend on the Celery app's own broker, through Celery's producer."""

    @classmethod
    def broker_settings(cls, settings: Settings) -> dict[str, Any]:
        raise ConfigError(
            "QUEUE_BACKEND=broker keeps your app's own broker: set broker_url in your Celery config "
            "(bridge.celeryconfig builds Redis, embedded and SQS configs only)."
        )

    def __init__(self, app: Celery, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        self.url = str(app.conf.broker_write_url or app.conf.broker_url or "")
        scheme = self.url.split("://", 1)[0].lower() if "://" in self.url else ""
        if not scheme or scheme in OWN_BROKER_SCHEMES:
            own = OWN_BROKER_SCHEMES.get(scheme)
            raise ConfigError(
                f"QUEUE_BACKEND=broker publishes through the app's own broker, but broker_url="
                f"{redact(self.url)!r} "
                + (f"is served by QUEUE_BACKEND={own}; use that." if own else "is not set; set broker_url.")
            )
        self.store = GuardStore(settings, "broker")
        self._letters: PublishedDeadLetters | None = None
        self._guard_ttl_ms = settings.dedupe_ttl_sec * 1000

    def enqueue(self, requests: Sequence[JobRequest]) -> list[Job]:
        return [self._add(request) for request in requests]

    def _add(self, request: JobRequest) -> Job:
        # Without queue=, the app's task_routes decide, as for apply_async: the message is published
        # with no queue option (Celery's router also sets the route's exchange and routing key).
        queue = request.queue or routed_queue(self.app, request.name, request.data)
        ttl = (request.guard_ttl_ms or self._guard_ttl_ms) + request.delay_ms
        if request.delay_ms:
            return self._add_delayed(request, queue, ttl)
        claimed = False
        try:
            if request.idempotency_key is not None:
                standing = self.store.claim(request.job_id, queue, ttl)
                if standing is not None:
                    return Job(id=request.job_id, name=request.name, queue=standing, deduplicated=True)
                claimed = True
            self._publish(request.name, request.data, request.job_id, request.queue, request.priority)
        except (KombuError, RedisError, OSError) as exc:
            if claimed:  # the publish failed: free the key, so a retry with it can send
                self._release_quietly(request.job_id)
            raise backend_unavailable("queue.add", exc, self.url, an_add=True) from None
        return Job(id=request.job_id, name=request.name, queue=queue)

    def _add_delayed(self, request: JobRequest, queue: str, ttl: int) -> Job:
        # "routed": published with no queue option when due, so the app's task_routes decide then.
        job = json.dumps({"name": request.name, "data": request.data, "queue": queue,
                          "priority": request.priority, "routed": request.queue is None,
                          "key": request.idempotency_key})  # fmt: skip
        keys = [f"bridge:guard:{request.job_id}", f"{_PREFIX}delayed:{queue}", f"{_PREFIX}queues",
                f"{_PREFIX}jobs"]  # fmt: skip
        guard_ttl = str(ttl) if request.idempotency_key is not None else ""
        try:
            added, value = self.client.eval(ADD_DELAYED, len(keys), *keys, request.job_id, queue,
                                            request.delay_ms, job, guard_ttl)  # fmt: skip
        except RedisError as exc:
            raise backend_unavailable("queue.add", exc, self.store.url, an_add=True) from None
        if not added:
            standing = value.decode() if isinstance(value, bytes) else str(value or queue)
            return Job(id=request.job_id, name=request.name, queue=standing, deduplicated=True)
        return Job(id=request.job_id, name=request.name, queue=queue, due_ms=int(value))

    def _publish(
        self, name: str, data: dict[str, Any], job_id: str, queue: str | None, priority: int | None
    ) -> None:
        send_detached(self.app, name, kwargs=data, task_id=job_id, queue=queue, priority=priority)

    def _release_quietly(self, job_id: str) -> None:
        try:
            self.store.release(job_id)
        except RedisError as exc:  # the guard expires by itself; the publish error is the news
            logger.warning("bridge: could not free the key of %s after a failed publish: %s", job_id, exc)

    def promote_due(self) -> float | None:
        keys = [f"{_PREFIX}queues", f"{_PREFIX}jobs", f"{_PREFIX}promoting"]
        try:
            reply = self.client.eval(TAKE_DUE, len(keys), *keys, f"{_PREFIX}delayed:", PROMOTE_BATCH,
                                     PROMOTE_LEASE_MS)  # fmt: skip
        except RedisError as exc:
            raise backend_unavailable("promoting delayed jobs", exc, self.store.url) from None
        next_due, taken = int(reply[0]), reply[1:]
        for raw_id, raw_job in zip(taken[::2], taken[1::2], strict=True):
            job_id = raw_id.decode() if isinstance(raw_id, bytes) else str(raw_id)
            if raw_job:  # empty: cancelled while taken, nothing to publish
                job = json.loads(raw_job)
                try:
                    queue = None if job.get("routed") else job["queue"]
                    self._publish(job["name"], job["data"], job_id, queue, job["priority"])
                except (KombuError, OSError) as exc:
                    # Left in "promoting": when its lease ends a promoter publishes it again.
                    raise backend_unavailable("publishing a due job", exc, self.url) from None
            self.client.eval(FORGET, 2, f"{_PREFIX}promoting", f"{_PREFIX}jobs", job_id)
        return None if next_due < 0 else next_due / 1000.0

    def cancel_delayed(self, job_id: str) -> bool:
        try:
            removed = self.client.eval(CANCEL_DELAYED, 2, f"bridge:guard:{job_id}", f"{_PREFIX}jobs", job_id,
                                       f"{_PREFIX}delayed:")  # fmt: skip
        except RedisError as exc:
            raise backend_unavailable("cancelling a delayed job", exc, self.store.url) from None
        return bool(removed)

    def delayed_count(self, queue: str) -> int:
        """How many jobs wait for their delay on ``queue``."""
        try:
            return int(self.client.zcard(f"{_PREFIX}delayed:{queue}"))
        except RedisError as exc:
            raise backend_unavailable("counting delayed jobs", exc, self.store.url) from None

    def withdraw(self, job_id: str) -> bool:
        return False  # a published message cannot be taken back from the broker; revoke it

    def key(self, *parts: str) -> str:
        """A bridge key in the guard store."""
        return "bridge:" + ":".join(parts)

    def dead_letters(self) -> PublishedDeadLetters:
        """Jobs that failed for good, per queue, kept in the guard store (recorded by this app's workers)."""
        if self._letters is None:
            self._letters = PublishedDeadLetters(self.app, self, self.settings.dlq_max)
        return self._letters

    def install_worker(self) -> None:
        from bridge.worker.rejected import install_rejected

        letters = self.dead_letters()
        letters.install()
        install_rejected(self.app, letters)
