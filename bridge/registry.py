"""Which Bridge is bound to which Celery app (for beat and the CLI, which get only the app)."""

from __future__ import annotations

from typing import TYPE_CHECKING
from weakref import WeakKeyDictionary

from celery import Celery

from bridge.errors import ConfigError

if TYPE_CHECKING:
    from bridge.bridge import Bridge

__all__ = ["bridge_of", "register"]

_BRIDGES: WeakKeyDictionary[Celery, Bridge] = WeakKeyDictionary()


def register(app: Celery, bridge: Bridge) -> None:
    _BRIDGES[app] = bridge


def bridge_of(app: Celery) -> Bridge:
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
