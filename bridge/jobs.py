"""``bridge.jobs``: repeats (cron / every_ms) upserted and cancelled at run time, and one-offs."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from kombu.exceptions import KombuError
from redbeat.decoder import RedBeatJSONDecoder, RedBeatJSONEncoder
from redbeat.schedulers import get_redis
from redis.exceptions import RedisError

from bridge.core.ids import job_id_for
from bridge.core.repeats import RepeatScheduler, RepeatSpec
from bridge.core.timetable import Timetable
from bridge.core.validation import check_key, check_name, check_payload, check_queue, shown
from bridge.errors import ConfigError, InvalidPayload, InvalidSchedule, backend_unavailable
from bridge.job import Job
from bridge.queue import make_request
from bridge.worker.beat import SCHEDULER, BridgeEntry, TimetableSchedule, fires_repeats

if TYPE_CHECKING:
    from celery import Celery

    from bridge.core.backend import QueueBackend

__all__ = ["Jobs", "Repeat", "repeat_id"]

_NAMESPACE = uuid.UUID("0b7f3c1e-92a4-5d6e-8f10-3a5c7e9b1d2f")

# KEYS: the schedule's sorted set. Counts the standing repeats per queue on the server:
# with 10,000 repeats, decoding every one in Python (as jobs.list does) takes a second, this
# a few milliseconds. Static beat_schedule entries are not repeats and are not counted.
# Returns a flat array: queue, count, queue, count, ...
_COUNT_PER_QUEUE = """
local counts = {}
for _, key in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local definition = redis.call('HGET', key, 'definition')
  if definition then
    local ok, decoded = pcall(cjson.decode, definition)
    if ok and type(decoded) == 'table' and type(decoded.schedule) == 'table'
        and decoded.schedule.__type__ == 'bridge.timetable' then
      local queue = type(decoded.options) == 'table' and decoded.options.queue or ''
      if type(queue) ~= 'string' then queue = '' end
      counts[queue] = (counts[queue] or 0) + 1
    end
  end
end
local out = {}
for queue, count in pairs(counts) do
  out[#out + 1] = queue
  out[#out + 1] = count
end
return out
"""


def repeat_id(name: str, idempotency_key: str | None, cron: str | None, every_ms: int | None) -> str:
    """The id of the repeat ``(name, idempotency_key, cron | every_ms)``: the same in every process."""
    rule = f"cron:{cron}" if cron is not None else f"every_ms:{every_ms}"
    return "repeat-" + str(uuid.uuid5(_NAMESPACE, json.dumps([name, idempotency_key, rule])))


@dataclass(frozen=True)
class Repeat:
    """A standing repeat, as ``jobs.schedule`` returns and ``jobs.list`` lists it."""

    id: str
    name: str
    idempotency_key: str | None
    cron: str | None
    every_ms: int | None
    tz: str
    data: dict[str, Any]
    queue: str
    next_run: datetime | None
    last_run: datetime | None
    run_count: int
    limit: int | None = None
    start_at: datetime | None = None
    end_at: datetime | None = None

    def as_json(self) -> dict[str, Any]:
        """A JSON-ready dict (datetimes as ISO 8601 strings)."""
        out = dict(self.__dict__)
        for field in ("next_run", "last_run", "start_at", "end_at"):
            value = out[field]
            out[field] = value.isoformat() if value else None
        return out


# ``list`` inside class Jobs names its method: annotations there use this instead.
_Repeats = list[Repeat]


class Jobs:
    """Scheduled jobs of one Bridge: repeats fired by ``celery beat``, and one-off jobs."""

    def __init__(self, app: Celery, backend: QueueBackend, queue: str) -> None:
        self._app = app
        self._backend = backend  # JOBS_BACKEND's
        self._queue = queue  # where runs and one-offs go by default

    def schedule(
        self,
        name: str,
        data: dict[str, Any],
        *,
        cron: str | None = None,
        every_ms: int | None = None,
        tz: str | None = None,
        idempotency_key: str | None = None,
        delay_ms: int | None = None,
        start_at: datetime | None = None,
        end_at: datetime | None = None,
        limit: int | None = None,
        queue: str | None = None,
    ) -> Repeat | Job:
        """Upsert a repeat (with ``cron`` or ``every_ms``), or add a one-off job.

        A repeat's identity is ``(name, idempotency_key, cron | every_ms)``: scheduling
        it again updates its data and options in place and returns the same id.
        Runs go to ``queue`` or ``JOBS_QUEUE_NAME``. Without ``cron``/``every_ms`` this
        adds a one-off job on ``JOBS_QUEUE_NAME`` (optionally delayed, deduped by key).

        Raises:
            InvalidSchedule: a bad cron, every_ms, tz, bounds or limit (nothing is stored).
            InvalidPayload, InvalidJob: bad data, name or key.
            ConfigError: a repeat, and the app's beat scheduler is one that would never fire it.
        """
        if cron is None and every_ms is None:
            for field, value in (("tz", tz), ("start_at", start_at), ("end_at", end_at), ("limit", limit)):
                if value is not None:
                    raise InvalidSchedule(field, "applies to repeats only; give cron= or every_ms= too.")
            request = make_request(
                name,
                data,
                idempotency_key=idempotency_key,
                delay_ms=delay_ms,
                queue=self._queue if queue is None else queue,
            )
            return self._backend.enqueue([request])[0]
        if delay_ms is not None:
            raise InvalidSchedule("delay_ms", "a repeat does not take delay_ms; use start_at=datetime(...).")
        scheduler = self._backend.repeat_scheduler()
        if scheduler is not None:
            return self._schedule_on(scheduler, name, data, cron, every_ms, tz, idempotency_key, start_at,
                                     end_at, limit, queue)  # fmt: skip
        if not self._has_beat_store():
            raise ConfigError(
                "repeats fired by celery beat are kept in Redis, and this app has none (guards in DynamoDB, "
                "no REDIS_URL): set JOBS_SCHEDULER=eventbridge (with JOBS_SCHEDULER_ROLE_ARN), or REDIS_URL."
            )
        if not fires_repeats(self._app):
            raise ConfigError(
                f"this app's beat_scheduler is {self._app.conf.beat_scheduler!r}, which never fires "
                f"jobs.schedule repeats; set beat_scheduler = {SCHEDULER!r} (it also runs the app's "
                f"static beat_schedule entries), or run beat with -S {SCHEDULER}."
            )
        if limit is not None and (
            isinstance(limit, bool) or not isinstance(limit, int) or not 0 < limit < 2**63
        ):
            raise InvalidSchedule(
                "limit", f"must be a positive number of runs (a 64-bit integer), got {shown(limit)}."
            )
        task, key, kwargs = check_name(name), check_key(idempotency_key), _storable(check_payload(data))
        target = check_queue(queue) or self._queue
        timetable = Timetable(
            cron=cron, every_ms=every_ms, tz=tz or "UTC", start_at=start_at, end_at=end_at,
            anchor=datetime.now(UTC),
        )  # fmt: skip
        entry = BridgeEntry(
            name=repeat_id(task, key, cron, every_ms),
            task=task,
            schedule=TimetableSchedule(timetable),
            kwargs=kwargs,
            options={"queue": target, "bridge": {"key": key, "limit": limit}},
            app=self._app,
        )
        try:
            entry.save()
            stored = BridgeEntry.from_key(entry.key, app=self._app)
        except RedisError as exc:
            raise backend_unavailable("jobs.schedule", exc) from None
        return _repeat_of(stored)

    def cancel(
        self,
        *,
        name: str,
        idempotency_key: str | None = None,
        cron: str | None = None,
        every_ms: int | None = None,
    ) -> bool:
        """Remove a repeat, or (without cron/every_ms) a pending delayed one-off job.

        Cancelling a repeat also withdraws its last run if no worker has taken it yet.
        Returns True if something was removed.
        """
        task, key = check_name(name), check_key(idempotency_key)
        if cron is None and every_ms is None:
            if key is None:
                raise InvalidSchedule(
                    "idempotency_key", "cancelling a one-off job needs the key it was scheduled with."
                )
            return self._backend.cancel_delayed(job_id_for(task, key))
        if cron is not None and every_ms is not None:
            raise InvalidSchedule("cron", "give cron= or every_ms=, not both.")
        rid = repeat_id(task, key, cron, every_ms)
        scheduler = self._backend.repeat_scheduler()
        if scheduler is not None:
            return scheduler.remove(rid)  # runs already sent are ordinary jobs: cancel them by their key
        app = self._app
        if not self._has_beat_store():
            return False  # no repeat store (guards in DynamoDB, no REDIS_URL): no repeat stands
        try:
            client = get_redis(app)
            entry_key = BridgeEntry.generate_key(app, rid)
            meta = client.hget(entry_key, "meta")
            with client.pipeline() as pipe:
                pipe.zrem(app.redbeat_conf.schedule_key, entry_key)
                pipe.delete(entry_key)
                _, removed = pipe.execute()
        except RedisError as exc:
            raise backend_unavailable("jobs.cancel", exc) from None
        last_job = json.loads(meta).get("last_job") if meta else None
        if last_job and not self._backend.withdraw(last_job):
            # Taken by a worker already: stop it from starting if it is only reserved.
            try:
                app.control.revoke(last_job)
            except (KombuError, RedisError, OSError) as exc:
                raise backend_unavailable("jobs.cancel (revoking the last run)", exc) from None
        return bool(removed)

    def list(self) -> list[Repeat]:
        """The standing repeats, soonest first."""
        far = datetime.max.replace(tzinfo=UTC)
        scheduler = self._backend.repeat_scheduler()
        if scheduler is not None:
            now = datetime.now(UTC)
            return sorted((_repeat_of_spec(spec, now) for spec in scheduler.specs()),
                          key=lambda r: r.next_run or far)  # fmt: skip
        if not self._has_beat_store():
            return []  # no repeat store (guards in DynamoDB, no REDIS_URL): no repeat stands
        repeats = self._read("jobs.list", lambda client, key: client.zrange(key, 0, -1))
        return sorted(repeats, key=lambda r: r.next_run or far)

    def page(self, offset: int, limit: int) -> tuple[_Repeats, int]:
        """``limit`` repeats from position ``offset`` in beat's order (soonest due first), and the
        number of entries in beat's schedule (static ``beat_schedule`` entries included, not shown).

        Reads only that slice (``ZRANGE`` by index), however many repeats stand; with ``limit``
        0, only the number.
        """
        if self._backend.repeat_scheduler() is not None or not self._has_beat_store():
            every = self.list()  # EventBridge's API lists a group's schedules whole
            return every[offset : offset + limit], len(every)
        app = self._app
        stop = offset + limit - 1
        repeats = (  # (ZRANGE 0 -1, the stop of limit 0, would read them all)
            self._read("jobs.page", lambda client, key: client.zrange(key, offset, stop)) if limit > 0 else []
        )
        try:
            total = int(get_redis(app).zcard(app.redbeat_conf.schedule_key))
        except RedisError as exc:
            raise backend_unavailable("jobs.page", exc) from None
        return repeats, total

    def get(self, repeat_id: str) -> Repeat | None:
        """The standing repeat with this id (``Repeat.id``), or None."""
        if self._backend.repeat_scheduler() is not None or not self._has_beat_store():
            return next((r for r in self.list() if r.id == repeat_id), None)
        key = BridgeEntry.generate_key(self._app, repeat_id)
        found = self._read("jobs.get", lambda client, _schedule: [key])
        return found[0] if found else None

    def count_per_queue(self) -> dict[str, int]:
        """How many repeats stand per queue their runs go to (counted on the Redis server)."""
        if self._backend.repeat_scheduler() is not None or not self._has_beat_store():
            counts: dict[str, int] = {}
            for repeat in self.list():
                counts[repeat.queue] = counts.get(repeat.queue, 0) + 1
            return counts
        app = self._app
        try:
            client = get_redis(app)
            flat = client.register_script(_COUNT_PER_QUEUE)(keys=[app.redbeat_conf.schedule_key])
        except RedisError as exc:
            raise backend_unavailable("counting repeats", exc) from None
        names = [q.decode() if isinstance(q, bytes) else str(q) for q in flat[::2]]
        return dict(zip(names, (int(n) for n in flat[1::2]), strict=True))

    def _read(self, what: str, entry_keys: Callable[[Any, str], Any]) -> _Repeats:
        """The repeats stored under the entry keys ``entry_keys(client, schedule key)`` names, in order."""
        app = self._app
        try:
            client = get_redis(app)
            keys = entry_keys(client, app.redbeat_conf.schedule_key)
            with client.pipeline() as pipe:
                for key in keys:
                    pipe.hget(key, "definition")
                    pipe.hget(key, "meta")
                raw = pipe.execute()
        except RedisError as exc:
            raise backend_unavailable(what, exc) from None
        repeats: _Repeats = []
        for definition, meta in zip(raw[::2], raw[1::2], strict=True):
            if not definition:
                continue
            decoded = BridgeEntry.decode_definition(definition)
            if not isinstance(decoded.get("schedule"), TimetableSchedule):
                continue  # a static beat_schedule entry of the app
            decoded.update(BridgeEntry.decode_meta(meta))
            entry = BridgeEntry(app=app, **decoded)
            entry.last_run_at = decoded.get("last_run_at")  # type: ignore[assignment]  # None: never ran
            repeats.append(_repeat_of(entry))
        return repeats

    def _has_beat_store(self) -> bool:
        """Whether beat's repeats have a Redis here (not so with guards in DynamoDB and no REDIS_URL)."""
        return bool(self._app.conf.get("redbeat_redis_url"))

    def _schedule_on(
        self, scheduler: RepeatScheduler, name: str, data: dict[str, Any], cron: str | None,
        every_ms: int | None, tz: str | None, idempotency_key: str | None, start_at: datetime | None,
        end_at: datetime | None, limit: int | None, queue: str | None,
    ) -> Repeat:  # fmt: skip
        """Upsert a repeat on the broker's own scheduler (JOBS_SCHEDULER=eventbridge)."""
        if limit is not None:
            raise InvalidSchedule(
                "limit", "repeats fired by EventBridge Scheduler have no run limit; give end_at= instead."
            )
        task, key, kwargs = check_name(name), check_key(idempotency_key), check_payload(data)
        target = check_queue(queue)
        if target not in (None, self._queue):
            raise InvalidSchedule(
                "queue",
                f"EventBridge Scheduler sends runs to SQS_QUEUE_URL's queue {self._queue!r}, not {target!r}.",
            )
        now = datetime.now(UTC)
        timetable = Timetable(cron=cron, every_ms=every_ms, tz=tz or "UTC", start_at=start_at, end_at=end_at,
                              anchor=now)  # fmt: skip
        spec = RepeatSpec(id=repeat_id(task, key, cron, every_ms), name=task, idempotency_key=key,
                          data=kwargs, queue=self._queue, timetable=timetable)  # fmt: skip
        scheduler.upsert(spec)
        return _repeat_of_spec(spec, now)


def _storable(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Refuse data that celery-redbeat's tagged JSON would not give back unchanged.

    redbeat decodes any object with a ``__type__`` of its own ("datetime",
    "interval", ...) into that type when it reads the repeat, so such data would
    reach the handler changed, or break every later read of the repeat.
    """
    try:
        same = json.loads(json.dumps(kwargs, cls=RedBeatJSONEncoder), cls=RedBeatJSONDecoder) == kwargs
    except Exception:  # redbeat's decoders raise whatever their types' constructors raise
        same = False
    if not same:
        raise InvalidPayload(
            "data",
            "a repeat's data may not hold objects with a '__type__' key (the repeat store reads them "
            "back as dates or schedules); rename that key.",
        )
    return kwargs


def _repeat_of_spec(spec: RepeatSpec, now: datetime) -> Repeat:
    """A repeat on the broker's own scheduler, which keeps no run history (last_run, run_count)."""
    timetable = spec.timetable
    return Repeat(
        id=spec.id,
        name=spec.name,
        idempotency_key=spec.idempotency_key,
        cron=timetable.cron,
        every_ms=timetable.every_ms,
        tz=timetable.tz,
        data=dict(spec.data),
        queue=spec.queue,
        next_run=timetable.next_after(now),
        last_run=None,
        run_count=0,
        start_at=timetable.start_at,
        end_at=timetable.end_at,
    )


def _repeat_of(entry: BridgeEntry) -> Repeat:
    timetable = entry.timetable
    bridge = entry.bridge
    return Repeat(
        id=entry.name,
        name=entry.task,
        idempotency_key=bridge.get("key"),
        cron=timetable.cron,
        every_ms=timetable.every_ms,
        tz=timetable.tz,
        data=dict(entry.kwargs),
        queue=entry.options.get("queue", ""),
        next_run=entry.due_at,
        last_run=entry.last_run_at,
        run_count=entry.total_run_count,
        limit=bridge.get("limit"),
        start_at=timetable.start_at,
        end_at=timetable.end_at,
    )
