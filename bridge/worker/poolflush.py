"""A worker's prefork pool keeps the jobs it already handed to a process when its consumer closes.

When a worker's consumer closes (a warm shutdown, or a broker connection lost), Celery
flushes its prefork pool (``AsynPool.flush``, called by ``Consumer.on_close``). The flush
takes off the pool's books every job no pool process has yet said it started (whose ACK
the worker has not read), "since they will be redelivered by the broker". That holds for
a job still waiting to be written to a process, and not for one already written: the
process reads it and runs it all the same. Off the books, the job's result finds no job
to complete when the worker reads it, and at a shutdown the worker stops reading its
processes' messages as soon as its books are empty (``ResultHandler.on_stop_not_started``), so:

* the job's result is never read and its message never acked, and the channel's close
  puts the message back on its queue: a job that succeeded runs again (with
  ``task_acks_late``; without, a job that started runs again the same way);
* the process, before it exits, waits up to 30 s for the worker to read its last result
  (billiard's ``_ensure_messages_consumed``: 300 tries, 0.1 s apart): the warm shutdown
  takes 30 s more.

A SIGTERM while quick jobs flow met that about one time in two with four pool processes,
one in five with two, with Celery and kombu alone as with the bridge, on Redis and on
RabbitMQ alike (the tests: ``test_faults.py`` and ``broker/test_backend.py``,
``test_sigterm_while_jobs_flow_finishes_promptly_and_reruns_no_finished_job``), so it is
installed in the workers of every backend (:mod:`bridge.worker.install`).
The bridge puts such a job back on the books once the flush is done, so the worker reads
its ACK and result as for any other, and acks it. Only the flush of the bridged worker's
own pool is wrapped (an attribute of that pool object, which Celery itself sets to the
pool's method when the pool starts); no Celery or billiard class is changed.
"""

from __future__ import annotations

import inspect
import logging
from typing import Any

from celery import Celery, bootsteps

__all__ = ["install_pool_flush", "keep_handed_jobs"]

logger = logging.getLogger("bridge.pool_flush")


def install_pool_flush(app: Celery) -> None:
    """Make the flush of each ``app`` worker's prefork pool keep the jobs its processes hold."""

    class BridgePoolFlush(bootsteps.StartStopStep):  # type: ignore[misc]  # celery is untyped
        """Consumer bootstep: the worker starts its pool before its consumer, so the pool's flush is set."""

        label = "bridge pool flush"

        def start(self, parent: Any) -> None:
            keep_handed_jobs(parent.pool)

    app.steps["consumer"].add(BridgePoolFlush)


def keep_handed_jobs(task_pool: Any) -> None:
    """Wrap ``task_pool.flush`` (Celery's prefork ``TaskPool``) once; other pools have no such flush."""
    pool: Any = getattr(task_pool, "_pool", None)
    flush = getattr(task_pool, "flush", None)
    if flush is None or not isinstance(getattr(pool, "_cache", None), dict):
        return
    if task_pool.__dict__.get("_bridge_keeps_handed_jobs"):
        return  # a consumer restarted after a lost connection: wrapped already

    def flush_keeping_handed_jobs() -> None:
        handed = {job_id: job for job_id, job in pool._cache.items() if _handed(job)}
        try:
            flush()
        finally:
            kept = [job_id for job_id, job in handed.items() if _written(job) and job._write_to._is_alive()]
            for job_id in kept:
                pool._cache.setdefault(job_id, handed[job_id])
            if kept:
                logger.debug("bridge: %d job(s) handed to pool processes stay on the pool's books", len(kept))

    task_pool.flush = flush_keeping_handed_jobs
    task_pool._bridge_keeps_handed_jobs = True


def _handed(job: Any) -> bool:
    """A job the pool began writing to a process (``_write_job`` sets ``_write_to`` first) and whose
    ACK it has not read."""
    return not job._accepted and job._write_to is not None


def _written(job: Any) -> bool:
    """Whether the whole job reached its process: its writer ran to its end.

    A flush while the pool still runs finishes the writes it finds begun; one at a
    shutdown (the pool closed) abandons them, and that process never gets the job whole.
    """
    ref = getattr(job, "_writer", None)
    writer = ref() if ref is not None else None
    return writer is None or inspect.getgeneratorstate(writer) == inspect.GEN_CLOSED
