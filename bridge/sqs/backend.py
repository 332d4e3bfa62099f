"""SQS backend: jobs go to an SQS queue through Celery's own producer (kombu's SQS transport).

SQS has no script that could claim a key and send in one step, so the dedupe
guard lives in the guard store (``GUARD_STORE``: ``REDIS_URL``'s Redis, DynamoDB,
or the embedded server, which is per machine): the add claims the key (``SET NX``,
or a conditional put), sends, and undoes the claim if the send fails. Nothing is
left claimed without a job.

FIFO queues get ``MessageGroupId`` from ``group_id=`` or ``SQS_MESSAGE_GROUP_ID``
and ``MessageDeduplicationId`` from the idempotency key (hashed to fit SQS's 128
characters). Delays up to 900 s use native ``DelaySeconds``; longer ones are
carried by re-delaying hops (:mod:`bridge.sqs.hops`), or refused with
``DelayTooLong`` when ``SQS_DELAY_HOPS=false``: never clamped, as kombu would.

Cancel: SQS cannot delete a message it has accepted, so ``jobs.cancel`` writes a
tombstone in the guard store; workers check it when a message arrives and
discard the job as revoked (Celery's own mechanism), without running it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from celery import Celery
from kombu.exceptions import KombuError
from redis.exceptions import RedisError

from bridge.broker.guard import GuardedBackend, guard_store_for
from bridge.core.publish import routed_queue, send_detached
from bridge.core.redact import redact
from bridge.errors import (
    BackendUnavailable,
    BridgeError,
    ConfigError,
    DelayTooLong,
    InvalidJob,
    InvalidPayload,
    backend_unavailable,
)
from bridge.job import Job, JobRequest
from bridge.settings import Settings
from bridge.sqs.config import sqs_settings
from bridge.sqs.hops import HOP_TASK, MAX_DELAY_MS, first_hop, hop_id, register_hop_task
from bridge.sqs.runs import register_run_task

if TYPE_CHECKING:
    from bridge.sqs.eventbridge import EventBridgeScheduler

__all__ = ["MAX_DELAY_MS", "MAX_MESSAGE_BYTES", "SqsBackend"]

logger = logging.getLogger("bridge.sqs")

MAX_MESSAGE_BYTES = 262_144  # SQS's classic MaximumMessageSize: assumed when the queue cannot be asked
# Bytes a Celery message adds around its body: headers and properties (task name,
# ids, origin, repr of the arguments, ...), measured at about 0.9 KiB; kept generous.
ENVELOPE_BYTES = 2_048


class SqsBackend(GuardedBackend):
    """Queue backend on the Celery app's SQS broker, deduped through the guard store."""

    # SQS consumes predefined queues only (no ListQueues permission needed).
    predefined_queues_only = True

    @classmethod
    def broker_settings(cls, settings: Settings) -> dict[str, Any]:
        return sqs_settings(settings)

    def __init__(self, app: Celery, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        self.url = str(app.conf.broker_write_url or app.conf.broker_url or "")
        if not self.url.startswith("sqs://"):
            raise ConfigError(
                f"the sqs backend sends through the Celery broker, but broker_url={redact(self.url)!r} "
                "is not SQS. Call app.config_from_object('bridge.celeryconfig') with QUEUE_BACKEND=sqs "
                "and SQS_QUEUE_URL."
            )
        self._guard_ttl_ms = settings.dedupe_ttl_sec * 1000
        self.store = guard_store_for(settings, "SQS")
        self._scheduler: EventBridgeScheduler | None = None
        register_hop_task(app, self)  # the workers of this app forward long delays
        register_run_task(app, self)  # ... and enqueue the runs EventBridge Scheduler sends

    def enqueue(self, requests: Sequence[JobRequest]) -> list[Job]:
        for request in requests:  # every item is checked before anything is claimed or sent
            self._check(request)
        return [self._add(request) for request in requests]

    def _check(self, request: JobRequest) -> None:
        if request.delay_ms > MAX_DELAY_MS and not self.settings.sqs_delay_hops:
            raise DelayTooLong(
                "delay_ms",
                f"{request.delay_ms} ms is over SQS's 900,000 ms (15 minutes) and SQS_DELAY_HOPS=false; "
                "set SQS_DELAY_HOPS=true to carry it in 15-minute hops, or use the Redis backend.",
            )
        if request.delay_ms and self.settings.sqs_fifo:
            raise InvalidJob("delay_ms", "SQS FIFO queues take no per-message delay; add it without one.")
        size = len(request.data_json or json.dumps(request.data))
        limit = self.max_message_bytes
        if self.message_bytes(size) > limit:
            raise InvalidPayload(
                "data",
                f"{size} bytes of data make a message over the queue's MaximumMessageSize of {limit} bytes "
                "(kombu base64-encodes it); store large data elsewhere (S3, a database) and pass its key.",
            )

    def _add(self, request: JobRequest) -> Job:
        # Without queue=, the app's task_routes decide, as for apply_async.
        queue = request.queue or routed_queue(self.app, request.name, request.data)
        claimed = False
        try:
            if request.idempotency_key is not None:
                ttl = (request.guard_ttl_ms or self._guard_ttl_ms) + request.delay_ms
                standing = self.store.claim(request.job_id, queue, ttl)
                if standing is not None:
                    return Job(id=request.job_id, name=request.name, queue=standing, deduplicated=True)
                claimed = True
            if request.delay_ms > MAX_DELAY_MS:  # longer than SQS can delay: the first of its hops
                hop = first_hop(request, queue, self.now_ms())
                send_detached(self.app, HOP_TASK, kwargs=hop, task_id=hop_id(request.job_id, 0), queue=queue,
                                   DelaySeconds=MAX_DELAY_MS // 1000)  # fmt: skip
            else:
                send_detached(self.app,
                    request.name, kwargs=request.data, task_id=request.job_id, queue=request.queue,
                    priority=request.priority, **self._properties(request),
                )  # fmt: skip
        except Exception as exc:
            if claimed:  # the send failed: free the key, so a retry with it can send
                self.store.release(request.job_id)
            if _connection_failure(exc):
                raise backend_unavailable("queue.add", exc, self.url, an_add=True) from None
            raise
        return Job(id=request.job_id, name=request.name, queue=queue)

    def _properties(self, request: JobRequest) -> dict[str, Any]:
        props: dict[str, Any] = {}
        if request.delay_ms:
            props["DelaySeconds"] = math.ceil(request.delay_ms / 1000)
        if self.settings.sqs_fifo:
            group = request.group_id or self.settings.sqs_message_group_id
            if group:
                props["MessageGroupId"] = group
            seed = request.idempotency_key if request.idempotency_key is not None else request.job_id
            props["MessageDeduplicationId"] = hashlib.sha256(f"{request.name}\0{seed}".encode()).hexdigest()
        elif request.group_id:
            props["MessageGroupId"] = request.group_id  # SQS fair queues on standard queues
        return props

    @functools.cached_property
    def max_message_bytes(self) -> int:
        """The queue's ``MaximumMessageSize``, asked once per process."""
        from bridge.sqs.admin import SqsAdmin

        url = self.settings.sqs_queue_url or ""
        try:
            return SqsAdmin(self.settings).max_message_bytes(url)
        except BridgeError as exc:
            logger.warning("bridge: %s; assuming SQS's default of %d bytes", exc, MAX_MESSAGE_BYTES)
            return MAX_MESSAGE_BYTES

    def message_bytes(self, data_bytes: int) -> int:
        """The size SQS will see for a job with ``data_bytes`` of JSON data (a close upper estimate)."""
        # kombu base64-encodes the body ([args, kwargs, embed]) inside the Celery
        # envelope, and its SQS transport base64-encodes the whole envelope again
        # unless sqs_base64_encoding is off.
        envelope = math.ceil((data_bytes + 64) * 4 / 3) + ENVELOPE_BYTES
        options = self.app.conf.broker_transport_options or {}
        return math.ceil(envelope * 4 / 3) if options.get("sqs_base64_encoding", True) else envelope

    def now_ms(self) -> int:
        """The guard store's clock: one clock for producers and workers on any host."""
        return self.store.now_ms()

    @property
    def redis_url(self) -> str | None:
        """The Redis of beat-fired repeats (celery-redbeat's store), or None when there is none.

        None with ``JOBS_SCHEDULER=eventbridge``, and with guards in DynamoDB and no
        ``REDIS_URL``: nothing starts an embedded server behind an AWS-only setup.
        """
        if self.settings.jobs_scheduler == "eventbridge":
            return None
        if self.settings.guard_store == "dynamodb":
            return self.settings.redis_url
        return self.store.url

    def promote_due(self) -> float | None:
        return None  # SQS delays natively

    def cancel_delayed(self, job_id: str) -> bool:
        """SQS cannot take a message back: leave a tombstone that workers honour on receipt."""
        try:
            self.client.set(f"bridge:tombstone:{job_id}", 1, px=self._guard_ttl_ms + MAX_DELAY_MS)
        except RedisError as exc:
            raise backend_unavailable("cancelling an SQS job (writing its tombstone)", exc) from None
        except BackendUnavailable as exc:  # DynamoDB's, already translated: say what was being done
            raise BackendUnavailable(f"cancelling an SQS job (writing its tombstone): {exc}") from None
        return True

    def is_cancelled(self, job_id: str) -> bool:
        """Whether a tombstone stands for the job (checked by workers before running it)."""
        try:
            return bool(self.client.exists(f"bridge:tombstone:{job_id}"))
        except (RedisError, BackendUnavailable) as exc:
            logger.warning("bridge: could not check the tombstone of %r: %s", job_id, exc)
            return False

    def repeat_scheduler(self) -> EventBridgeScheduler | None:
        """EventBridge Scheduler, with ``JOBS_SCHEDULER=eventbridge`` (else beat fires repeats)."""
        if self.settings.jobs_scheduler != "eventbridge":
            return None
        if self._scheduler is None:
            from bridge.sqs.eventbridge import EventBridgeScheduler

            self._scheduler = EventBridgeScheduler(self.app, self.settings)
        return self._scheduler

    def withdraw(self, job_id: str) -> bool:
        return False  # an accepted SQS message cannot be taken back

    def install_worker(self) -> None:
        from bridge.sqs.worker import install_sqs_worker

        install_sqs_worker(self.app, self.settings, self.is_cancelled)


def _connection_failure(exc: BaseException | None) -> bool:
    """Whether ``exc``, or an error it was raised from, is a failure to reach SQS or Redis.

    Celery's result consumer (Redis) wraps its lost connection in a RuntimeError
    when ``send_task`` subscribes to the job's result, so the cause chain counts.
    """
    while exc is not None:
        if type(exc).__module__.startswith("botocore") or isinstance(exc, (RedisError, KombuError, OSError)):
            return True
        exc = exc.__cause__
    return False
