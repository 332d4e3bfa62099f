"""What a Redis (or embedded) backend adds to its app's workers, installed by ``RedisBackend.install_worker``.

* dead letters: a job that failed for good is recorded by the worker that ran it;
* the per-minute counts of jobs done and failed (:mod:`bridge.redis.rates`), for the dashboard;
* the bridge's kombu transport (:mod:`bridge.redis.transport`): the reliable fetch,
  list items that are not kombu messages rejected rather than fatal, and a worker
  that survives Redis going away while it holds jobs.
"""

from __future__ import annotations

from celery import Celery

from bridge.redis.deadletters import RedisDeadLetters
from bridge.redis.rates import RateCounter
from bridge.redis.transport import install_transport, use_rejects
from bridge.worker.rejected import install_rejected

__all__ = ["install_redis_worker"]


def install_redis_worker(app: Celery, letters: RedisDeadLetters) -> None:
    """Install the Redis pieces into ``app``'s workers (bootsteps and signals: producers are untouched)."""
    letters.install()
    RateCounter(app, letters.backend).install()
    install_rejected(app, letters, on_consumer=use_rejects)
    install_transport(app)
