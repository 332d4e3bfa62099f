"""The message builder's own kombu channel: a publish on it becomes Redis commands, not writes.

The dedupe claim and the enqueue are one Lua script, so the commands kombu's redis
transport would run for a publish (``LPUSH`` of the message, ``PEXPIRE`` of an
expiring queue, ``PUBLISH`` for a fanout exchange) must be collected, not run. A
subclass of the connection's own channel class (redis, or Sentinel) does it for
the builder's channel only: while a capture is on, kombu's ``_put`` gets a
recording client from ``conn_or_acquire``, and ``basic_publish`` ends by raising
:class:`Captured` with what was recorded, so nothing after the publish (Celery's
``after_task_publish``, a parent's trail) runs for a message not yet sent. It relies
on ``conn_or_acquire``, which every kombu redis release from 5.3 to 5.7 routes its
publish writes through; every other channel of the app is kombu's own, untouched.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from typing import Any

__all__ = ["Captured", "capturing_channel"]

# Commands kombu's redis transport emits for a publish; the Lua scripts accept no others.
PUBLISH_COMMANDS = frozenset({"lpush", "pexpire", "publish"})


class Captured(Exception):
    """Raised out of ``basic_publish`` once the final Redis commands are known."""

    def __init__(self, message: dict[str, Any], commands: list[tuple[str, Any, Any]]) -> None:
        super().__init__("captured")
        self.message = message
        self.commands = commands


class _Recorder:
    """Stands in for the redis-py client, or one of its pipelines, inside kombu's publish.

    The publish's writes are recorded; anything else (a queue declaration's ``LLEN``
    or ``SADD``) reaches the real client or pipeline, as it would without the capture.
    """

    def __init__(self, commands: list[tuple[str, Any, Any]], real: Any, pipeline: bool = False) -> None:
        self.commands = commands
        self.real = real
        self.is_pipeline = pipeline

    def __getattr__(self, name: str) -> Any:
        if name in PUBLISH_COMMANDS:
            return functools.partial(self._record, name)
        attribute = getattr(self.real, name)
        if not self.is_pipeline or not callable(attribute) or name in ("execute", "reset"):
            return attribute

        def queued(*args: Any, **kwargs: Any) -> _Recorder:  # a pipeline's commands chain
            attribute(*args, **kwargs)
            return self

        return queued

    def _record(self, name: str, key: Any, value: Any) -> Any:
        self.commands.append((name, key, value))
        return self if self.is_pipeline else 1

    def pipeline(self, *args: Any, **kwargs: Any) -> _Recorder:
        return _Recorder(self.commands, self.real.pipeline(*args, **kwargs), pipeline=True)

    def __enter__(self) -> _Recorder:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.is_pipeline:
            self.real.__exit__(*exc)  # resets the real pipeline


@functools.cache
def _capturing_class(base: type) -> type:
    class CapturingChannel(base):  # type: ignore[misc]  # kombu's channel classes are untyped
        """kombu's channel, but a publish during :meth:`capture` is recorded instead of sent."""

        _recording: list[tuple[str, Any, Any]] | None = None

        @contextlib.contextmanager
        def conn_or_acquire(self, client: Any = None) -> Iterator[Any]:
            with super().conn_or_acquire(client) as real:
                recording = self._recording
                yield real if recording is None or client is not None else _Recorder(recording, real)

        def basic_publish(
            self, message: Any, exchange: str = "", routing_key: str = "", **kwargs: Any
        ) -> Any:
            if self._recording is None:
                return super().basic_publish(message, exchange, routing_key, **kwargs)
            super().basic_publish(message, exchange, routing_key, **kwargs)
            raise Captured(message, list(self._recording))

        @contextlib.contextmanager
        def capture(self) -> Iterator[None]:
            """Record the publishes made inside the block (raising :class:`Captured` from each)."""
            self._recording = []
            try:
                yield
            finally:
                self._recording = None

    CapturingChannel.__qualname__ = CapturingChannel.__name__ = f"Capturing{base.__name__}"
    return CapturingChannel


def capturing_channel(connection: Any) -> Any:
    """A new channel of ``connection``'s own redis channel class that can capture publishes."""
    return _capturing_class(connection.transport.Channel)(connection.connection)
