"""Everything ``Bridge(app)`` adds to the app's ``celery worker`` and ``celery beat`` processes.

The one place that installs the worker side, so a reader sees all of it at once:

* a promoter of delayed jobs in every worker and beat (a bootstep, ``beat_init``);
* the beat scheduler that fires repeats (:mod:`bridge.worker.beat`);
* the backend's own pieces (``QueueBackend.install_worker``: on Redis the
  reliable fetch and dead letters, on SQS the visibility heartbeat, ...);
* a prefork pool that keeps the jobs it handed to its processes when the consumer
  closes (:mod:`bridge.worker.poolflush`), whatever the broker: at a warm shutdown they
  are acked, not put back to run again, and the shutdown does not wait 30 s for them;
* ``JOBS_QUEUE_NAME`` in the queues of workers that consume the default queue;
* with ``JOBS_DEDUPE_UNTIL=finish``, a ``task_postrun`` handler that frees a
  finished job's key.

Everything here is a bootstep or a signal handler: a producer that only adds
jobs runs none of it.
"""

from __future__ import annotations

from typing import Any

from celery import signals, states

from bridge.core.registry import BoundBridge
from bridge.worker.beat import configure_beat
from bridge.worker.poolflush import install_pool_flush
from bridge.worker.promoter import install_promoter

__all__ = ["install"]


def install(bridge: BoundBridge) -> None:
    """Install the worker and beat side of ``bridge`` into its app (once, when it binds)."""
    app, settings = bridge.app, bridge.settings
    interval_s = settings.promote_interval_ms / 1000.0
    for backend in {id(b): b for b in (bridge.backend, bridge.jobs_backend)}.values():
        install_promoter(app, backend, interval_s)
    configure_beat(app, bridge.jobs_backend)
    # The app's own broker is QUEUE_BACKEND's: its workers consume that backend's queues.
    bridge.backend.install_worker()
    install_pool_flush(app)

    def consume_jobs_queue(sender: Any = None, instance: Any = None, **_: Any) -> None:
        # Only a general worker (one that consumes the default queue) takes scheduled
        # jobs too; a worker started with -Q for other queues is left as configured.
        ours = getattr(instance, "app", None) is app
        if not ours or bridge.jobs_backend is not bridge.backend or bridge.backend.predefined_queues_only:
            return  # scheduled jobs travel on another broker, or the broker has no such queue
        queues: Any = app.amqp.queues
        if app.conf.task_default_queue in queues.consume_from:
            queues.select_add(bridge.jobs_queue)

    signals.celeryd_after_setup.connect(consume_jobs_queue, weak=False)
    if settings.dedupe_until == "finish":

        def release_on_finish(
            sender: Any = None, task_id: str | None = None, state: str | None = None, **_: Any
        ) -> None:
            # A retry is not the end of the job: its key must keep deduping until it is done.
            if task_id and getattr(sender, "app", None) is app and state in states.READY_STATES:
                bridge.backend.release_guard(task_id)

        signals.task_postrun.connect(release_on_finish, weak=False)
