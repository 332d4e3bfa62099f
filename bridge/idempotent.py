"""``@bridge.idempotent()``: a task body runs at most once per key, however often it is delivered.

Deliveries repeat for many reasons: SQS is at-least-once, Redis redelivers a
message whose worker outlived the visibility timeout, and a retry may follow a
body that succeeded but whose ack was lost. The guard has two states in the
lock store (``LOCK_BACKEND``: Redis, or DynamoDB's conditional writes), under
``<global_keyprefix>bridge:``, the task and key as a JSON pair (so task ``a``
with key ``b:c`` and task ``a:b`` with key ``c`` never share a record):

* **running**: a lock on ``idem:["<task>","<key>"]:running`` held while the body runs,
  kept alive by ``auto_extend``, so it expires ``lease_ms`` after a worker dies
  and the job can run again;
* **done**: ``idem:["<task>","<key>"]:done`` holds the body's result (JSON) for
  ``ttl_ms``; a later delivery returns that result without running the body.

A body that raises leaves the key free, so Celery's retry runs it again. A
delivery that finds the body running elsewhere asks Celery to retry it after the
lease, by which time the other run has finished (and the retry returns its
result) or has died (and the retry runs the body).
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable
from typing import Any, TypeVar

import redis
from celery import current_task
from redis.exceptions import RedisError

from bridge.core.keys import pair_key
from bridge.errors import InvalidInput, LockNotAcquired, backend_unavailable
from bridge.lock import Lock

__all__ = ["idempotent"]

logger = logging.getLogger("bridge.idempotent")
F = TypeVar("F", bound=Callable[..., Any])


def idempotent(
    client_of: Callable[[], redis.Redis | Any],
    key: Callable[..., str] | None = None,
    ttl_ms: int = 86_400_000,
    lease_ms: int = 30_000,
    key_prefix: str = "bridge:idem:",
) -> Callable[[F], F]:
    """Decorate a Celery task function (below ``@app.task``) so its body runs once per key.

    Args:
        client_of: returns the store that holds the guards (redis-py, or a DynamoStore).
        key: ``key(**kwargs) -> str``; default: the job id (the Celery task id).
        ttl_ms: how long a done body's result is remembered.
        lease_ms: how long a running body's claim survives its worker's death.
        key_prefix: put before every record's key (the app's ``global_keyprefix`` first).
    """
    for field, value in (("ttl_ms", ttl_ms), ("lease_ms", lease_ms)):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise InvalidInput(field, f"must be a positive integer of milliseconds, got {value!r}.")

    def decorate(func: F) -> F:
        @functools.wraps(func)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            task = current_task
            if task is None or not getattr(task.request, "id", None):
                return func(*args, **kwargs)  # called directly, not as a task
            ident = key(**kwargs) if key is not None else task.request.id
            base = pair_key(key_prefix, task.name, str(ident))
            client = client_of()
            try:
                done = client.get(base + ":done")
            except RedisError as exc:
                raise backend_unavailable("checking an idempotency guard", exc) from None
            if done is not None:
                return json.loads(done)
            running = Lock(client, base + ":running", key_prefix="", ttl_ms=lease_ms, blocking=False,
                           auto_extend=True)  # fmt: skip
            try:
                running.acquire()
            except LockNotAcquired:
                logger.info("bridge: %s is running elsewhere; retrying in %d ms", base, lease_ms)
                raise task.retry(countdown=lease_ms / 1000, max_retries=None) from None
            try:
                done = client.get(base + ":done")  # finished between our check and our claim
                if done is not None:
                    return json.loads(done)
                result = func(*args, **kwargs)
                client.set(base + ":done", _encode(result, base), px=ttl_ms)
                return result
            finally:
                running.release()

        return guarded  # type: ignore[return-value]

    return decorate


def _encode(result: Any, where: str) -> str:
    try:
        return json.dumps(result)
    except (TypeError, ValueError):
        logger.warning("bridge: result of %s is not JSON; a repeated delivery will return None", where)
        return "null"
