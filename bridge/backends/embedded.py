"""Embedded backend: the Redis backend on the embedded Valkey server of ``BRIDGE_HOME``.

There is no second implementation: this only makes sure the server runs and
that the Celery app's broker is that server (``celeryconfig`` sets it so).
"""

from __future__ import annotations

from celery import Celery

from bridge.backends.redis import RedisBackend
from bridge.embedded import EmbeddedServer
from bridge.errors import ConfigError
from bridge.redact import redact
from bridge.settings import Settings

__all__ = ["EmbeddedBackend"]


class EmbeddedBackend(RedisBackend):
    """Queue backend on the embedded server, started on demand."""

    def __init__(self, app: Celery, settings: Settings) -> None:
        self.server = EmbeddedServer(settings.bridge_home)
        self.server.ensure_running()
        broker = str(app.conf.broker_write_url or app.conf.broker_url or "")
        if broker != self.server.broker_url:
            raise ConfigError(
                f"the embedded backend needs the Celery broker on its server, but broker_url="
                f"{redact(broker)!r}. Call app.config_from_object('celeryconfig') with no REDIS_URL "
                f"set, or set broker_url={self.server.broker_url!r}."
            )
        super().__init__(app, settings)

    @property
    def redis_url(self) -> str:
        return self.server.url
