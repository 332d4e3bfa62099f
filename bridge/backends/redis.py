"""Redis backend: jobs go into Celery's own Redis broker lists, deduped atomically.

URL forms: ``redis://[user:password@]host:port/db``, ``rediss://...`` (TLS),
``unix:///path/to/socket``. The backend writes into the Celery app's broker, so
the app's ``broker_url`` must be that Redis (``celeryconfig`` sets it from
``REDIS_URL``); it honours ``broker_transport_options`` such as
``global_keyprefix`` and ``priority_steps`` because kombu itself computes every
key (see :mod:`bridge.backends.celery_message`).

Delayed jobs wait in Redis (see :mod:`bridge.backends.redis_scripts`) and are
moved to their queue when due by the promoter that runs in every worker and
beat: never as Celery ETAs in worker memory, which Redis would redeliver after
the visibility timeout and run twice.
"""

from __future__ import annotations

import functools
import hashlib
import os
import threading
import weakref
from collections.abc import Sequence
from typing import Any

import redis
from celery import Celery
from kombu.exceptions import KombuError
from redis.exceptions import NoScriptError, RedisError

from bridge.backends.base import QueueBackend
from bridge.backends.celery_message import CeleryMessageBuilder, Envelope, send_after_publish
from bridge.backends.redis_scripts import ADD, CANCEL_DELAYED, PROMOTE, WITHDRAW
from bridge.errors import ConfigError, backend_unavailable
from bridge.job import Job, JobRequest
from bridge.redact import redact
from bridge.settings import Settings

__all__ = ["RedisBackend"]

# How many delayed jobs one promoter call moves at most (keeps each script short,
# so it never blocks Redis for long).
PROMOTE_BATCH = 500


class _ProcessState(threading.local):
    """Per thread and per process: kombu channels are neither thread- nor fork-safe."""

    pid: int = -1
    connection: Any = None
    builder: CeleryMessageBuilder | None = None


class RedisBackend(QueueBackend):
    """Queue backend on the Celery app's Redis broker."""

    def __init__(self, app: Celery, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        self.url = str(app.conf.broker_write_url or app.conf.broker_url or "")
        scheme = self.url.split("://", 1)[0].lower()
        if scheme not in ("redis", "rediss", "unix", "socket", "redis+socket"):
            raise ConfigError(
                f"the redis backend writes into the Celery broker, but broker_url={redact(self.url)!r} "
                "is not Redis. Call app.config_from_object('celeryconfig') (it sets the broker "
                "from REDIS_URL) or set broker_url to the same Redis as REDIS_URL."
            )
        self._prefix = ""
        self._guard_ttl_ms = settings.dedupe_ttl_sec * 1000
        self._reset_after_fork()
        # Celery's prefork pool forks while the promoter thread may hold the lock
        # or a connection: a child starts with fresh ones instead of inheriting them.
        reset = weakref.WeakMethod(self._reset_after_fork)
        os.register_at_fork(after_in_child=lambda: (m := reset()) and m())

    def _reset_after_fork(self) -> None:
        self._state = _ProcessState()
        self._client_lock = threading.Lock()
        self._client: redis.Redis | None = None
        self._client_pid = -1

    # -- connections ------------------------------------------------------------

    def _builder(self) -> CeleryMessageBuilder:
        state = self._state
        if state.builder is None or state.pid != os.getpid():
            connection = self.app.connection_for_write()
            try:
                channel = connection.default_channel
            except (KombuError, RedisError, OSError) as exc:
                connection.release()
                raise backend_unavailable("connecting to the Redis broker", exc, self.url) from None
            state.connection, state.pid = connection, os.getpid()
            state.builder = CeleryMessageBuilder(self.app, channel)
        return state.builder

    @property
    def client(self) -> redis.Redis:
        """A redis-py client on the broker's server (same parameters kombu uses)."""
        if self._client is None or self._client_pid != os.getpid():
            with self._client_lock:
                if self._client is None or self._client_pid != os.getpid():
                    channel = self._builder().channel
                    self._prefix = channel.global_keyprefix or ""
                    # kombu's own pool parameters: TLS, credentials, socket path, timeouts.
                    self._client = redis.Redis(connection_pool=redis.ConnectionPool(**channel._connparams()))
                    self._client_pid = os.getpid()
        return self._client

    @property
    def redis_url(self) -> str:
        """A redis-py URL of the server (for celery-redbeat, which repeats use)."""
        return self.url

    def key(self, *parts: str) -> str:
        """A bridge key under the broker's global key prefix."""
        self.client  # noqa: B018 - resolves the prefix
        return self._prefix + "bridge:" + ":".join(parts)

    # -- QueueBackend -----------------------------------------------------------

    def enqueue(self, requests: Sequence[JobRequest]) -> list[Job]:
        try:
            builder = self._builder()
            envelopes = [
                builder.build(r.job_id, r.name, r.data, r.queue, r.priority, r.data_json) for r in requests
            ]
            calls = [self._add_call(r, e) for r, e in zip(requests, envelopes, strict=True)]
            replies = self._run_adds(calls)
        except (RedisError, KombuError, OSError) as exc:
            raise backend_unavailable("queue.add", exc, self.url) from None
        jobs = []
        for request, envelope, reply in zip(requests, envelopes, replies, strict=True):
            sent, detail = int(reply[0]), reply[1]
            if sent:
                send_after_publish(envelope)
                jobs.append(
                    Job(
                        id=envelope.job_id,
                        name=request.name,
                        queue=envelope.queue,
                        due_ms=int(detail) if request.delay_ms else None,
                    )
                )
            else:
                standing = _text(detail)
                jobs.append(Job(id=envelope.job_id, name=request.name, queue=standing, deduplicated=True))
        return jobs

    def promote_due(self) -> float | None:
        try:
            _moved, next_ms = self._script(
                PROMOTE,
                [self.key("delayed-queues"), self.key("delayed-jobs")],
                [self.key("delayed", ""), PROMOTE_BATCH],
            )
        except RedisError as exc:
            raise backend_unavailable("promoting delayed jobs", exc, self.url) from None
        if int(next_ms) < 0:
            return None
        return int(next_ms) / 1000.0

    def cancel_delayed(self, job_id: str) -> bool:
        try:
            queue = self.client.get(self.key("guard", job_id))
            queues = [_text(queue)] if queue else self._delayed_queues()
            for name in queues:
                keys = [self.key("guard", job_id), self.key("delayed", name), self.key("delayed-jobs")]
                if self._script(CANCEL_DELAYED, keys, [job_id]):
                    return True
        except RedisError as exc:
            raise backend_unavailable("cancelling a delayed job", exc, self.url) from None
        return False

    def withdraw(self, job_id: str) -> bool:
        try:
            return bool(self._script(WITHDRAW, [self.key("queued", job_id)], []))
        except RedisError as exc:
            raise backend_unavailable("withdrawing a queued job", exc, self.url) from None

    def release_guard(self, job_id: str) -> None:
        try:
            self.client.delete(self.key("guard", job_id))
        except RedisError as exc:
            raise backend_unavailable("releasing an idempotency guard", exc, self.url) from None

    def delayed_count(self, queue: str) -> int:
        """How many jobs wait for their delay on ``queue``."""
        try:
            return int(self.client.zcard(self.key("delayed", queue)))
        except RedisError as exc:
            raise backend_unavailable("counting delayed jobs", exc, self.url) from None

    def close(self) -> None:
        state = self._state
        if state.connection is not None:
            state.connection.release()
            state.connection = state.builder = None
        if self._client is not None:
            self._client.close()
            self._client = None

    # -- internals --------------------------------------------------------------

    def _delayed_queues(self) -> list[str]:
        return [_text(q) for q in self.client.smembers(self.key("delayed-queues"))]

    def _add_call(self, request: JobRequest, envelope: Envelope) -> tuple[list[str], list[Any]]:
        ttl = 0
        if request.idempotency_key is not None:
            ttl = request.guard_ttl_ms or self._guard_ttl_ms
        track = (request.guard_ttl_ms or self._guard_ttl_ms) if request.track else 0
        args = [self.key(""), envelope.job_id, envelope.queue, ttl, request.delay_ms, track]
        return [], [*args, *envelope.commands]

    def _run_adds(self, calls: list[tuple[list[str], list[Any]]]) -> list[Any]:
        if len(calls) == 1:
            keys, args = calls[0]
            return [self._script(ADD, keys, args)]
        sha = _sha(ADD)
        replies: list[Any] = [None] * len(calls)
        todo = list(range(len(calls)))
        for _attempt in range(2):
            # One round trip for the whole batch; each EVALSHA is atomic on its own.
            with self.client.pipeline(transaction=False) as pipe:
                for i in todo:
                    keys, args = calls[i]
                    pipe.evalsha(sha, len(keys), *keys, *args)
                results = pipe.execute(raise_on_error=False)
            missing = []
            for i, result in zip(todo, results, strict=True):
                if isinstance(result, NoScriptError):
                    missing.append(i)  # not run at all: safe to send again
                elif isinstance(result, Exception):
                    raise result
                else:
                    replies[i] = result
            if not missing:
                return replies
            self.client.script_load(ADD)
            todo = missing
        raise backend_unavailable("queue.add_bulk", NoScriptError("script could not be loaded"), self.url)

    def _script(self, script: str, keys: list[str], args: list[Any]) -> Any:
        sha = _sha(script)
        try:
            return self.client.evalsha(sha, len(keys), *keys, *args)
        except NoScriptError:
            # First use on this server, or it restarted: load and run once more.
            # EVALSHA that failed with NOSCRIPT ran nothing, so this cannot double-send.
            self.client.script_load(script)
            return self.client.evalsha(sha, len(keys), *keys, *args)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@functools.cache
def _sha(script: str) -> str:
    return hashlib.sha1(script.encode()).hexdigest()  # noqa: S324 - Redis names scripts by SHA-1
