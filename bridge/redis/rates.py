"""Jobs added, done and failed per minute, kept in Redis for the dashboard's chart of the last hour.

Each minute of the server's clock has one hash, ``bridge:rate:<minutes since the epoch>``, with
the fields ``added``, ``done`` and ``failed``; it expires after two hours (``RATE_TTL_MS``), so
the counters hold at most about 120 small hashes whatever the load.

Why the counting is ours and shaped like this: it must cost the hot paths next to nothing.

* ``added`` is counted by the add script itself (:mod:`bridge.redis.scripts`): one ``HINCRBY``
  per script call, inside the round trip the add makes anyway.
* ``done`` and ``failed`` are counted in the worker process that ran the job, from Celery's
  ``task_success`` and ``task_failure`` signals (a retry is neither): the handler only adds
  one to an integer. A thread of that process writes what it counted at most once a second, in
  one small script call that files it under the server's current minute; an idle worker
  writes nothing.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from celery import Celery, signals

from bridge.core.lua import NOW_MS
from bridge.redis.scripts import RATE_TTL_MS

if TYPE_CHECKING:
    import redis

    from bridge.redis.deadletters import LetterBackend

__all__ = ["FLUSH_INTERVAL_S", "RateCounter", "Rates", "read_rates"]

logger = logging.getLogger("bridge.rates")

#: How often a worker process writes what it counted (when it counted anything).
FLUSH_INTERVAL_S = 1.0

# ARGV: key prefix (``bridge:rate:``), done, failed.
_FLUSH = (
    NOW_MS
    + f"local RATE_TTL_MS = {RATE_TTL_MS}\n"
    + """
local key = ARGV[1] .. math.floor(now_ms() / 60000)
if tonumber(ARGV[2]) > 0 then redis.call('HINCRBY', key, 'done', ARGV[2]) end
if tonumber(ARGV[3]) > 0 then redis.call('HINCRBY', key, 'failed', ARGV[3]) end
redis.call('PEXPIRE', key, RATE_TTL_MS)
return 1
"""
)


class RateCounter:
    """Counts this app's jobs done and failed in the worker process, written to Redis once a second."""

    def __init__(self, app: Celery, backend: LetterBackend) -> None:
        self.app = app
        self.backend = backend
        self._done = 0
        self._failed = 0
        self._lock = threading.Lock()
        self._pid = -1  # the process whose flusher thread runs (prefork children start their own)

    def install(self) -> None:
        """Count the app's final outcomes in the processes that run its tasks."""
        signals.task_success.connect(self._on_success, weak=False)
        signals.task_failure.connect(self._on_failure, weak=False)
        signals.worker_process_shutdown.connect(self._on_shutdown, weak=False)
        signals.worker_shutdown.connect(self._on_shutdown, weak=False)

    def _ours(self, sender: Any) -> bool:
        # An eager call (task.apply in a producer or a test) ran no job of the queue.
        ours = sender is not None and getattr(sender, "app", None) is self.app
        return ours and not getattr(sender.request, "is_eager", False)

    def _on_success(self, sender: Any = None, **_: Any) -> None:
        if self._ours(sender):
            self._ensure_flusher()
            with self._lock:
                self._done += 1

    def _on_failure(self, sender: Any = None, **_: Any) -> None:
        if self._ours(sender):
            self._ensure_flusher()
            with self._lock:
                self._failed += 1

    def _on_shutdown(self, **_: Any) -> None:
        self.flush()

    def _ensure_flusher(self) -> None:
        if self._pid == os.getpid():
            return
        self._pid = os.getpid()
        # Counts inherited through a fork were the parent's to write.
        self._done = self._failed = 0
        self._lock = threading.Lock()
        threading.Thread(target=self._flush_forever, name="bridge-rates", daemon=True).start()

    def _flush_forever(self) -> None:
        stop = threading.Event()
        while not stop.wait(FLUSH_INTERVAL_S):
            self.flush()

    def flush(self) -> None:
        """Write what was counted since the last write (nothing when nothing was counted)."""
        with self._lock:
            done, failed = self._done, self._failed
            self._done = self._failed = 0
        if not done and not failed:
            return
        try:
            self.backend._script(_FLUSH, [], [self.backend.key("rate", ""), done, failed])
        except Exception as exc:  # a chart is not worth a worker's job: count again next time
            with self._lock:
                self._done += done
                self._failed += failed
            logger.debug("bridge: could not write the per-minute counts: %s", exc)


@dataclass(frozen=True)
class Rates:
    """One minute of the chart: its start (seconds since the epoch) and what happened in it."""

    minute: int
    added: int
    done: int
    failed: int


def read_rates(client: redis.Redis, prefix: str, minutes: int = 60) -> list[Rates]:
    """The last ``minutes`` minutes of the server's clock, oldest first (one round trip after TIME)."""
    seconds, _ = client.time()
    now = int(seconds) // 60
    span: Sequence[int] = range(now - minutes + 1, now + 1)
    with client.pipeline(transaction=False) as pipe:
        for minute in span:
            pipe.hmget(f"{prefix}rate:{minute}", "added", "done", "failed")
        rows = pipe.execute()
    return [
        Rates(minute * 60, *(int(value or 0) for value in row))
        for minute, row in zip(span, rows, strict=True)
    ]
