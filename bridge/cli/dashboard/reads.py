"""What the dashboard's pages read: each one slice of Redis, however much is stored.

Pages are read by index (``ZRANGE``/``LRANGE`` with a start and a stop), never by
listing a whole set or scanning the keyspace, so a page costs the same with ten
jobs or a million. The job lookup is the one read that looks through lists (for a
job id in a queue, the in-flight hash and the dead letters); it stops after
``FIND_LIMIT`` entries per list and says so.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bridge.broker.backend import BrokerBackend
from bridge.core.ids import job_id_for
from bridge.redis.backend import RedisBackend
from bridge.redis.deadletters import DeadLetter, DeadLetters
from bridge.stats import configured_queues

if TYPE_CHECKING:
    import redis

    from bridge.bridge import Bridge

__all__ = [
    "FIND_LIMIT",
    "PAGE_SIZE",
    "DeadPage",
    "DelayedJob",
    "DelayedPage",
    "Lookup",
    "broker_backend",
    "broker_delayed_page",
    "dead_page",
    "delayed_page",
    "lookup",
    "queues_of",
    "redis_backend",
]  # fmt: skip

PAGE_SIZE = 50
#: How many entries of one list the job lookup looks through at most.
FIND_LIMIT = 10_000

# KEYS: lists and hashes to look in. ARGV: the text to find, the most entries to read per key.
# Returns, per key, the 1-based position of the first entry holding the text, 0 if none, or
# -1 if the key held more entries than were read and none of those held it.
_FIND = """
local out = {}
local limit = tonumber(ARGV[2])
for i, key in ipairs(KEYS) do
  local kind = redis.call('TYPE', key)['ok']
  local items, size = {}, 0
  if kind == 'list' then
    items = redis.call('LRANGE', key, 0, limit - 1)
    size = redis.call('LLEN', key)
  elseif kind == 'hash' then
    size = redis.call('HLEN', key)
    if size <= limit then items = redis.call('HVALS', key) end
  end
  local found = 0
  for position, item in ipairs(items) do
    if string.find(item, ARGV[1], 1, true) then found = position break end
  end
  if found == 0 and size > #items then found = -1 end
  out[i] = found
end
return out
"""


def redis_backend(bridge: Bridge) -> RedisBackend | None:
    """The bridge's queue backend when it keeps its queues in Redis (Redis or embedded), else None."""
    backend = bridge.backend
    return backend if isinstance(backend, RedisBackend) else None


def broker_backend(bridge: Bridge) -> BrokerBackend | None:
    """The bridge's queue backend when the app keeps its own broker (RabbitMQ...), else None."""
    backend = bridge.backend
    return backend if isinstance(backend, BrokerBackend) else None


def queues_of(bridge: Bridge, named: Sequence[str], repeat_queues: Sequence[str] = ()) -> list[str]:
    """The queues the app uses: those named, the app's configured ones, those with delayed jobs,
    and those standing repeats send to (in that order, each once)."""
    found: list[str] = [*named, *configured_queues(bridge.app.conf, bridge.jobs_queue)]
    backend = redis_backend(bridge)
    if backend is not None:
        found += sorted(_text(q) for q in backend.client.smembers(backend.key("delayed-queues")))
    broker = broker_backend(bridge)
    if broker is not None:
        found += sorted(_text(q) for q in broker.client.smembers(broker.key("broker", "queues")))
    found += [q for q in repeat_queues if q]
    return list(dict.fromkeys(q for q in found if q))


@dataclass(frozen=True)
class DelayedJob:
    id: str
    name: str
    key: str | None
    queue: str
    due_ms: int
    data: str  # the arguments as shown: JSON, cut short


@dataclass(frozen=True)
class DelayedPage:
    queue: str
    jobs: list[DelayedJob]
    total: int
    offset: int
    now_ms: int


def delayed_page(backend: RedisBackend, queue: str, offset: int, limit: int = PAGE_SIZE) -> DelayedPage:
    """Delayed jobs of ``queue``, soonest due first, from position ``offset``."""
    client = backend.client
    ids, dues, total, now = _due_slice(client, backend.key("delayed", queue), offset, limit)
    commands: list[Any] = []
    keys: list[Any] = []
    if ids:
        with client.pipeline(transaction=False) as pipe:
            pipe.hmget(backend.key("delayed-jobs"), ids)
            pipe.hmget(backend.key("delayed-keys"), ids)
            commands, keys = pipe.execute()
    jobs = []
    for job_id, due, raw, key in zip(ids, dues, commands, keys, strict=True):
        name, data = _message_summary(raw)
        jobs.append(DelayedJob(job_id, name, _text(key) if key else None, queue, due, data))
    return DelayedPage(queue, jobs, total, offset, now)


def broker_delayed_page(
    backend: BrokerBackend, queue: str, offset: int, limit: int = PAGE_SIZE
) -> DelayedPage:
    """Delayed jobs of ``queue`` on another broker (kept in the guard store until due), soonest first."""
    client = backend.client
    ids, dues, total, now = _due_slice(client, backend.key("broker", "delayed", queue), offset, limit)
    stored = client.hmget(backend.key("broker", "jobs"), ids) if ids else []
    jobs = []
    for job_id, due, raw in zip(ids, dues, stored, strict=True):
        job = json.loads(raw) if raw else {}  # written by the bridge; gone if cancelled meanwhile
        data = json.dumps(job["data"])[:300] if "data" in job else ""
        jobs.append(DelayedJob(job_id, str(job.get("name", "?")), job.get("key"), queue, due, data))
    return DelayedPage(queue, jobs, total, offset, now)


def _due_slice(
    client: redis.Redis, zkey: str, offset: int, limit: int
) -> tuple[list[str], list[int], int, int]:
    """One page of a sorted set of job ids by due time: (ids, due ms, how many in all, the server's ms)."""
    with client.pipeline(transaction=False) as pipe:
        pipe.zrange(zkey, offset, offset + limit - 1, withscores=True)
        pipe.zcard(zkey)
        pipe.time()
        head, total, (seconds, micros) = pipe.execute()
    ids = [_text(member) for member, _score in head]
    return ids, [int(score) for _member, score in head], int(total), int(seconds) * 1000 + int(micros) // 1000


def _message_summary(raw: Any) -> tuple[str, str]:
    """(task name, arguments) of a delayed job's stored commands (its kombu message)."""
    if not raw:
        return "?", ""
    try:
        commands = json.loads(raw)
        message = json.loads(commands[commands.index("lpush") + 2])
        name = str(message["headers"]["task"])
        body = message.get("body", "")
        if message.get("properties", {}).get("body_encoding") == "base64":
            body = base64.b64decode(body).decode()
        args = json.loads(body)
        data = json.dumps(args[1] if isinstance(args, list) and len(args) > 1 else args)
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        return "?", ""
    return name, data[:300]


@dataclass(frozen=True)
class DeadPage:
    queue: str
    letters: list[DeadLetter]
    total: int
    offset: int


def dead_page(letters: DeadLetters, queue: str, offset: int, limit: int = PAGE_SIZE) -> DeadPage:
    """Dead letters of ``queue``, newest first, from position ``offset`` (in Redis, or in the guard
    store of another broker)."""
    with letters.backend.client.pipeline(transaction=False) as pipe:
        pipe.lrange(letters.key(queue), offset, offset + limit - 1)
        pipe.llen(letters.key(queue))
        raw, total = pipe.execute()
    shown = []
    for item in raw:
        try:
            shown.append(DeadLetter(**json.loads(item)))
        except (ValueError, TypeError):
            continue  # unreadable: purging the queue's letters clears it (the CLI says so too)
    return DeadPage(queue, shown, int(total), offset)


@dataclass
class Lookup:
    """Where one job is, as far as the bridge and Celery's result backend can tell."""

    id: str
    guard_queue: str | None = None
    guard_ttl_ms: int | None = None
    delayed_queue: str | None = None
    due_ms: int | None = None
    queued_in: str | None = None
    running: bool = False
    dead_in: str | None = None
    dead_letter: DeadLetter | None = None
    result_state: str | None = None
    result: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        if self.dead_in:
            return "dead"
        if self.running:
            return "running"
        if self.delayed_queue:
            return "delayed"
        if self.queued_in:
            return "queued"
        if self.result_state == "SUCCESS":
            return "done"
        if self.result_state == "FAILURE":
            return "failed"
        if self.result_state and self.result_state != "PENDING":
            return self.result_state.lower()
        return "not found"


def job_id_of(job_id: str | None, name: str | None, key: str | None) -> str:
    """The id to look up: given, or derived from (task name, idempotency key) as adds derive it."""
    if job_id:
        return job_id.strip()
    return job_id_for((name or "").strip(), key)


def lookup(bridge: Bridge, backend: RedisBackend, job_id: str, queues: Sequence[str]) -> Lookup:
    """Look for ``job_id`` in its guard, the delayed sets, the queues, in flight, the dead letters
    and Celery's result backend."""
    found = Lookup(job_id)
    client = backend.client
    channel = backend._builder().channel
    prefix = channel.global_keyprefix or ""
    with client.pipeline(transaction=False) as pipe:
        pipe.get(backend.key("guard", job_id))
        pipe.pttl(backend.key("guard", job_id))
        pipe.smembers(backend.key("delayed-queues"))
        pipe.get(backend.key("queued", job_id))
        guard, ttl, delayed_queues, tracked = pipe.execute()
    if guard:
        found.guard_queue, found.guard_ttl_ms = _text(guard), int(ttl)
    candidates = list(dict.fromkeys([*(_text(q) for q in delayed_queues), *queues]))
    with client.pipeline(transaction=False) as pipe:
        for queue in candidates:
            pipe.zscore(backend.key("delayed", queue), job_id)
        scores = pipe.execute()
    for queue, score in zip(candidates, scores, strict=True):
        if score is not None:
            found.delayed_queue, found.due_ms = queue, int(score)
    lists = [(queue, prefix + channel._q_for_pri(queue, step)) for queue in queues for step in
             channel.priority_steps]  # fmt: skip
    dead = [(queue, backend.key("dead", queue)) for queue in queues]
    keys = [key for _, key in lists] + [prefix + channel.unacked_key] + [key for _, key in dead]
    needle = f'"id": "{job_id}"'
    positions = _find(client, backend, keys, needle)
    in_lists, in_flight, in_dead = positions[: len(lists)], positions[len(lists)], positions[len(lists) + 1 :]
    for (queue, _key), position in zip(lists, in_lists, strict=True):
        if position > 0:
            found.queued_in = queue
        elif position < 0:
            found.notes.append(f"queue {queue} holds more than {FIND_LIMIT:,} jobs: looked at the first")
    if tracked and not found.queued_in:
        found.queued_in = found.guard_queue or "?"
    found.running = in_flight > 0
    if in_flight < 0:
        found.notes.append(f"more than {FIND_LIMIT:,} jobs are in flight: not looked through")
    for (queue, key), position in zip(dead, in_dead, strict=True):
        if position > 0:
            found.dead_in = queue
            raw = client.lindex(key, position - 1)
            if raw:
                found.dead_letter = DeadLetter(**json.loads(raw))
        elif position < 0:
            found.notes.append(
                f"the dead letters of {queue} hold more than {FIND_LIMIT:,}: looked at the newest"
            )
    _add_result(bridge, found)
    return found


def _find(client: redis.Redis, backend: RedisBackend, keys: list[str], needle: str) -> list[int]:
    if not keys:
        return []
    return [int(p) for p in backend._script(_FIND, keys, [needle, FIND_LIMIT], client=client)]


def _add_result(bridge: Bridge, found: Lookup) -> None:
    """Celery's result of the job, where the app keeps results."""
    from celery.backends.base import DisabledBackend

    app: Any = bridge.app
    if isinstance(app.backend, DisabledBackend):
        found.notes.append("the app keeps no results (no result_backend)")
        return
    try:
        result = app.AsyncResult(found.id)
        found.result_state = str(result.state)
        if result.state not in ("PENDING",):
            found.result = repr(result.result)[:2000]
    except Exception as exc:  # the result backend is the app's; its failure is shown, not raised
        found.notes.append(f"the result backend could not be read: {type(exc).__name__}: {exc}")


def now_ms() -> int:
    return int(time.time() * 1000)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
