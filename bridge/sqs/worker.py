"""What the SQS backend adds to its app's workers, installed by ``SqsBackend.install_worker``.

* rejected messages are logged (SQS keeps its own dead letters: the queue's DLQ);
* the visibility heartbeat (``SQS_HEARTBEAT_SEC``) keeps held messages hidden;
* on FIFO queues, a task's ``retry()`` keeps its message group;
* a job cancelled by ``jobs.cancel`` (a tombstone) is discarded unrun.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from celery import Celery, signals

from bridge.settings import Settings
from bridge.sqs.heartbeat import install_heartbeat
from bridge.worker.rejected import install_rejected

__all__ = ["install_sqs_worker", "keep_fifo_group"]


def install_sqs_worker(app: Celery, settings: Settings, is_cancelled: Callable[[str], bool]) -> None:
    """Install the SQS pieces into ``app``'s workers; ``is_cancelled(job_id)`` reads tombstones."""
    install_rejected(app, None)

    def honour_tombstone(sender: Any = None, request: Any = None, **_: Any) -> None:
        # Runs in the worker when a message arrives, before the job starts: a job
        # cancelled by jobs.cancel is marked revoked, so Celery discards it unrun.
        if request is None or getattr(request, "app", app) is not app:
            return
        if is_cancelled(request.id):
            from celery.worker import state

            state.revoked.add(request.id)

    signals.task_received.connect(honour_tombstone, weak=False)
    if settings.sqs_heartbeat_sec:
        install_heartbeat(app, settings)
    if settings.sqs_fifo:
        signals.before_task_publish.connect(keep_fifo_group, weak=False)


def keep_fifo_group(
    headers: dict[str, Any] | None = None, properties: dict[str, Any] | None = None, **_: Any
) -> None:
    """``before_task_publish``: a task's retry keeps its FIFO message group.

    Celery's ``Task.retry()`` republishes without the SQS message group, so the retry
    would land in group "default" and lose its place in the order: keep the group,
    with a deduplication id of its own (SQS would drop a repeat of the old one).
    """
    from celery import current_task

    task = current_task
    if task is None or headers is None or properties is None or headers.get("id") != task.request.id:
        return  # not a task republishing itself
    original = task.request.properties or {}
    group = original.get("MessageGroupId")
    if group and "MessageGroupId" not in properties:
        seed = original.get("MessageDeduplicationId") or task.request.id
        properties["MessageGroupId"] = group
        properties["MessageDeduplicationId"] = hashlib.sha256(
            f"{seed}:retry:{headers.get('retries')}".encode()
        ).hexdigest()
