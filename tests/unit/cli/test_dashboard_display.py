"""The dashboard's display arithmetic: relative times, UTC times, the chart's points, the pager."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import pytest

from bridge.cli.dashboard.display import Pager, chart, offset_of, relative, shown, when, when_dt

NOW = 1_700_000_000_000  # ms since the epoch
S, MIN, H, DAY = 1000, 60_000, 3_600_000, 86_400_000


@pytest.mark.parametrize(
    ("due", "text"),
    [
        (NOW, "in 0 s"),  # due this instant
        (NOW + 12 * S, "in 12 s"),
        (NOW + 89 * S, "in 89 s"),
        (NOW + 90 * S, "in 2 min"),  # 1.5 min: minutes from 90 s on, never "in 1 min" for 90 s
        (NOW + 3 * MIN, "in 3 min"),
        (NOW + 89 * MIN, "in 89 min"),
        (NOW + 90 * MIN, "in 2 h"),
        (NOW + 35 * H, "in 35 h"),
        (NOW + 36 * H, "in 2 days"),
        (NOW + 10 * DAY, "in 10 days"),
        (NOW - 12 * S, "12 s ago"),  # past due: a delayed job the promoter has not moved yet
        (NOW - 3 * MIN, "3 min ago"),
        (NOW - 5 * H, "5 h ago"),
        (NOW - 400, "0 s ago"),
    ],
)
def test_relative_time_ahead_and_past_with_its_unit(due: int, text: str) -> None:
    assert relative(due, NOW) == text


def test_times_are_shown_in_utc_and_none_as_a_dash() -> None:
    assert when(NOW) == "2023-11-14 22:13:20 UTC"
    assert when(NOW + 999) == "2023-11-14 22:13:20 UTC"  # whole seconds
    assert when(0) == "1970-01-01 00:00:00 UTC"
    assert when(None) == "-"
    berlin_evening = datetime(2024, 7, 1, 23, 30, tzinfo=timezone(timedelta(hours=2)))
    assert when_dt(berlin_evening) == "2024-07-01 21:30:00 UTC"
    assert when_dt(None) == "-"


def test_shown_masks_passwords_and_shows_none_as_empty() -> None:
    assert shown("redis://app:hunter2@db:6379/0") == "redis://app:***@db:6379/0"
    assert shown(None) == ""
    assert shown(42) == "42"


@dataclass(frozen=True)
class Minute:
    added: int
    done: int
    failed: int


def _points(text: str) -> list[tuple[float, float]]:
    return [(float(x), float(y)) for x, y in (p.split(",") for p in text.split())]


def test_chart_scales_the_busiest_minute_to_the_top_and_spreads_minutes_across() -> None:
    drawn = chart([Minute(0, 0, 0), Minute(10, 4, 1), Minute(5, 8, 0)], width=600, height=120)
    assert drawn["peak"] == 10
    assert drawn["totals"] == {"added": 15, "done": 12, "failed": 1}
    assert _points(drawn["series"]["added"]) == [(0, 120), (300, 0), (600, 60)]
    assert _points(drawn["series"]["done"]) == [(0, 120), (300, 72), (600, 24)]
    assert _points(drawn["series"]["failed"]) == [(0, 120), (300, 108), (600, 120)]


def test_chart_of_an_idle_hour_is_flat_at_the_bottom() -> None:
    drawn = chart([Minute(0, 0, 0)] * 60, width=600, height=120)
    assert drawn["peak"] == 1  # no division by zero
    assert drawn["totals"] == {"added": 0, "done": 0, "failed": 0}
    points = _points(drawn["series"]["done"])
    assert len(points) == 60
    assert {y for _, y in points} == {120}
    assert (points[0][0], points[-1][0]) == (0, 600)


def test_chart_of_one_minute_or_none_draws_without_error() -> None:
    one = chart([Minute(3, 0, 0)], width=600, height=120)
    assert _points(one["series"]["added"]) == [(0, 0)]
    empty = chart([])
    assert empty["series"] == {"added": "", "done": "", "failed": ""}
    assert empty["totals"] == {"added": 0, "done": 0, "failed": 0}


@pytest.mark.parametrize(
    ("text", "offset"),
    [(None, 0), ("", 0), ("0", 0), ("50", 50), ("-5", 0), ("ten", 0), ("1e3", 0), (" 7 ", 7)],
)
def test_offset_parameter_is_a_whole_number_from_zero(text: str | None, offset: int) -> None:
    assert offset_of(text) == offset


def test_pager_of_nothing_says_none_and_links_nowhere() -> None:
    empty = Pager(total=0, offset=0, size=50)
    assert (empty.label, empty.prev_offset, empty.next_offset) == ("none", None, None)


def test_pager_first_middle_and_last_page() -> None:
    first = Pager(total=120, offset=0, size=50)
    assert (first.label, first.prev_offset, first.next_offset) == ("1-50 of 120", None, 50)
    middle = Pager(total=120, offset=50, size=50)
    assert (middle.label, middle.prev_offset, middle.next_offset) == ("51-100 of 120", 0, 100)
    last = Pager(total=120, offset=100, size=50)
    assert (last.label, last.prev_offset, last.next_offset) == ("101-120 of 120", 50, None)


def test_pager_when_the_last_page_is_exactly_full() -> None:
    last = Pager(total=100, offset=50, size=50)
    assert (last.label, last.next_offset) == ("51-100 of 100", None)
    single = Pager(total=50, offset=0, size=50)
    assert (single.label, single.prev_offset, single.next_offset) == ("1-50 of 50", None, None)


def test_pager_past_the_end_says_so_and_leads_back_to_the_last_page() -> None:
    # An old link after the list shrank (letters purged, jobs promoted): no "101-5 of 5".
    stale = Pager(total=5, offset=100, size=50)
    assert (stale.label, stale.prev_offset, stale.next_offset) == ("past the end (5 in all)", 0, None)
    stale = Pager(total=120, offset=500, size=50)
    assert (stale.prev_offset, stale.next_offset) == (100, None)
    emptied = Pager(total=0, offset=50, size=50)
    assert (emptied.label, emptied.prev_offset) == ("none", 0)


def test_pager_from_an_offset_off_the_page_grid() -> None:
    odd = Pager(total=120, offset=30, size=50)
    assert (odd.label, odd.prev_offset, odd.next_offset) == ("31-80 of 120", 0, 80)
