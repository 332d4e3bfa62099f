"""The guard store of a backend whose broker cannot dedupe by itself (SQS, RabbitMQ, ...).

``GUARD_STORE``: ``redis`` (``REDIS_URL``), ``embedded`` (the embedded server of
``BRIDGE_HOME``, one machine only: the bridge warns once), or for SQS ``dynamodb``
(:mod:`bridge.dynamodb.guard`). It holds the dedupe guards, and everything else
such a broker cannot keep: delayed jobs, tombstones, repeats.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

import redis
from redis.exceptions import RedisError

from bridge.core.backend import QueueBackend
from bridge.core.connect import redis_client
from bridge.errors import backend_unavailable
from bridge.settings import Settings

if TYPE_CHECKING:
    from bridge.dynamodb.guard import DynamoGuardStore

__all__ = ["GuardStore", "GuardedBackend", "guard_store_for"]

logger = logging.getLogger("bridge")


class GuardStore:
    """A redis-py client on the guard store, connected on first use."""

    def __init__(self, settings: Settings, broker: str) -> None:
        self.settings = settings
        self.broker = broker  # named in the warning: "SQS", "the broker"
        self._client: redis.Redis | None = None
        self._client_lock = threading.Lock()  # producer threads racing for the first add make one client
        self._url = ""

    @property
    def client(self) -> redis.Redis:
        if self._client is None:
            with self._client_lock:
                if self._client is None:
                    self._client = self._connect()
        return self._client

    def _connect(self) -> redis.Redis:
        from bridge.embedded.server import shared_store_url

        redis_url = self.settings.redis_url if self.settings.guard_store == "redis" else None
        if not redis_url:
            logger.warning(
                "bridge: no REDIS_URL, so %s dedupe guards, repeats and locks live in the embedded "
                "server of this machine only; set REDIS_URL (or, on SQS, GUARD_STORE=dynamodb) to "
                "share them between machines",
                self.broker,
            )
        self._url = shared_store_url(redis_url, self.settings.bridge_home)
        return redis_client(self._url, sentinel_master=self.settings.redis_sentinel_master)

    @property
    def url(self) -> str:
        self.client  # noqa: B018 - resolves the URL
        return self._url

    def now_ms(self) -> int:
        """The store's clock: one clock for producers and workers on any host."""
        seconds, micros = self.client.time()
        return int(seconds) * 1000 + int(micros) // 1000

    def claim(self, job_id: str, queue: str, ttl_ms: int) -> str | None:
        """Claim a job's key; None when claimed, else the queue of the job that stands."""
        if self.client.set(f"bridge:guard:{job_id}", queue, nx=True, px=ttl_ms):
            return None
        standing = self.client.get(f"bridge:guard:{job_id}")
        return standing.decode() if isinstance(standing, bytes) else str(standing or queue)

    def release(self, job_id: str) -> None:
        self.client.delete(f"bridge:guard:{job_id}")

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def guard_store_for(settings: Settings, broker: str) -> GuardStore | DynamoGuardStore:
    """The guard store ``GUARD_STORE`` names (Settings allow ``dynamodb`` for SQS only)."""
    if settings.guard_store == "dynamodb":
        from bridge.dynamodb.guard import DynamoGuardStore

        return DynamoGuardStore(settings)
    return GuardStore(settings, broker)


class GuardedBackend(QueueBackend):
    """A backend whose guards live in a :class:`GuardStore` (``self.store``)."""

    store: GuardStore | DynamoGuardStore

    @property
    def client(self) -> Any:
        """The guard store's client: redis-py's, or :class:`~bridge.dynamodb.store.DynamoStore`
        (the same calls for the records the SQS path keeps)."""
        return self.store.client

    @property
    def redis_url(self) -> str | None:
        """The guard store's URL (repeats are kept there too)."""
        return self.store.url

    def release_guard(self, job_id: str) -> None:
        try:
            self.store.release(job_id)
        except RedisError as exc:
            raise backend_unavailable("releasing an idempotency guard", exc, self.store.url) from None

    def close(self) -> None:
        self.store.close()
