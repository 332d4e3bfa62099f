"""A repeat's timetable: cron in its own time zone, or every N milliseconds, within bounds.

Why this is ours: Celery's ``crontab`` follows the app's time zone and its
``schedule`` drifts (each run is timed from when the last one was sent). A
repeat here has its own IANA zone, sub-second intervals, ``start_at``/``end_at``
bounds, and fires on exact instants computed from the previous *scheduled*
instant, so every beat computes the same instants (and so the same job ids).

Cron follows cron users' expectations across DST changes (as cronie does): a
time that does not exist (the skipped hour) fires at the first instant after
the gap; a wall-clock time that occurs twice (the repeated hour) fires once.

Catch-up rule: when beat was down across several instants, the repeat fires
once for the latest missed instant and then continues on the timetable; it never
fires a burst of missed runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, croniter

from bridge.core.validation import MAX_MS, shown
from bridge.errors import InvalidSchedule

__all__ = ["Timetable"]

# The earliest instant a repeat is considered to have "run" before its first run.
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_TICK = timedelta(microseconds=1)
# Bounds stay far from datetime's year 9999, so instant arithmetic never overflows.
_LAST = datetime(9000, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Timetable:
    """When a repeat fires. Exactly one of ``cron`` / ``every_ms`` is set.

    ``anchor`` is when the repeat was (last) scheduled: an ``every_ms`` grid starts
    there (or at ``start_at``), so every beat derives the same instants.
    """

    cron: str | None = None
    every_ms: int | None = None
    tz: str = "UTC"
    start_at: datetime | None = None
    end_at: datetime | None = None
    anchor: datetime = _EPOCH

    def __post_init__(self) -> None:
        if (self.cron is None) == (self.every_ms is None):
            raise InvalidSchedule("cron", "give exactly one of cron='m h dom mon dow' or every_ms=N.")
        if self.cron is not None and (not isinstance(self.cron, str) or not croniter.is_valid(self.cron)):
            raise InvalidSchedule(
                "cron",
                f"{shown(self.cron)} is not a valid cron expression; use five fields like '0 6 * * *'.",
            )
        if self.every_ms is not None and (
            isinstance(self.every_ms, bool)
            or not isinstance(self.every_ms, int)
            or not 0 < self.every_ms <= MAX_MS
        ):
            raise InvalidSchedule(
                "every_ms",
                f"must be a positive integer of milliseconds up to {MAX_MS} (10 years), "
                f"got {shown(self.every_ms)}.",
            )
        try:
            ZoneInfo(self.tz)
        except (ZoneInfoNotFoundError, ValueError, TypeError):
            raise InvalidSchedule(
                "tz", f"{shown(self.tz)} is not a known IANA time zone; use a name like 'Europe/Berlin'."
            ) from None
        for name in ("start_at", "end_at"):
            value = getattr(self, name)
            if value is not None and (
                not isinstance(value, datetime) or value.utcoffset() is None or not _EPOCH <= value < _LAST
            ):
                raise InvalidSchedule(
                    name, f"must be a time-zone-aware datetime from 1970 to 9000, got {shown(value)}."
                )
        if self.start_at and self.end_at and self.end_at <= self.start_at:
            raise InvalidSchedule("end_at", f"{self.end_at.isoformat()} is not after start_at.")
        if self.cron is not None:
            try:
                self._cron_next(self.origin - _TICK)
            except CroniterBadDateError:
                raise InvalidSchedule(
                    "cron", f"{self.cron!r} never fires (no date matches it); check its day and month fields."
                ) from None

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.tz)

    @property
    def origin(self) -> datetime:
        """The earliest instant the repeat may fire."""
        return self.start_at or self.anchor

    def upcoming(self, last: datetime | None) -> datetime | None:
        """The next instant after the last run (or the first one if it never ran)."""
        return self.next_after(last if last is not None else self.origin - _TICK)

    def next_after(self, instant: datetime) -> datetime | None:
        """The first firing instant strictly after ``instant``, or None when the repeat is over."""
        try:
            if self.every_ms is not None:
                step = timedelta(milliseconds=self.every_ms)
                base = self.origin
                candidate = base if instant < base else base + ((instant - base) // step + 1) * step
            else:
                candidate = self._cron_next(max(instant, self.origin - _TICK))
        except (OverflowError, ValueError, CroniterBadDateError):
            return None  # the next instant lies past year 9999: the repeat is over
        if self.end_at is not None and candidate > self.end_at:
            return None
        return candidate

    def due(self, last: datetime | None, now: datetime) -> tuple[datetime | None, datetime | None]:
        """Return ``(instant to fire now or None, the next instant after it or None)``.

        Applies the catch-up rule: of several missed instants only the latest fires.
        """
        upcoming = self.upcoming(last)
        if upcoming is None or upcoming > now:
            return None, upcoming
        latest = self._latest_at_or_before(min(now, self.end_at) if self.end_at else now)
        fire = max(upcoming, latest) if latest is not None else upcoming
        return fire, self.next_after(fire)

    def _latest_at_or_before(self, instant: datetime) -> datetime | None:
        if self.every_ms is not None:
            step = timedelta(milliseconds=self.every_ms)
            if instant < self.origin:
                return None
            return self.origin + ((instant - self.origin) // step) * step
        assert self.cron is not None
        it = croniter(self.cron, (instant + _TICK).astimezone(self.zone))
        previous: datetime = it.get_prev(datetime)
        earlier: datetime = it.get_prev(datetime)
        if earlier.replace(tzinfo=None) == previous.replace(tzinfo=None):
            previous = earlier  # the repeated hour: its first occurrence is the one that fires
        return previous.astimezone(UTC)

    def _cron_next(self, after: datetime) -> datetime:
        assert self.cron is not None
        local = after.astimezone(self.zone)
        it = croniter(self.cron, local)
        candidate: datetime = it.get_next(datetime)
        # The repeated hour at a fall-back: the same wall time twice fires once.
        while candidate.replace(tzinfo=None) == local.replace(tzinfo=None):
            candidate = it.get_next(datetime)
        return candidate.astimezone(UTC)

    # -- tagged JSON (never pickle) ----------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "__type__": "bridge.timetable",
            "cron": self.cron,
            "every_ms": self.every_ms,
            "tz": self.tz,
            "start_at": self.start_at.isoformat() if self.start_at else None,
            "end_at": self.end_at.isoformat() if self.end_at else None,
            "anchor": self.anchor.isoformat(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Timetable:
        return cls(
            cron=data.get("cron"),
            every_ms=data.get("every_ms"),
            tz=data.get("tz") or "UTC",
            start_at=datetime.fromisoformat(data["start_at"]) if data.get("start_at") else None,
            end_at=datetime.fromisoformat(data["end_at"]) if data.get("end_at") else None,
            anchor=datetime.fromisoformat(data["anchor"]) if data.get("anchor") else _EPOCH,
        )
