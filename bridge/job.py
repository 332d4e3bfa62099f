"""What an add asks for and what it returns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Job", "JobRequest"]


@dataclass(frozen=True)
class JobRequest:
    """A validated add, ready for a backend."""

    name: str
    data: dict[str, Any]
    job_id: str
    idempotency_key: str | None = None
    delay_ms: int = 0
    queue: str | None = None
    priority: int | None = None
    #: SQS message group (FIFO order holds per group); None: SQS_MESSAGE_GROUP_ID.
    group_id: str | None = None
    #: How long the idempotency guard stands (ms); None: the configured dedupe TTL.
    guard_ttl_ms: int | None = None
    #: Keep what is needed to withdraw the message until a worker takes it (repeat runs).
    track: bool = False
    #: ``data`` as validated JSON, so it is not encoded twice.
    data_json: str | None = None


@dataclass(frozen=True)
class Job:
    """The outcome of an add.

    Attributes:
        id: the Celery task id; deterministic for an idempotency key, so
            ``app.AsyncResult(job.id)`` follows the job from any process.
        name: the task name.
        queue: the broker queue the job went to (for a duplicate: where the standing job went).
        deduplicated: True when an earlier add with the same key already stands and
            nothing was sent.
        due_ms: for a delayed job, the server time (epoch ms) at which it becomes due.
    """

    id: str
    name: str
    queue: str
    deduplicated: bool = False
    due_ms: int | None = None
