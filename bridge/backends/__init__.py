"""Backend registry: names resolve lazily to classes, so ``import bridge`` imports no client.

Modelled on kombu's ``TRANSPORT_ALIASES``: the only place that maps a backend
name to code.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

from bridge.errors import ConfigError

if TYPE_CHECKING:
    from bridge.backends.base import QueueBackend

__all__ = ["BACKENDS", "resolve_backend"]

BACKENDS: dict[str, str] = {
    "redis": "bridge.backends.redis:RedisBackend",
    "embedded": "bridge.backends.embedded:EmbeddedBackend",
    "sqs": "bridge.backends.sqs:SqsBackend",
}


def resolve_backend(name: str) -> type[QueueBackend]:
    """Return the backend class registered under ``name``.

    Raises:
        ConfigError: the name is unknown.
    """
    target = BACKENDS.get(name)
    if target is None:
        raise ConfigError(f"QUEUE_BACKEND={name!r} is not a backend; accepted: {', '.join(BACKENDS)}.")
    module, _, attr = target.partition(":")
    cls: type[QueueBackend] = getattr(import_module(module), attr)
    return cls
