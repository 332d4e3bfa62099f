"""Which Bridge is bound to which Celery app (for beat and the CLI, which get only the app).

The registry knows a Bridge only by the few attributes the worker side reads
(:class:`BoundBridge`), so this room never imports the facade that registers in it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol
from weakref import WeakKeyDictionary

from celery import Celery

from bridge.errors import ConfigError

if TYPE_CHECKING:
    from bridge.core.backend import QueueBackend
    from bridge.settings import Settings

__all__ = ["BoundBridge", "bridge_of", "register"]


class BoundBridge(Protocol):
    """What the worker side needs of a Bridge (``bridge.Bridge`` has all of it)."""

    app: Celery
    settings: Settings
    backend: QueueBackend
    jobs_backend: QueueBackend
    jobs_queue: str


_BRIDGES: WeakKeyDictionary[Celery, BoundBridge] = WeakKeyDictionary()


def register(app: Celery, bridge: BoundBridge) -> None:
    _BRIDGES[app] = bridge


def bridge_of(app: Celery) -> BoundBridge:
    """The Bridge bound to ``app``.

    Raises:
        ConfigError: no ``Bridge(app)`` was created in the module Celery loaded.
    """
    try:
        return _BRIDGES[app]
    except KeyError:
        raise ConfigError(
            f"no Bridge is bound to the Celery app {app.main!r}: create bridge = Bridge(app) in the "
            "module that `celery -A` loads."
        ) from None
