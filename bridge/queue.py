"""``bridge.queue``: add jobs, one at a time or in bulk."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from bridge.core.backend import QueueBackend
from bridge.core.ids import job_id_for
from bridge.core.validation import (
    check_delay_ms,
    check_group,
    check_key,
    check_name,
    check_priority,
    check_queue,
    encode_payload,
    shown,
)
from bridge.errors import ConfigError, InvalidInput, InvalidJob
from bridge.job import Job, JobRequest

__all__ = ["JobQueue", "make_request"]


def make_request(
    name: object,
    data: object,
    *,
    idempotency_key: object = None,
    delay_ms: object = None,
    queue: object = None,
    priority: object = None,
    group_id: object = None,
) -> JobRequest:
    """Validate one add; raise a BridgeError naming the bad field before anything is sent."""
    task = check_name(name)
    key = check_key(idempotency_key)
    kwargs, data_json = encode_payload(data)
    return JobRequest(
        name=task,
        data=kwargs,
        data_json=data_json,
        job_id=job_id_for(task, key),
        idempotency_key=key,
        delay_ms=check_delay_ms(delay_ms),
        queue=check_queue(queue),
        priority=check_priority(priority),
        group_id=check_group(group_id),
    )


class JobQueue:
    """Adds jobs for Celery tasks by name, deduplicated by idempotency key."""

    def __init__(self, backend: QueueBackend) -> None:
        self._backend = backend

    def add(
        self,
        name: str,
        data: Mapping[str, Any],
        *,
        idempotency_key: str | None = None,
        delay_ms: int | None = None,
        queue: str | None = None,
        priority: int | None = None,
        group_id: str | None = None,
    ) -> Job:
        """Add one job for the Celery task ``name``; ``data`` becomes its keyword arguments.

        Args:
            name: the task name, as registered with ``@app.task(name=...)``. A name
                this process does not know is allowed (the handler may live elsewhere).
            data: a JSON object; delivered to the task as keyword arguments.
            idempotency_key: dedupes the add: the same ``(name, key)`` gives the same
                job id everywhere, and while its guard stands a second add sends
                nothing and returns the standing job with ``deduplicated=True``.
            delay_ms: run no sooner than this many milliseconds from now. The job
                waits in the backend, not in a worker's memory.
            queue: override the task's Celery route.
            priority: the message priority, as ``apply_async(priority=...)``.
            group_id: the SQS message group (FIFO order holds per group); default
                ``SQS_MESSAGE_GROUP_ID``. Ignored by Redis.

        Raises:
            InvalidPayload: ``data`` is not a JSON object.
            InvalidJob: a bad name, key, delay, queue or priority.
            BackendUnavailable: the backend could not be reached; retrying with the
                same key is safe.
        """
        if delay_ms is None and queue is None and priority is None and group_id is None:
            job = self._backend.add_one(name, data, idempotency_key)  # the common add's own path
            if job is not None:
                return job
        request = make_request(
            name, data, idempotency_key=idempotency_key, delay_ms=delay_ms, queue=queue, priority=priority,
            group_id=group_id,
        )  # fmt: skip
        return self._backend.enqueue([request])[0]

    def add_on_commit(
        self,
        name: str,
        data: Mapping[str, Any],
        *,
        using: str | None = None,
        idempotency_key: str | None = None,
        delay_ms: int | None = None,
        queue: str | None = None,
        priority: int | None = None,
        group_id: str | None = None,
    ) -> str:
        """Django: add the job once the surrounding database transaction commits.

        The counterpart of Celery's ``delay_on_commit``: the job is validated now (a
        bad argument raises here), and added by ``django.db.transaction.on_commit``,
        so a transaction that rolls back adds nothing, and a worker never sees a job
        for rows it cannot read yet. Outside a transaction the add happens at once.
        A failure to reach the backend at commit raises there, as ``on_commit``
        callbacks do (the transaction has committed by then).

        Args:
            using: the Django database alias whose transaction counts (default: ``default``).
            The others are those of :meth:`add`.

        Returns:
            The job's id, known before the add (derived from the key when there is one).

        Raises:
            ConfigError: Django is not installed.
            InvalidPayload, InvalidJob: as :meth:`add`, at call time.
        """
        try:
            from django.db import transaction
        except ImportError:
            raise ConfigError(
                "queue.add_on_commit needs Django: pip install django, or use queue.add."
            ) from None
        request = make_request(
            name, data, idempotency_key=idempotency_key, delay_ms=delay_ms, queue=queue, priority=priority,
            group_id=group_id,
        )  # fmt: skip
        transaction.on_commit(lambda: self._backend.enqueue([request]), using=using)
        return request.job_id

    def add_bulk(
        self, jobs: Iterable[tuple[str, Mapping[str, Any]] | tuple[str, Mapping[str, Any], Mapping[str, Any]]]
    ) -> list[Job]:
        """Add many jobs in one round trip where the backend allows.

        Each item is ``(name, data)`` or ``(name, data, options)`` where options are
        the keyword arguments of :meth:`add`. Every item is validated before
        anything is sent, so one bad item sends nothing; each item is deduplicated
        on its own, exactly as :meth:`add` would.
        """
        try:
            items = list(jobs)
        except TypeError:
            raise InvalidJob(
                "jobs", f"must be a list of (name, data[, options]), got {shown(jobs)}."
            ) from None
        requests = []
        for index, item in enumerate(items):
            if not isinstance(item, tuple) or len(item) not in (2, 3):
                raise InvalidJob(f"jobs[{index}]", "each item must be (name, data) or (name, data, options).")
            options: Mapping[str, Any] = item[2] if len(item) == 3 else {}
            if not isinstance(options, Mapping):
                raise InvalidJob(f"jobs[{index}]", f"options must be a dict, got {type(options).__name__}.")
            unknown = set(options) - {"idempotency_key", "delay_ms", "queue", "priority", "group_id"}
            if unknown:
                raise InvalidJob(
                    f"jobs[{index}]", f"unknown options {', '.join(sorted(map(shown, unknown)))}."
                )
            try:
                requests.append(make_request(item[0], item[1], **options))
            except InvalidInput as exc:
                raise type(exc)(f"jobs[{index}].{exc.field}", str(exc).split(": ", 1)[1]) from None
        if not requests:
            return []
        return self._backend.enqueue(requests)
