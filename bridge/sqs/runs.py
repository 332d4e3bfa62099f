"""Runs of EventBridge repeats: a ``bridge.sqs_run`` message in, the job enqueued once.

EventBridge Scheduler sends a repeat's input to the queue at every scheduled
time, at least once. That input is a ``bridge.sqs_run`` task whose id is
``<repeat id>@<scheduled time>`` (:mod:`bridge.sqs.eventbridge`). The worker that
receives it enqueues the repeat's job exactly as ``celery beat`` would enqueue a
run: through the backend's add, keyed by that run, so the guard store's dedupe
claim lets one message per run through. A second message for the same run (or a
redelivery) finds the claim standing and sends nothing; a failed send frees the
claim and puts the run message back.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from celery import Celery
from celery.exceptions import Reject

from bridge.core.ids import job_id_for
from bridge.errors import BackendUnavailable
from bridge.job import Job, JobRequest

__all__ = ["RUN_TASK", "register_run_task"]

logger = logging.getLogger("bridge.sqs")

RUN_TASK = "bridge.sqs_run"


class RunBackend(Protocol):
    """What a run uses of the SQS backend that registers it."""

    def enqueue(self, requests: list[JobRequest]) -> list[Job]: ...


def register_run_task(app: Celery, backend: RunBackend) -> None:
    """Register ``bridge.sqs_run`` on the app whose workers consume the SQS queue."""
    if RUN_TASK in app.tasks:
        return

    @app.task(name=RUN_TASK, bind=True, ignore_result=True, acks_late=True, bridge_dead_letter=False)  # type: ignore[untyped-decorator]
    def sqs_run(self: Any, repeat: str, name: str, data: dict[str, Any], queue: str) -> str:
        run_key = str(self.request.id)  # "<repeat id>@<scheduled time>", filled in by EventBridge
        request = JobRequest(
            name=name, data=data, job_id=job_id_for(name, run_key), idempotency_key=run_key, queue=queue
        )
        try:
            job = backend.enqueue([request])[0]
        except BackendUnavailable as exc:
            raise Reject(f"enqueueing run {run_key!r} failed: {exc}", requeue=True) from None
        if job.deduplicated:
            logger.info("bridge: run %r of repeat %r was enqueued before", run_key, repeat)
            return "enqueued before"
        return "enqueued"
