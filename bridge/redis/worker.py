"""What a Redis (or embedded) backend adds to its app's workers, installed by ``RedisBackend.install_worker``.

* dead letters: a job that failed for good is recorded by the worker that ran it;
* rejected messages: a list item that is not a kombu message is rejected, not fatal;
* the reconnect guard: a worker survives Redis going away while it holds jobs;
* the reliable fetch: a job is taken and recorded as unacked in one step.
"""

from __future__ import annotations

from celery import Celery

from bridge.redis.deadletters import DeadLetters
from bridge.redis.fetch import install_reliable_fetch
from bridge.redis.reconnect import install_reconnect_guard
from bridge.redis.rejected import tolerate_bad_items
from bridge.worker.rejected import install_rejected

__all__ = ["install_redis_worker"]


def install_redis_worker(app: Celery, letters: DeadLetters) -> None:
    """Install the Redis pieces into ``app``'s workers (bootsteps and signals: producers are untouched)."""
    letters.install()
    install_rejected(app, letters, on_consumer=tolerate_bad_items)
    install_reconnect_guard(app)
    install_reliable_fetch(app)
