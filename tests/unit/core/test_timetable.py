"""Timetable: cron in its own zone across DST, every_ms grids, bounds, catch-up, tagged JSON."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter

from bridge import InvalidSchedule
from bridge.core.timetable import Timetable
from bridge.core.validation import MAX_MS

BERLIN = ZoneInfo("Europe/Berlin")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def fires(t: Timetable, after: datetime, count: int) -> list[datetime]:
    out: list[datetime] = []
    for _ in range(count):
        nxt = t.next_after(out[-1] if out else after)
        assert nxt is not None
        out.append(nxt)
    return out


def test_cron_follows_its_own_zone_across_spring_forward():
    t = Timetable(cron="0 6 * * *", tz="Europe/Berlin")
    got = fires(t, utc(2026, 3, 27, 12), 3)
    # 06:00 Berlin is 05:00 UTC before the change (CET) and 04:00 UTC after (CEST).
    assert got == [utc(2026, 3, 28, 5), utc(2026, 3, 29, 4), utc(2026, 3, 30, 4)]
    expected = croniter("0 6 * * *", datetime(2026, 3, 27, 12, tzinfo=BERLIN))
    assert got == [expected.get_next(datetime).astimezone(UTC) for _ in range(3)]


def test_a_time_skipped_by_spring_forward_fires_right_after_the_gap():
    t = Timetable(cron="30 2 * * *", tz="Europe/Berlin")
    got = fires(t, utc(2026, 3, 27, 12), 3)
    # 02:30 does not exist on 29 March: it fires at 03:00 CEST (01:00 UTC), as croniter and cronie do.
    assert got == [utc(2026, 3, 28, 1, 30), utc(2026, 3, 29, 1), utc(2026, 3, 30, 0, 30)]


def test_a_time_repeated_by_fall_back_fires_once():
    t = Timetable(cron="30 2 * * *", tz="Europe/Berlin")
    got = fires(t, utc(2026, 10, 23, 12), 3)
    # croniter yields 02:30 twice on 25 October (CEST, then CET); cron fires it once.
    assert got == [utc(2026, 10, 24, 0, 30), utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)]
    raw = croniter("30 2 * * *", datetime(2026, 10, 23, 12, tzinfo=BERLIN))
    raw_fires = [raw.get_next(datetime).astimezone(UTC) for _ in range(4)]
    assert raw_fires[2] == utc(2026, 10, 25, 1, 30)  # the duplicate we skip
    assert got == [raw_fires[0], raw_fires[1], raw_fires[3]]


def test_catch_up_after_beat_was_down_in_the_repeated_hour_fires_the_first_occurrence():
    t = Timetable(cron="30 2 * * *", tz="Europe/Berlin")
    fire, nxt = t.due(utc(2026, 10, 24, 0, 30), now=utc(2026, 10, 25, 1, 45))
    assert (fire, nxt) == (utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30))
    assert t.due(fire, now=utc(2026, 10, 25, 1, 45)) == (None, utc(2026, 10, 26, 1, 30))


def test_cron_zone_is_independent_of_utc_times():
    ny = Timetable(cron="0 9 * * 1-5", tz="America/New_York")
    assert ny.next_after(utc(2026, 7, 3, 0)) == utc(2026, 7, 3, 13)  # 09:00 EDT on a Friday


def test_every_ms_grid_is_anchored_and_sub_second():
    anchor = utc(2026, 1, 1)
    t = Timetable(every_ms=250, anchor=anchor)
    assert fires(t, anchor, 4) == [anchor + timedelta(milliseconds=250 * k) for k in range(1, 5)]
    assert t.upcoming(None) == anchor  # the first run is due at once


def test_catch_up_fires_only_the_latest_missed_instant():
    anchor = utc(2026, 1, 1)
    t = Timetable(every_ms=1000, anchor=anchor)
    fire, nxt = t.due(anchor, now=anchor + timedelta(seconds=3600, milliseconds=400))
    assert fire == anchor + timedelta(seconds=3600)
    assert nxt == anchor + timedelta(seconds=3601)
    assert t.due(fire, now=anchor + timedelta(seconds=3600, milliseconds=500)) == (None, nxt)


def test_start_and_end_bound_a_repeat():
    start, end = utc(2026, 5, 1, 10), utc(2026, 5, 1, 10, 0, 2)
    t = Timetable(every_ms=1000, start_at=start, end_at=end, anchor=utc(2026, 1, 1))
    assert t.upcoming(None) == start
    assert t.due(None, now=start - timedelta(seconds=1)) == (None, start)
    assert fires(t, start, 2) == [start + timedelta(seconds=1), end]
    assert t.next_after(end) is None
    assert t.due(end, now=end + timedelta(hours=1)) == (None, None)
    cron = Timetable(cron="* * * * *", start_at=start, end_at=start + timedelta(minutes=2))
    assert cron.upcoming(None) == start
    assert cron.next_after(start + timedelta(minutes=2)) is None


def test_tagged_json_round_trip():
    t = Timetable(
        cron="0 6 * * *", tz="Europe/Berlin", start_at=utc(2026, 1, 1), end_at=utc(2027, 1, 1),
        anchor=utc(2025, 12, 1),
    )  # fmt: skip
    data = t.to_dict()
    assert data["__type__"] == "bridge.timetable"
    assert Timetable.from_dict(data) == t


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({}, "cron"),
        ({"cron": "0 6 * * *", "every_ms": 5}, "cron"),
        ({"cron": "not cron"}, "cron"),
        ({"cron": "0 25 * * *"}, "cron"),
        ({"every_ms": 0}, "every_ms"),
        ({"every_ms": True}, "every_ms"),
        ({"every_ms": 10, "tz": "Nowhere/Land"}, "tz"),
        ({"every_ms": 10, "start_at": datetime(2026, 1, 1)}, "start_at"),  # naive
        ({"every_ms": 10, "start_at": utc(2026, 1, 2), "end_at": utc(2026, 1, 1)}, "end_at"),
        ({"every_ms": 10, "start_at": utc(2026, 1, 1), "end_at": utc(2026, 1, 1)}, "end_at"),  # empty span
        ({"every_ms": MAX_MS + 1}, "every_ms"),  # over 10 years
        ({"every_ms": 1.5}, "every_ms"),
        ({"cron": "0 0 31 2 *"}, "cron"),  # 31 February: valid syntax, never fires
        ({"cron": "0 0 30 2 *"}, "cron"),
        ({"every_ms": 10, "start_at": utc(1969, 12, 31)}, "start_at"),  # before 1970
        ({"every_ms": 10, "end_at": utc(9001, 1, 1)}, "end_at"),  # past 9000
        ({"every_ms": 10, "start_at": "2026-01-01T00:00:00Z"}, "start_at"),  # a string, not a datetime
    ],
)
def test_invalid_timetables_name_the_field(kwargs, field):
    """Each refusal the README lists, one by one (a refusal that went missing fails here)."""
    with pytest.raises(InvalidSchedule) as excinfo:
        Timetable(**kwargs)
    assert excinfo.value.field == field
    assert len(str(excinfo.value)) > len(field) + 25, str(excinfo.value)  # it says what to do


def test_every_ms_bounds_are_inclusive_and_round_trip_through_json():
    assert Timetable(every_ms=1).every_ms == 1
    assert Timetable(every_ms=MAX_MS).every_ms == MAX_MS
    t = Timetable(every_ms=1500, anchor=utc(2026, 1, 1))
    assert Timetable.from_dict(t.to_dict()) == t  # no start or end: they stay None
    assert t.to_dict()["start_at"] is None


def test_a_repeat_is_due_at_its_instant_exactly_and_the_next_follows_it():
    t = Timetable(every_ms=1000, anchor=utc(2026, 1, 1))
    at = utc(2026, 1, 1, 0, 0, 5)
    assert t.due(at - timedelta(seconds=1), now=at) == (at, at + timedelta(seconds=1))
    assert t.next_after(at - timedelta(milliseconds=1)) == at
    assert t.next_after(utc(2025, 12, 31)) == utc(2026, 1, 1)  # before its origin: the origin itself


def test_catch_up_stops_at_end_at_and_cron_instants_are_utc():
    start, end = utc(2026, 5, 1, 10), utc(2026, 5, 1, 10, 0, 10)
    t = Timetable(every_ms=1000, start_at=start, end_at=end)
    # Beat was down past the end: the latest instant within the window fires, then nothing.
    assert t.due(start, now=end + timedelta(hours=1)) == (end, None)
    cron = Timetable(cron="30 6 * * *", tz="Europe/Berlin", anchor=utc(2026, 1, 1))
    fired, following = cron.due(None, now=utc(2026, 1, 3, 12))
    assert fired == utc(2026, 1, 3, 5, 30)
    assert fired.tzinfo is UTC
    assert following == utc(2026, 1, 4, 5, 30)
    assert following.tzinfo is UTC
