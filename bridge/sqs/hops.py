"""Delays over SQS's 15 minutes, carried by re-delaying hops.

SQS delays a message at most 900 s (``DelaySeconds``), and kombu silently clamps
anything longer. A longer delay is sent as a *hop*: a small ``bridge.sqs_hop``
task, delayed 900 s, that carries the job and its due time. The worker that
receives a hop either sends the next hop (still more than 900 s to go) or the
job itself with the remaining delay, then acknowledges the hop.

* The due time is read from the guard store's clock (Redis ``TIME``), the same
  one for the producer and every worker, so hops do not drift with host clocks
  (with DynamoDB, which has no clock, the hosts' own, kept in sync on AWS).
* Each forward is claimed in the guard store (``SET NX``, or DynamoDB's
  conditional put) before it is sent, so a
  hop delivered twice (SQS is at-least-once, or a worker died before its ack)
  forwards once; a failed send frees the claim and puts the hop back.
* A job cancelled by ``jobs.cancel`` stops at its next hop, at most 900 s later;
  its tombstone outlives that.
"""

from __future__ import annotations

import logging
import math
import uuid
from typing import TYPE_CHECKING, Any, Protocol

from celery import Celery
from celery.exceptions import Reject
from redis.exceptions import RedisError

from bridge.core.publish import send_detached
from bridge.errors import BackendUnavailable

if TYPE_CHECKING:
    from bridge.job import JobRequest

__all__ = ["HOP_TASK", "MAX_DELAY_MS", "first_hop", "register_hop_task"]

logger = logging.getLogger("bridge.sqs")

HOP_TASK = "bridge.sqs_hop"
MAX_DELAY_MS = 900_000  # SQS's DelaySeconds limit: 15 minutes
_HOP_NAMESPACE = uuid.UUID("0f3c5a52-7d0e-4f57-9a1b-6a0b7c1e2d41")


class HopBackend(Protocol):
    """What a hop uses of the SQS backend that registers it (so this module needn't import it)."""

    app: Celery

    @property
    def client(self) -> Any: ...  # redis-py's, or the DynamoDB store's (the same calls)

    def now_ms(self) -> int: ...

    def is_cancelled(self, job_id: str) -> bool: ...


def hop_id(job_id: str, hop: int) -> str:
    """The task id of a job's n-th hop: deterministic, so a repeated forward is recognisable."""
    return str(uuid.uuid5(_HOP_NAMESPACE, f"{job_id}:{hop}"))


def first_hop(request: JobRequest, queue: str, now_ms: int) -> dict[str, Any]:
    """The kwargs of the hop that carries ``request`` until it is due."""
    return {
        "job_id": request.job_id,
        "name": request.name,
        "data": request.data,
        "queue": queue,
        "priority": request.priority,
        "due_ms": now_ms + request.delay_ms,
        "hop": 0,
    }


def register_hop_task(app: Celery, backend: HopBackend) -> None:
    """Register ``bridge.sqs_hop`` on the app whose workers consume the SQS queue."""
    if HOP_TASK in app.tasks:
        return

    @app.task(name=HOP_TASK, bind=True, ignore_result=True, acks_late=True, bridge_dead_letter=False)  # type: ignore[untyped-decorator]
    def sqs_hop(self: Any, job_id: str, name: str, data: Any, queue: str, priority: int | None,
                due_ms: int, hop: int) -> str:  # fmt: skip
        if backend.is_cancelled(job_id):
            logger.info("bridge: %r was cancelled; its delay hop %d ends here", job_id, hop)
            return "cancelled"
        claim = f"bridge:hop:{job_id}:{hop}"
        try:
            remaining = due_ms - backend.now_ms()
            claimed = bool(backend.client.set(claim, self.request.id, nx=True, px=2 * MAX_DELAY_MS))
        except (RedisError, BackendUnavailable) as exc:
            raise Reject(f"guard store unavailable: {exc}", requeue=True) from None
        if not claimed:
            return "forwarded before"  # a repeated delivery of a hop that already went on
        try:
            if remaining > MAX_DELAY_MS:
                forward = {"job_id": job_id, "name": name, "data": data, "queue": queue,
                           "priority": priority, "due_ms": due_ms, "hop": hop + 1}  # fmt: skip
                send_detached(backend.app, HOP_TASK, kwargs=forward, task_id=hop_id(job_id, hop + 1),
                                      queue=queue, DelaySeconds=MAX_DELAY_MS // 1000)  # fmt: skip
                return "hopped"
            delay = {"DelaySeconds": math.ceil(remaining / 1000)} if remaining > 0 else {}
            send_detached(
                backend.app, name, kwargs=data, task_id=job_id, queue=queue, priority=priority, **delay
            )
            return "sent"
        except Exception:
            backend.client.delete(claim)  # the forward did not happen: the redelivered hop retries it
            raise Reject("sending the next hop failed", requeue=True) from None
