"""Dead letters of a broker that keeps none the bridge can read (RabbitMQ, ...): kept in the guard store.

The worker records a job that failed for good exactly as on Redis (same list, same
bound); a retry takes the letter out of the list and publishes the job again
through Celery's producer, with its id. A publish that fails puts the letter back,
so a retry never loses a job.
"""

from __future__ import annotations

import logging

from kombu.exceptions import KombuError
from redis.exceptions import RedisError

from bridge.core.publish import send_detached
from bridge.errors import backend_unavailable
from bridge.redis.deadletters import DeadLetter, DeadLetters

__all__ = ["PublishedDeadLetters"]

logger = logging.getLogger("bridge.deadletters")


class PublishedDeadLetters(DeadLetters):
    """Dead letters in the guard store, retried by publishing to the app's broker."""

    def _requeue(self, key: str, raw: str, letter: DeadLetter) -> bool:
        client = self.backend.client
        if not client.lrem(key, 1, raw):
            return False  # another retry took it
        try:
            send_detached(self.app, letter.name, kwargs=letter.data, task_id=letter.id, queue=letter.queue)
        except (KombuError, OSError) as exc:
            try:
                client.lpush(key, raw)
            except RedisError:  # pragma: no cover - both stores down at once
                logger.error("bridge: dead letter %s could not be put back: %s", letter.id, raw)
            raise backend_unavailable("retrying a dead letter", exc, str(self.app.conf.broker_url)) from None
        return True
