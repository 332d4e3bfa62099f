"""Repeats fired by a stock ``celery beat``: celery-redbeat's scheduler, with a bridge entry.

redbeat already does the hard parts: entries live in Redis (a hash per entry and
a sorted set scored by next due time, so a tick reads only what is due), and a
Redis lock keeps one beat active. What the bridge adds:

* the entry's schedule is a :class:`~bridge.core.timetable.Timetable` (cron in its own
  time zone, sub-second ``every_ms``, bounds), stored as tagged JSON;
* a run is enqueued through the bridge with a job id derived from the repeat and
  the *scheduled* instant, with an idempotency guard, so two beats that overlap
  for a moment (lock takeover) enqueue each run once;
* the run is tracked, so cancelling the repeat withdraws a run still queued;
* a run count ``limit`` ends the repeat.

Static ``beat_schedule`` entries of the app (and Celery's own, such as
``celery.backend_cleanup``) run through celery-redbeat's own path, untouched: only
the bridge's repeats use the bridge's entry logic. redbeat stores a schedule as
JSON, which holds ``timedelta``, ``crontab`` and ``rrule`` schedules (a subclass
as its base class); a static entry is therefore loaded with the schedule object
of the app's code, found by its name, so a ``solar`` schedule (which redbeat
cannot store) or a schedule class of the app's own fires exactly as defined.

``Bridge(app)`` points ``beat_scheduler`` here and shortens redbeat's defaults:
a loop of at most 1 s (a repeat added at run time fires on time, not up to
5 minutes late) and a lock that expires 5 s after its holder dies (a standby beat
takes over within seconds, not 25 minutes). redbeat extends its lock once per
tick; a tick that fires many runs extends it as it goes, so a burst of due
repeats cannot outlast the lock.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime
from typing import Any

from celery.schedules import crontab, maybe_schedule, schedule
from celery.utils.imports import symbol_by_name
from redbeat.decoder import RedBeatJSONDecoder, RedBeatJSONEncoder
from redbeat.schedulers import RedBeatScheduler, RedBeatSchedulerEntry, get_redis
from redbeat.schedules import rrule
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import LockNotOwnedError
from redis.exceptions import TimeoutError as RedisTimeoutError

from bridge.core.connect import redbeat_settings
from bridge.core.ids import job_id_for
from bridge.core.keys import global_keyprefix
from bridge.core.registry import bridge_of
from bridge.core.timetable import Timetable
from bridge.job import Job, JobRequest

__all__ = [
    "LOCK_TIMEOUT_S",
    "LOOP_INTERVAL_S",
    "RUN_GUARD_MS",
    "SCHEDULER",
    "BridgeEntry",
    "BridgeScheduler",
    "configure_beat",
    "fires_repeats",
]

logger = logging.getLogger("bridge.beat")

LOOP_INTERVAL_S = 1
LOCK_TIMEOUT_S = 5
# A run's guard only has to outlive an overlap of two beats, not a day.
RUN_GUARD_MS = 10 * 60 * 1000

#: What ``beat_scheduler`` names to run the bridge's scheduler (``celery beat -S ...``).
SCHEDULER = "bridge.worker.beat:BridgeScheduler"
_CELERY_DEFAULT_SCHEDULERS = ("celery.beat:PersistentScheduler", "celery.beat.PersistentScheduler")


# Only if the entry still exists: a cancel that ran meanwhile must not be undone.
_RECORD_RUN = """
if redis.call('HEXISTS', KEYS[1], 'definition') == 0 then return 0 end
redis.call('HSET', KEYS[1], 'meta', ARGV[1])
redis.call('ZADD', KEYS[2], ARGV[2], KEYS[1])
return 1
"""


def _record_run_script(app: Any) -> Any:
    # redis-py's Script sends EVALSHA and loads the text only when the server lacks it.
    script = getattr(app, "_bridge_record_run", None)
    if script is None:
        script = app._bridge_record_run = get_redis(app).register_script(_RECORD_RUN)
    return script


class TimetableSchedule:
    """Celery's schedule protocol over a Timetable (``is_due`` / ``remaining_estimate``)."""

    def __init__(self, timetable: Timetable) -> None:
        self.timetable = timetable

    def now(self) -> datetime:
        return _now()

    def remaining_estimate(self, last_run_at: datetime | None) -> Any:
        upcoming = self.timetable.upcoming(last_run_at)
        return None if upcoming is None else upcoming - _now()

    def is_due(self, last_run_at: datetime | None) -> tuple[bool, float]:
        fire, following = self.timetable.due(last_run_at, _now())
        wait = LOOP_INTERVAL_S if following is None else max(0.0, (following - _now()).total_seconds())
        return fire is not None, wait

    def __repr__(self) -> str:
        t = self.timetable
        return f"<repeat {t.cron or f'every {t.every_ms} ms'} tz={t.tz}>"


def _now() -> datetime:
    return datetime.now(UTC)


# A static entry's schedule that redbeat's JSON cannot hold: the object stays in the app's code.
_IN_CODE = "bridge.in_code"


class _InCode:
    """Stands for a static entry's schedule until ``from_key`` finds it in the app's code."""

    app: Any = None  # Celery's ScheduleEntry sets it on every schedule

    def __init__(self, shown: str) -> None:
        self.shown = shown


def _encodable(value: Any) -> bool:
    """Whether redbeat's JSON can store this schedule (solar, for one, it cannot)."""
    return isinstance(value, (schedule, crontab, rrule))


def _in_code_schedule(app: Any, name: str) -> Any:
    """The schedule of the app's static entry ``name``, as the app's code defines it (None if gone)."""
    static = (app.conf.beat_schedule or {}).get(name)
    if not isinstance(static, dict) or "schedule" not in static:
        return None
    return maybe_schedule(static["schedule"], static.get("relative", False), app=app)


class BridgeEntry(RedBeatSchedulerEntry):  # type: ignore[misc]  # redbeat is untyped
    """A repeat stored by redbeat; ``options['bridge']`` holds the bridge's fields.

    Static ``beat_schedule`` entries are entries of this class too (redbeat has one
    ``Entry`` class per scheduler); for them every method is redbeat's own.
    """

    @property
    def is_repeat(self) -> bool:
        """A repeat of ``jobs.schedule`` (not a static ``beat_schedule`` entry)."""
        return isinstance(self.schedule, TimetableSchedule)

    @classmethod
    def from_key(cls, key: str, app: Any = None) -> BridgeEntry:
        entry: BridgeEntry = super().from_key(key, app=app)
        if not entry.is_repeat:
            in_code = _in_code_schedule(entry.app, entry.name)
            if in_code is not None:
                entry.schedule = in_code  # a static entry: the app's own object, not its JSON
            elif isinstance(entry.schedule, _InCode):
                raise KeyError(key)  # no longer in the app's beat_schedule: redbeat drops it
        return entry

    @property
    def bridge(self) -> dict[str, Any]:
        return dict(self.options.get("bridge") or {})

    @property
    def timetable(self) -> Timetable:
        schedule: TimetableSchedule = self.schedule
        return schedule.timetable

    @property
    def finished(self) -> bool:
        limit = self.bridge.get("limit")
        return bool(limit) and self.total_run_count >= limit

    @staticmethod
    def decode_definition(definition: Any) -> dict[str, Any]:
        decoded: dict[str, Any] = json.loads(definition, cls=RedBeatJSONDecoder)
        schedule = decoded.get("schedule")
        if isinstance(schedule, dict) and schedule.get("__type__") == "bridge.timetable":
            decoded["schedule"] = TimetableSchedule(Timetable.from_dict(schedule))
        elif isinstance(schedule, dict) and schedule.get("__type__") == _IN_CODE:
            decoded["schedule"] = _InCode(str(schedule.get("repr", "")))
        return decoded

    @staticmethod
    def decode_meta(meta: Any, app: Any = None) -> dict[str, Any]:
        decoded: dict[str, Any] = RedBeatSchedulerEntry.decode_meta(meta, app)
        decoded.pop("last_job", None)  # read by jobs.cancel, not an entry field
        return decoded

    @property
    def due_at(self) -> datetime | None:
        if not self.is_repeat:
            static_due: datetime | None = super().due_at
            return static_due
        if self.finished:
            return None
        return self.timetable.upcoming(self.last_run_at)

    def is_due(self) -> tuple[bool, float]:
        if not self.is_repeat:
            static: tuple[bool, float] = super().is_due()
            return static
        if not self.enabled or self.finished:
            return False, float(LOOP_INTERVAL_S)
        due: tuple[bool, float] = self.schedule.is_due(self.last_run_at)
        return due

    def definition(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "task": self.task,
            "args": self.args,
            "kwargs": self.kwargs,
            "options": self.options,
            "schedule": self.timetable.to_dict(),
            "enabled": self.enabled,
        }

    def save(self) -> BridgeEntry:
        """Store the definition; keep last run and count (an upsert never resets them)."""
        if not self.is_repeat:
            return self._save_static()
        meta = {"last_run_at": None, "total_run_count": 0}
        with get_redis(self.app).pipeline() as pipe:
            pipe.hset(self.key, "definition", json.dumps(self.definition(), cls=RedBeatJSONEncoder))
            pipe.hsetnx(self.key, "meta", json.dumps(meta, cls=RedBeatJSONEncoder))
            pipe.execute()
        # The score comes from the stored meta, which may predate this upsert.
        stored = type(self).from_key(self.key, app=self.app)
        get_redis(self.app).zadd(self.app.redbeat_conf.schedule_key, {self.key: stored.score})
        return self

    def _save_static(self) -> BridgeEntry:
        if _encodable(self.schedule):
            saved: BridgeEntry = super().save()
            return saved
        # redbeat's save, with the schedule named rather than encoded (see _in_code_schedule).
        definition = {
            "name": self.name, "task": self.task, "args": self.args, "kwargs": self.kwargs,
            "options": self.options, "schedule": {"__type__": _IN_CODE, "repr": repr(self.schedule)},
            "enabled": self.enabled,
        }  # fmt: skip
        meta = {"last_run_at": self.last_run_at}
        with get_redis(self.app).pipeline() as pipe:
            pipe.hset(self.key, "definition", json.dumps(definition, cls=RedBeatJSONEncoder))
            pipe.hsetnx(self.key, "meta", json.dumps(meta, cls=RedBeatJSONEncoder))
            pipe.zadd(self.app.redbeat_conf.schedule_key, {self.key: self.score})
            pipe.execute()
        return self

    def record_run(self, fired_at: datetime, job: Job) -> bool:
        """After a run was enqueued: the scheduled instant becomes the last run.

        Returns False when the repeat was cancelled meanwhile (nothing is written).
        """
        self.last_run_at = fired_at
        self.total_run_count += 1
        meta = {"last_run_at": fired_at, "total_run_count": self.total_run_count, "last_job": job.id}
        recorded = _record_run_script(self.app)(
            keys=[self.key, self.app.redbeat_conf.schedule_key],
            args=[json.dumps(meta, cls=RedBeatJSONEncoder), self.score],
        )
        return bool(recorded)


class BridgeScheduler(RedBeatScheduler):  # type: ignore[misc]  # redbeat is untyped
    """``celery beat -S bridge.worker.beat:BridgeScheduler`` (set by ``Bridge(app)``)."""

    Entry = BridgeEntry
    _extended_at = 0.0

    def _keep_lock(self) -> None:
        # redbeat extends the lock at the start of a tick only; a long tick must too.
        now = time.monotonic()
        if self.lock is not None and now - self._extended_at > 1.0:
            self.lock.extend(int(self.lock_timeout))
            self._extended_at = now

    def tick(self, *args: Any, **kwargs: Any) -> float:
        """redbeat's tick, kept alive through a Redis restart or a Sentinel failover.

        redbeat lets a connection error end ``celery beat``; here beat waits the outage
        out and carries on. A lock that expired meanwhile is taken again the way a
        standby beat takes it (blocking until free), so two beats never fire together.
        """
        try:
            return float(super().tick(*args, **kwargs))
        except LockNotOwnedError:
            logger.warning("bridge beat: the beat lock expired while Redis was unreachable; taking it again")
            self.lock.acquire()
            logger.info("bridge beat: lock taken again")
            return 0.0
        except (RedisConnectionError, RedisTimeoutError) as exc:
            logger.warning("bridge beat: Redis is unreachable (%s); retrying in %s s", exc, LOOP_INTERVAL_S)
            return float(LOOP_INTERVAL_S)

    def apply_async(self, entry: Any, producer: Any = None, advance: bool = True, **kwargs: Any) -> Any:
        self._keep_lock()
        if not isinstance(entry, BridgeEntry) or not entry.is_repeat:
            # A static beat_schedule entry of the app: Celery's own path, untouched.
            return super().apply_async(entry, producer=producer, advance=advance, **kwargs)
        fire, _following = entry.timetable.due(entry.last_run_at, _now())
        if fire is None:
            return None
        bridge = bridge_of(self.app)
        run_key = f"{entry.name}@{int(fire.timestamp() * 1000)}"
        request = JobRequest(
            name=entry.task,
            data=dict(entry.kwargs),
            job_id=job_id_for(entry.task, run_key),
            idempotency_key=run_key,
            queue=entry.options.get("queue") or bridge.jobs_queue,
            guard_ttl_ms=RUN_GUARD_MS,
            track=True,
        )
        job = bridge.jobs_backend.enqueue([request])[0]
        if advance and not entry.record_run(fire, job):
            bridge.jobs_backend.withdraw(job.id)  # cancelled while this run was being enqueued
            return None
        if job.deduplicated:
            logger.info("bridge beat: run %r of %r was already enqueued", job.id, entry.name)
        return job


def configure_beat(app: Any, jobs_backend: Any) -> None:
    """Point ``app``'s beat at :class:`BridgeScheduler` and tune celery-redbeat's defaults.

    A custom scheduler the app chose is left alone, with a warning. Settings the app
    already gives (``redbeat_*``, ``beat_max_loop_interval``) are kept.
    """
    conf = app.conf
    if conf.beat_scheduler in _CELERY_DEFAULT_SCHEDULERS:
        conf.beat_scheduler = SCHEDULER
    elif conf.beat_scheduler != SCHEDULER:
        logger.warning(
            "bridge: beat_scheduler is %r, so jobs.schedule repeats will not fire; run beat with -S %s",
            conf.beat_scheduler, SCHEDULER,
        )  # fmt: skip
    redis_url = getattr(jobs_backend, "redis_url", None)
    if redis_url and not conf.get("redbeat_redis_url"):
        conf.update(redbeat_settings(redis_url, jobs_backend.settings.redis_sentinel_master))
    if not conf.get("redbeat_redis_options"):
        # Explicit, so redbeat does not hand the broker's transport options to redis-py.
        conf.redbeat_redis_options = {"health_check_interval": 25}
    if not conf.get("redbeat_key_prefix"):
        # Under the app's global_keyprefix: repeats and beat's lock (redbeat derives it) per app.
        conf.redbeat_key_prefix = global_keyprefix(conf) + "bridge:repeat:"
    # redbeat's defaults (a 5-minute loop, a 25-minute lock) would fire a repeat
    # added at run time minutes late and leave no beat for 25 minutes after a crash.
    if not conf.get("redbeat_lock_timeout"):
        conf.redbeat_lock_timeout = LOCK_TIMEOUT_S
    if not conf.beat_max_loop_interval:
        conf.beat_max_loop_interval = LOOP_INTERVAL_S


def fires_repeats(app: Any) -> bool:
    """Whether ``app``'s beat runs :class:`BridgeScheduler` (or a subclass), which fires repeats."""
    chosen = app.conf.beat_scheduler
    if chosen in (SCHEDULER, SCHEDULER.replace(":", ".")):
        return True
    try:
        scheduler = symbol_by_name(chosen) if isinstance(chosen, str) else chosen
    except Exception:
        return False
    return isinstance(scheduler, type) and issubclass(scheduler, BridgeScheduler)
