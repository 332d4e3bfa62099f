"""The promoter: moves delayed jobs onto their queues when they fall due.

It runs as a daemon thread inside every ``celery worker`` (a bootstep) and
``celery beat`` (on ``beat_init``). Each pass is one atomic script on the
server, so any number of promoters can run at once and a job moves exactly
once; a promoter killed mid-pass loses nothing, since the job stays in Redis
until the script has moved it.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from celery import Celery, bootsteps, signals

from bridge.core.backend import QueueBackend
from bridge.errors import BridgeError
from bridge.worker.forkguard import ForkGuard

__all__ = ["Promoter", "install_promoter"]

logger = logging.getLogger("bridge.promoter")

# Back-off after a failed pass (server down): keep trying, do not spin.
_RETRY_AFTER_S = 1.0


class Promoter:
    """A daemon thread that calls ``backend.promote_due()`` every ``interval_s`` or sooner."""

    def __init__(self, backend: QueueBackend, interval_s: float) -> None:
        self.backend = backend
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._guard = ForkGuard("the bridge promoter")  # the pool forks children beside this thread

    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="bridge-promoter", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        failing = False
        while not self._stop.is_set():
            try:
                with self._guard:
                    next_due = self.backend.promote_due()
            except BridgeError as exc:
                if not failing:
                    logger.warning("bridge promoter: %s (retrying every %.0f s)", exc, _RETRY_AFTER_S)
                failing = True
                self._stop.wait(_RETRY_AFTER_S)
                continue
            if failing:
                logger.info("bridge promoter: backend reachable again")
                failing = False
            wait = self.interval_s if next_due is None else min(self.interval_s, next_due)
            if wait > 0:
                self._stop.wait(wait)


def install_promoter(app: Celery, backend: QueueBackend, interval_s: float) -> None:
    """Run a promoter in every worker and beat of ``app``."""

    class BridgePromoter(bootsteps.StartStopStep):  # type: ignore[misc]  # celery is untyped
        """Worker bootstep: the promoter lives as long as the worker's main process."""

        label = "bridge promoter"
        # After the pool has forked its first children: a child forked while this
        # thread connects or imports could inherit a lock it holds and hang.
        requires = ("celery.worker.components:Pool",)

        def __init__(self, parent: Any, **kwargs: Any) -> None:
            super().__init__(parent, **kwargs)
            self.promoter = Promoter(backend, interval_s)

        def start(self, parent: Any) -> None:
            self.promoter.start()

        def stop(self, parent: Any) -> None:
            self.promoter.stop()

        shutdown = stop

    app.steps["worker"].add(BridgePromoter)

    def on_beat_init(sender: Any = None, **_: Any) -> None:
        if getattr(sender, "app", None) is app:
            Promoter(backend, interval_s).start()

    signals.beat_init.connect(on_beat_init, weak=False)
