"""Dead letters: jobs that failed for good, kept per queue in Redis to inspect and retry.

A job fails for good when its retries are exhausted or it raised an error it
does not retry (Celery's ``task_failure``; a retry is not a failure). The worker
records it in ``bridge:dead:<queue>``, newest first, with its payload, the
exception's type and message, the traceback and the attempt count. The list is
trimmed to ``JOBS_DLQ_MAX`` entries, so a failure storm cannot fill Redis.
Opt out per task with ``@app.task(bridge_dead_letter=False)``.
"""

from __future__ import annotations

import json
import logging
import time
import traceback as tb
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Protocol

from celery import Celery, signals

from bridge.errors import BackendError, InvalidInput

if TYPE_CHECKING:
    import redis

    from bridge.redis.message import CeleryMessageBuilder

__all__ = ["DeadLetter", "DeadLetters", "LetterStore", "RedisDeadLetters"]

logger = logging.getLogger("bridge.deadletters")

# Removes the entry and re-enqueues its job in one step: a retry can neither
# lose the job nor run it twice.
RETRY = """
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then return 0 end
for i = 2, #ARGV, 3 do
  local c = ARGV[i]
  if c ~= 'lpush' and c ~= 'pexpire' and c ~= 'publish' then
    return redis.error_reply('bridge: refused command ' .. tostring(c))
  end
  redis.call(c, ARGV[i + 1], ARGV[i + 2])
end
return 1
"""


class LetterStore(Protocol):
    """Where dead letters are kept: a Redis client, and the key of a queue's list."""

    @property
    def client(self) -> redis.Redis: ...

    def key(self, *parts: str) -> str: ...


class LetterBackend(LetterStore, Protocol):
    """What Redis dead letters use of the backend that creates them (so this module needn't import it)."""

    def _builder(self) -> CeleryMessageBuilder: ...

    def _script(
        self, script: str, keys: list[str], args: list[Any], client: redis.Redis | None = None
    ) -> Any: ...


@dataclass(frozen=True)
class DeadLetter:
    """A job that failed for good."""

    id: str
    name: str
    queue: str
    data: dict[str, Any]
    exc_type: str
    exc_message: str
    traceback: str
    attempts: int
    failed_at: float
    #: True for a message the worker rejected unrun (see bridge.redis.rejected): not retriable.
    rejected: bool = False

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


class DeadLetters:
    """Record, list, retry and purge dead letters, kept in Redis lists (``store.key("dead", queue)``).

    How a retried letter goes back onto its queue is the backend's: :meth:`_requeue`.
    """

    def __init__(self, app: Celery, backend: LetterStore, max_entries: int) -> None:
        self.app = app
        self.backend = backend
        self.max_entries = max_entries

    def key(self, queue: str) -> str:
        return self.backend.key("dead", queue)

    def install(self) -> None:
        """Record final failures of this app's tasks (in the worker process that ran them)."""
        signals.task_failure.connect(self._on_failure, weak=False)

    def _on_failure(
        self, sender: Any = None, task_id: str | None = None, exception: BaseException | None = None,
        kwargs: dict[str, Any] | None = None, einfo: Any = None, **_: Any,
    ) -> None:  # fmt: skip
        app: Any = self.app
        ours = sender is not None and getattr(sender, "app", None) is app
        if not ours or not task_id:
            return
        if getattr(sender, "bridge_dead_letter", True) is False:
            return
        request = sender.request
        queue = (request.delivery_info or {}).get("routing_key") or app.conf.task_default_queue
        letter = DeadLetter(
            id=task_id,
            name=sender.name,
            queue=queue,
            data=dict(kwargs or {}),
            exc_type=type(exception).__name__ if exception else "",
            exc_message=str(exception)[:2000] if exception else "",
            traceback=str(einfo)[-8000:] if einfo else "".join(tb.format_exception(exception))[-8000:],
            attempts=(request.retries or 0) + 1,
            failed_at=time.time(),
        )
        self.record(letter)

    def record(self, letter: DeadLetter) -> None:
        """Keep ``letter`` at the head of its queue's dead letters, trimmed to the bound."""
        try:
            with self.backend.client.pipeline() as pipe:
                pipe.lpush(self.key(letter.queue), json.dumps(letter.as_json(), default=repr))
                pipe.ltrim(self.key(letter.queue), 0, self.max_entries - 1)
                pipe.execute()
        except Exception as exc:  # a failing record must not mask the job's own failure
            logger.error("bridge: could not record dead letter %r: %s", letter.id, exc)

    def record_rejected(self, *, message_id: str, name: str, queue: str, kind: str, reason: str) -> None:
        """Keep a message the worker rejected unrun: no payload, not retriable."""
        letter = DeadLetter(
            id=message_id, name=name, queue=queue, data={}, exc_type=kind, exc_message=reason[:2000],
            traceback="", attempts=0, failed_at=time.time(), rejected=True,
        )  # fmt: skip
        self.record(letter)

    def entries(self, queue: str, limit: int = 100) -> list[DeadLetter]:
        """The newest dead letters of ``queue``."""
        return [_letter(raw) for raw in self._raw(queue, limit)]

    def count(self, queue: str) -> int:
        return int(self.backend.client.llen(self.key(queue)))

    def retry(self, queue: str, job_id: str | None = None) -> int:
        """Re-enqueue dead letters (one by id, or all) with their job ids; returns how many."""
        retried = 0
        for raw in self._raw(queue, self.max_entries):
            letter = _letter(raw)
            if job_id is not None and letter.id != job_id:
                continue
            if letter.rejected:
                # Its body was never decoded (see bridge.worker.rejected): there is nothing to re-enqueue.
                if job_id is not None:
                    raise InvalidInput(
                        "id", f"{job_id!r} was rejected unrun ({letter.exc_type}) and cannot be retried."
                    )
                continue
            retried += int(self._requeue(self.key(queue), raw, letter))
            if job_id is not None:
                break
        if job_id is not None and not retried:
            raise InvalidInput("id", f"no dead letter with id {job_id!r} in queue {queue!r}.")
        return retried

    def _requeue(self, key: str, raw: str, letter: DeadLetter) -> bool:
        """Take ``raw`` out of the list ``key`` and put its job back on its queue; False: already gone."""
        raise NotImplementedError

    def purge(self, queue: str) -> int:
        """Delete every dead letter of ``queue``; returns how many there were."""
        with self.backend.client.pipeline() as pipe:
            pipe.llen(self.key(queue))
            pipe.delete(self.key(queue))
            count, _ = pipe.execute()
        return int(count)

    def _raw(self, queue: str, limit: int) -> list[str]:
        return [
            r.decode() if isinstance(r, bytes) else r
            for r in self.backend.client.lrange(self.key(queue), 0, limit - 1)
        ]


class RedisDeadLetters(DeadLetters):
    """Dead letters of a Redis backend: a retry moves the letter back into Celery's list in one script."""

    backend: LetterBackend

    def _requeue(self, key: str, raw: str, letter: DeadLetter) -> bool:
        envelope = self.backend._builder().build(letter.id, letter.name, letter.data, letter.queue, None)
        return bool(self.backend._script(RETRY, [key], [raw, *envelope.commands]))


def _letter(raw: str) -> DeadLetter:
    try:
        return DeadLetter(**json.loads(raw))
    except (ValueError, TypeError) as exc:
        raise BackendError(
            f"a dead letter could not be read ({exc}); purge the queue's dead letters."
        ) from None
