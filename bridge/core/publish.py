"""Publishing a job through Celery's own producer when the caller keeps no ``AsyncResult``."""

from __future__ import annotations

from typing import Any

__all__ = ["routed_queue", "send_detached"]


def send_detached(app: Any, name: str, **options: Any) -> None:
    """``app.send_task(name, **options)``, then let go of Celery's watch on the job's result.

    With a Redis result backend, ``send_task`` subscribes the producer to the job's
    result channel and leaves the unsubscribe to ``AsyncResult.__del__``, wherever the
    garbage collector happens to run it: on Celery 5.3 with redis-py 5 that can be
    inside another thread's redis-py pool lock, and producers adding from several
    threads deadlocked. The bridge returns a ``Job``, not the ``AsyncResult``, so it
    unsubscribes here, in the caller's thread; ``app.AsyncResult(job.id)`` still works.
    """
    result = app.send_task(name, **options)
    backend, result.backend = result.backend, None  # __del__ has nothing left to do
    if backend is not None:
        backend.remove_pending_result(result)


def routed_queue(app: Any, name: str, data: dict[str, Any]) -> str:
    """The queue ``app.send_task(name, kwargs=data)`` sends to when no queue is given: the task's own
    ``queue`` option (``@app.task(queue=...)``), else the one the app's ``task_routes`` names for it,
    else ``task_default_queue``; Celery's own router decides, as in ``send_task``."""
    # As send_task: a task registered on the app counts, and looking does not finalize it.
    task = app.tasks.get(name) if app.finalized else None
    options = {key: getattr(task, key, None) for key in ("queue", "exchange", "routing_key")}
    options = {key: value for key, value in options.items() if value is not None}
    routed = app.amqp.router.route(options, name, (), data, task)
    queue = routed.get("queue")
    return str(getattr(queue, "name", queue) or app.conf.task_default_queue)
