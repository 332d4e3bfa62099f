"""Embedded backend: the Redis backend on the embedded Valkey server of ``BRIDGE_HOME``.

There is no second implementation: this only makes sure the server runs and
that the Celery app's broker is that server (``bridge.celeryconfig`` sets it so).

A server that dies while the app runs (``kill -9``, the OOM killer) is started
again from its append-only file by the next add or promoter pass that fails to
reach it: the promoter thread of every worker and beat notices within about a
second, and the caller of the failed add gets ``BackendUnavailable`` (retrying
with the same key is safe). kombu's own reconnect loop then finds the server.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

from celery import Celery

from bridge.core.redact import redact
from bridge.embedded.server import EmbeddedServer
from bridge.errors import BackendUnavailable, BridgeError, ConfigError
from bridge.job import Job, JobRequest
from bridge.redis.backend import RedisBackend
from bridge.redis.config import redis_settings
from bridge.settings import Settings

__all__ = ["EmbeddedBackend"]


class EmbeddedBackend(RedisBackend):
    """Queue backend on the embedded server, started on demand."""

    @classmethod
    def broker_settings(cls, settings: Settings) -> dict[str, Any]:
        return redis_settings(EmbeddedServer(settings.bridge_home).broker_url, settings)

    @classmethod
    def start_broker(cls, settings: Settings) -> None:
        EmbeddedServer(settings.bridge_home).ensure_running()

    def __init__(self, app: Celery, settings: Settings) -> None:
        self.server = EmbeddedServer(settings.bridge_home)
        broker = str(app.conf.broker_write_url or app.conf.broker_url or "")
        if broker != self.server.broker_url:  # checked first: a refused app starts no server
            raise ConfigError(
                f"the embedded backend needs the Celery broker on its server, but broker_url="
                f"{redact(broker)!r}. Call app.config_from_object('bridge.celeryconfig') with no REDIS_URL "
                f"set, or set broker_url={self.server.broker_url!r}."
            )
        self.server.ensure_running()
        super().__init__(app, settings)

    @property
    def redis_url(self) -> str:
        return self.server.url

    def enqueue(self, requests: Sequence[JobRequest]) -> list[Job]:
        try:
            return super().enqueue(requests)
        except BackendUnavailable:
            self._revive()
            raise

    def add_one(self, name: object, data: object, idempotency_key: object) -> Job | None:
        try:
            return super().add_one(name, data, idempotency_key)
        except BackendUnavailable:
            self._revive()
            raise

    def promote_due(self) -> float | None:
        try:
            return super().promote_due()
        except BackendUnavailable:
            self._revive()
            raise

    def _revive(self) -> None:
        """After a failed call: start the server again if it died (a no-op when it answers)."""
        with contextlib.suppress(BridgeError, OSError):
            self.server.ensure_running()
