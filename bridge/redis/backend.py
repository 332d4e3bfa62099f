"""Redis backend: jobs go into Celery's own Redis broker lists, deduped atomically.

URL forms: ``redis://[user:password@]host:port/db``, ``rediss://...`` (TLS),
``unix:///path/to/socket`` or ``redis+socket://``, and ``sentinel://h1:26379;sentinel://h2:26379``
with ``broker_transport_options={"master_name": ...}``. The backend writes into the Celery app's broker, so
the app's ``broker_url`` must be that Redis (``bridge.celeryconfig`` sets it from
``REDIS_URL``); it honours ``broker_transport_options`` such as
``global_keyprefix`` and ``priority_steps`` because kombu itself computes every
key (see :mod:`bridge.redis.message`).

Delayed jobs wait in Redis (see :mod:`bridge.redis.scripts`) and are
moved to their queue when due by the promoter that runs in every worker and
beat: never as Celery ETAs in worker memory, which Redis would redeliver after
the visibility timeout and run twice.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import threading
import time
import weakref
from collections.abc import Sequence
from typing import Any

import redis
from celery import Celery, signals
from kombu.exceptions import KombuError
from redis.exceptions import NoScriptError, RedisError

from bridge.core.backend import OWN_BROKER_SCHEMES, QueueBackend
from bridge.core.connect import is_sentinel, redis_client
from bridge.core.ids import keyed_id, random_uuid
from bridge.core.redact import redact
from bridge.core.validation import check_key, check_name, flat_json
from bridge.errors import ConfigError, backend_unavailable, is_permanent_connection_fault
from bridge.job import Job, JobRequest
from bridge.redis.capture import capturing_channel
from bridge.redis.config import redis_settings
from bridge.redis.deadletters import RedisDeadLetters
from bridge.redis.message import CeleryMessageBuilder, Envelope, send_after_publish
from bridge.redis.scripts import ADD, CANCEL_DELAYED, PROMOTE, WITHDRAW
from bridge.redis.single_add import AddPlan
from bridge.redis.wire import bulk, is_stale, send_and_read
from bridge.settings import Settings

__all__ = ["RedisBackend"]

# Jobs per add script call: each call is atomic, so a bulk add never blocks Redis
# for long; all calls of one add_bulk still share a round trip.
ADD_BATCH = 500

# How many delayed jobs one promoter call moves at most (keeps each script short,
# so it never blocks Redis for long).
PROMOTE_BATCH = 500


class _ProcessState(threading.local):
    """Per thread and per process: kombu channels are neither thread- nor fork-safe."""

    pid: int = -1
    connection: Any = None
    builder: CeleryMessageBuilder | None = None
    own_client: redis.Redis | None = None

    def __init__(self) -> None:  # once in each thread
        self.plans: dict[str, AddPlan] = {}  # per task name: its single add, packed (single_add.py)


class RedisBackend(QueueBackend):
    """Queue backend on the Celery app's Redis broker."""

    @classmethod
    def broker_settings(cls, settings: Settings) -> dict[str, Any]:
        if not settings.redis_url:  # pragma: no cover - Settings refuses the redis backend without one
            raise ConfigError("QUEUE_BACKEND=redis needs REDIS_URL.")
        return redis_settings(settings.redis_url, settings)

    def __init__(self, app: Celery, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        self._letters: RedisDeadLetters | None = None
        self.url = str(app.conf.broker_write_url or app.conf.broker_url or "")
        scheme = self.url.split("://", 1)[0].lower()
        if OWN_BROKER_SCHEMES.get(scheme) != "redis":
            raise ConfigError(
                f"the redis backend writes into the Celery broker, but broker_url={redact(self.url)!r} "
                "is not Redis. Call app.config_from_object('bridge.celeryconfig') (it sets the broker "
                "from REDIS_URL) or set broker_url to the same Redis as REDIS_URL."
            )
        self._prefix = ""
        self._add_head_cache: tuple[str, bytes] | None = None  # (key prefix, the add command's packed head)
        self._guard_ttl_ms = settings.dedupe_ttl_sec * 1000
        self._minute_cache = (-1, b"")  # (the producer's minute, packed), where the chart counts adds
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
                # A wrong password or CA does not heal: fail at once instead of retrying
                # through kombu's reconnect back-off for seconds on every call.
                options = connection._extract_failover_opts()
                options.setdefault("errback", _give_up_on_permanent_faults)
                connection.ensure_connection(**options)
                channel = capturing_channel(connection)
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
                    if is_sentinel(self.url):
                        # The primary the sentinels name now, asked again on every reconnect.
                        master = (self.app.conf.broker_transport_options or {}).get("master_name")
                        self._client = redis_client(self.url, sentinel_master=master, socket_keepalive=True)
                    else:
                        # kombu's own pool parameters: TLS, credentials, socket path, timeouts.
                        pool = redis.ConnectionPool(**channel._connparams())
                        self._client = redis.Redis(connection_pool=pool)
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
            replies = self._run_adds(
                [self._packed_job(r, e) for r, e in zip(requests, envelopes, strict=True)]
            )
        except (RedisError, KombuError, OSError) as exc:
            raise backend_unavailable("queue.add", exc, self.url, an_add=True) from None
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

    def add_one(self, name: object, data: object, idempotency_key: object) -> Job | None:
        """The common add by its own path (:mod:`bridge.redis.single_add`); None where it does not apply.

        It applies to flat data (a dict of JSON scalars) for a task whose message template
        applies now, with no ``after_task_publish`` receiver (they are handed the envelope
        the general path builds). Checks run in the general path's order, before anything
        is sent: the name, the key, then the data (flat data is valid data).
        """
        data_json = flat_json(data)
        if data_json is None or type(name) is not str or signals.after_task_publish.receivers:
            return None
        plans = self._state.plans
        plan = plans.get(name)
        if plan is None:
            check_name(name)
        key = check_key(idempotency_key)
        try:
            builder = self._builder()
            template = builder.single_template(name)
            if template is None:
                return None
            if plan is None or plan.template is not template:  # first add, or a new channel
                head = self._add_head(self.key(""))
                plan = plans[name] = AddPlan.of(name, template, head, self._guard_ttl_ms)
            job_id = keyed_id(plan.id_seed, key) if key is not None else random_uuid()
            message = builder.payload(template, job_id, data, data_json).encode()  # type: ignore[arg-type]
            reply = self._call_adds([plan.pack(self._minute(), job_id, key is not None, message)])[0]
        except (RedisError, KombuError, OSError) as exc:
            raise backend_unavailable("queue.add", exc, self.url, an_add=True) from None
        if reply != b"[1,0]":  # [1,0] is the reply of every sent job with no delay; a duplicate's differs
            sent, standing = json.loads(reply)
            if not sent:
                return Job(id=job_id, name=name, queue=_text(standing), deduplicated=True)
        return Job(id=job_id, name=name, queue=plan.queue)

    def promote_due(self) -> float | None:
        try:
            _moved, next_ms = self._script(
                PROMOTE,
                [self.key("delayed-queues"), self.key("delayed-jobs"), self.key("delayed-keys")],
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
                keys = [
                    self.key("guard", job_id), self.key("delayed", name), self.key("delayed-jobs"),
                    self.key("delayed-keys"),
                ]  # fmt: skip
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

    def dead_letters(self) -> RedisDeadLetters:
        """Jobs that failed for good, per queue (recorded by this app's workers)."""
        if self._letters is None:
            self._letters = RedisDeadLetters(self.app, self, self.settings.dlq_max)
        return self._letters

    def install_worker(self) -> None:
        from bridge.redis.worker import install_redis_worker

        install_redis_worker(self.app, self.dead_letters())

    def delayed_count(self, queue: str) -> int:
        """How many jobs wait for their delay on ``queue``."""
        try:
            return int(self.client.zcard(self.key("delayed", queue)))
        except RedisError as exc:
            raise backend_unavailable("counting delayed jobs", exc, self.url) from None

    def close(self) -> None:
        state = self._state
        if state.own_client is not None:
            state.own_client.close()
            state.own_client = None
        if state.connection is not None:
            state.connection.release()
            state.connection = state.builder = None
        if self._client is not None:
            self._client.close()
            self._client = None

    # -- internals --------------------------------------------------------------

    def _delayed_queues(self) -> list[str]:
        return [_text(q) for q in self.client.smembers(self.key("delayed-queues"))]

    def _packed_job(self, request: JobRequest, envelope: Envelope) -> tuple[int, bytes]:
        """One job as the add script's words (see ``ADD``), packed: (word count, RESP bytes)."""
        ttl = 0
        if request.idempotency_key is not None:
            ttl = request.guard_ttl_ms or self._guard_ttl_ms
        track = (request.guard_ttl_ms or self._guard_ttl_ms) if request.track else 0
        # The key travels only with a delayed job (the dashboard shows it); others send "".
        key = (request.idempotency_key or "") if request.delay_ms else ""
        commands = envelope.commands
        words = [envelope.job_id, envelope.queue, str(ttl), str(request.delay_ms), str(track), key]
        words += [str(len(commands)), *commands]
        return len(words), b"".join([bulk(word.encode()) for word in words])

    def _run_adds(self, jobs: list[tuple[int, bytes]]) -> list[tuple[Any, Any]]:
        """Run the add script over ``jobs``, ``ADD_BATCH`` per call, all calls in one round trip.

        The calls are packed by hand and sent on this thread's own connection, and their
        replies read by :mod:`bridge.redis.wire` (why: see there). A connection
        error or timeout drops the connection and raises at once (the caller's
        BackendUnavailable says retrying the add with the same key is safe: the script
        claims before it pushes). A NOSCRIPT reply ran nothing, so that call is sent again
        after the script is loaded.
        """
        head = self._add_head(self.key("")) + self._minute()
        calls = []
        for i in range(0, len(jobs), ADD_BATCH):
            batch = jobs[i : i + ADD_BATCH]
            words = 5 + sum(count for count, _ in batch)
            calls.append(b"*%d\r\n" % words + head + b"".join(packed for _, packed in batch))
        flat: list[Any] = []
        for reply in self._call_adds(calls):
            flat.extend(json.loads(reply))
        return list(zip(flat[::2], flat[1::2], strict=True))

    def _call_adds(self, calls: list[bytes]) -> list[bytes]:
        """Send packed add script calls in one write on this thread's own connection; their replies.

        A NOSCRIPT reply ran nothing, so that call is sent again after the script is loaded.
        An error reply is raised.
        """
        client = self._own_client()
        replies = send_and_read(client.connection, calls)
        unloaded = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
        if unloaded:
            # First use on this server, or it restarted.
            client.script_load(ADD)
            again = send_and_read(client.connection, [calls[i] for i in unloaded])
            for i, reply in zip(unloaded, again, strict=True):
                replies[i] = reply
        sent: list[bytes] = []
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
            sent.append(reply)
        return sent

    def _minute(self) -> bytes:
        """The producer's minute, packed: where the chart counts its adds (bridge.redis.rates)."""
        minute = int(time.time()) // 60
        cached = self._minute_cache
        if cached[0] != minute:
            cached = self._minute_cache = (minute, bulk(b"%d" % minute))
        return cached[1]

    def _add_head(self, prefix: str) -> bytes:
        """``EVALSHA <sha> 0 <prefix>``, packed once per key prefix (the count of words goes before it)."""
        if self._add_head_cache is None or self._add_head_cache[0] != prefix:
            words = (b"EVALSHA", _sha(ADD).encode(), b"0", prefix.encode())
            self._add_head_cache = (prefix, b"".join(bulk(w) for w in words))
        return self._add_head_cache[1]

    def _script(
        self, script: str, keys: list[str], args: list[Any], client: redis.Redis | None = None
    ) -> Any:
        client = client or self.client
        sha = _sha(script)
        try:
            return client.evalsha(sha, len(keys), *keys, *args)
        except NoScriptError:
            # First use on this server, or it restarted: load and run once more.
            # EVALSHA that failed with NOSCRIPT ran nothing, so this cannot double-send.
            client.script_load(script)
            return client.evalsha(sha, len(keys), *keys, *args)

    def _own_client(self) -> redis.Redis:
        """This thread's own connection: a single add skips the pool's checkout and return.

        It still does the pool's check on checkout: a connection the server closed (a
        restart) reads as ready, so it is dropped and the next command reconnects,
        before anything is sent.
        """
        state = self._state
        if state.own_client is None:
            state.own_client = redis.Redis(
                connection_pool=self.client.connection_pool, single_connection_client=True
            )
        connection = state.own_client.connection
        try:
            stale = connection is not None and is_stale(connection)
        except (RedisError, OSError):
            stale = True
        if stale and connection is not None:
            connection.disconnect()  # type: ignore[no-untyped-call]
        return state.own_client


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@functools.cache
def _sha(script: str) -> str:
    return hashlib.sha1(script.encode()).hexdigest()  # noqa: S324 - Redis names scripts by SHA-1


def _give_up_on_permanent_faults(exc: BaseException, _interval: float) -> None:
    """kombu's reconnect errback: re-raise what retrying cannot fix (kombu waits otherwise)."""
    if is_permanent_connection_fault(exc):
        raise exc
