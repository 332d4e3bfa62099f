"""Keep a background thread's work and ``fork()`` apart.

Celery's prefork pool forks its children from the worker's main process, where
the bridge runs threads (the promoter, the SQS heartbeat). A fork copies every
lock as it is at that instant: if the thread is mid-pass, importing a module or
inside a client library, the child inherits locks held by a thread that does not
exist there, and the child's first job can hang forever on one of them.

A ``ForkGuard`` is held around each pass of the thread, and across every fork of
the process, so a fork happens only between passes.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections.abc import Callable
from types import TracebackType

__all__ = ["ForkGuard"]

logger = logging.getLogger("bridge")

# How long a fork waits for a pass to finish. A pass stuck on an unreachable
# server must not stop the pool from replacing a dead child.
_FORK_WAIT_S = 5.0


class ForkGuard:
    """A lock for a thread's passes that ``os.fork()`` takes too (in the forking thread)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._lock = threading.Lock()
        self._held_for_fork = False
        # Handlers cannot be unregistered: they hold the guard weakly and do nothing once it is gone.
        ref = weakref.ref(self)

        def call(method: str) -> Callable[[], None]:
            def handler() -> None:
                guard = ref()
                if guard is not None:
                    getattr(guard, method)()

            return handler

        os.register_at_fork(
            before=call("_before_fork"), after_in_parent=call("_after_fork"), after_in_child=call("_in_child")
        )

    def __enter__(self) -> ForkGuard:
        self._lock.acquire()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._lock.release()

    def _before_fork(self) -> None:
        self._held_for_fork = self._lock.acquire(timeout=_FORK_WAIT_S)
        if not self._held_for_fork:
            logger.warning(
                "bridge: forking while %s is mid-pass (it took over %.0f s)", self.name, _FORK_WAIT_S
            )

    def _after_fork(self) -> None:
        if self._held_for_fork:
            self._held_for_fork = False
            self._lock.release()

    def _in_child(self) -> None:
        self._lock = threading.Lock()  # the child has no pass in progress
        self._held_for_fork = False
