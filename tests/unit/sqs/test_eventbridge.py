"""Timetables as EventBridge Scheduler expressions: what it can take, and clear refusals of the rest."""

from __future__ import annotations

import pytest

from bridge import InvalidSchedule
from bridge.core.timetable import Timetable
from bridge.sqs.eventbridge import eventbridge_expression


@pytest.mark.parametrize(
    ("cron", "expression"),
    [
        ("0 6 * * *", "cron(0 6 * * ? *)"),
        ("*/15 * * * 1-5", "cron(0/15 * ? * MON-FRI *)"),  # Unix 1-5 is Monday to Friday
        ("0 0 1 * *", "cron(0 0 1 * ? *)"),
        ("30 2 * * 0,6", "cron(30 2 ? * SUN,SAT *)"),
        ("0 9 * * 7", "cron(0 9 ? * SUN *)"),  # 7 is Sunday too
        ("0 0 * * */2", "cron(0 0 ? * 1/2 *)"),  # Sun, Tue, Thu, Sat in both numberings
        ("0 0 */2 * *", "cron(0 0 1/2 * ? *)"),
    ],
)
def test_unix_cron_becomes_eventbridge_cron_with_the_same_days(cron: str, expression: str) -> None:
    assert eventbridge_expression(Timetable(cron=cron)) == expression


@pytest.mark.parametrize(
    ("every_ms", "expression"), [(60_000, "rate(1 minute)"), (300_000, "rate(5 minutes)")]
)
def test_whole_minutes_become_a_rate(every_ms: int, expression: str) -> None:
    assert eventbridge_expression(Timetable(every_ms=every_ms)) == expression


@pytest.mark.parametrize(
    ("timetable", "field", "says"),
    [
        (Timetable(every_ms=30_000), "every_ms", "at least one (60000 ms)"),
        (Timetable(every_ms=90_000), "every_ms", "whole minutes"),
        (Timetable(cron="0 0 1 * 1"), "cron", "both day of month and day of week"),
    ],
)
def test_what_eventbridge_cannot_fire_is_refused_naming_the_field_and_the_way_out(
    timetable: Timetable, field: str, says: str
) -> None:
    with pytest.raises(InvalidSchedule) as refused:
        eventbridge_expression(timetable)
    assert refused.value.field == field
    assert says in str(refused.value)
    assert "JOBS_SCHEDULER=beat" in str(refused.value)
