"""This repository's sample Celery config, for its tests' apps: not installed by the wheel.

Celery's docs keep an app's settings in a ``celeryconfig`` module next to the app
(``app.config_from_object("celeryconfig")``). This one takes every setting from
the bridge's production settings, :mod:`bridge.celeryconfig`; an app of yours
would do the same, or load ``bridge.celeryconfig`` directly and override what it
needs with ``app.conf.update(...)``.
"""

from __future__ import annotations

from typing import Any

from bridge import celeryconfig as _production
from bridge.celeryconfig import build

__all__ = ["build"]


def __getattr__(name: str) -> Any:
    # Lazily, as the production module: reading a setting builds, probing never does.
    return getattr(_production, name)


def __dir__() -> list[str]:
    return dir(_production)
