"""Keep a worker alive when Redis goes away while it holds unacknowledged jobs.

When the broker connection breaks, Celery's consumer collects and closes it;
closing detaches kombu's Redis transport from its settings. Every later use of
one of that connection's channels then fails with ``AttributeError`` instead of
a connection error: the close itself (it tries to put unacked messages back),
and the ack of each job that finishes after the break. Celery treats any error
that is not a connection error as fatal ("Unrecoverable error") and the worker
exits: in tests, every worker that held a job when Redis restarted died.

The bridge makes such a channel raise redis-py's ``ConnectionError`` instead,
which Celery and kombu already handle: the ack is logged as failed and the
consumer reconnects. Nothing is lost: each delivered message stays in Redis's
``unacked`` hash until acked, and workers hand it out again once the visibility
timeout has passed (a job whose ack was lost runs again: at least once).
"""

from __future__ import annotations

from typing import Any

from celery import Celery, bootsteps

__all__ = ["install_reconnect_guard"]


def _closed_channels_raise_connection_errors() -> None:
    """Patch kombu's Redis channel (once per process): why the class, see the module docstring."""
    from kombu.transport import redis as kombu_redis
    from redis.exceptions import ConnectionError as RedisConnectionError

    channel_cls: Any = kombu_redis.Channel
    if getattr(channel_cls, "_bridge_reconnect_guard", False):
        return
    connparams = channel_cls._connparams

    def _connparams(self: Any, asynchronous: bool = False) -> Any:
        if self.connection.client is None:  # the transport was detached when its connection closed
            raise RedisConnectionError("this channel's broker connection was closed")
        return connparams(self, asynchronous=asynchronous)

    channel_cls._connparams = _connparams
    channel_cls._bridge_reconnect_guard = True


def install_reconnect_guard(app: Celery) -> None:
    """Apply the guard in every worker of ``app`` (a consumer bootstep; producers are untouched)."""

    class BridgeReconnectGuard(bootsteps.Step):  # type: ignore[misc]  # celery is untyped
        """Consumer bootstep: patches before the consumer's first connection."""

        label = "bridge reconnect guard"

        def __init__(self, parent: Any, **kwargs: Any) -> None:
            super().__init__(parent, **kwargs)
            _closed_channels_raise_connection_errors()

    app.steps["consumer"].add(BridgeReconnectGuard)
