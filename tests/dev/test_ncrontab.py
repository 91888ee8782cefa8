"""The NCRONTAB parser dev/host fires timer triggers with."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from dev.host.ncrontab import CronSchedule

# 2025-01-01 is a Wednesday.
START = datetime(2025, 1, 1, 12, 0, 0)


def nexts(expression: str, start: datetime = START, count: int = 3) -> list[datetime]:
    schedule, found, t = CronSchedule.parse(expression), [], start
    for _ in range(count):
        t = schedule.next_after(t)
        found.append(t)
    return found


def test_every_second_is_strictly_after_start() -> None:
    assert nexts("* * * * * *") == [
        datetime(2025, 1, 1, 12, 0, 1),
        datetime(2025, 1, 1, 12, 0, 2),
        datetime(2025, 1, 1, 12, 0, 3),
    ]


def test_sub_second_start_rounds_to_the_next_whole_second() -> None:
    assert nexts("*/1 * * * * *", START.replace(microsecond=400_000), 1) == [
        datetime(2025, 1, 1, 12, 0, 1)
    ]


def test_steps() -> None:
    assert nexts("*/15 * * * * *") == [
        datetime(2025, 1, 1, 12, 0, 15),
        datetime(2025, 1, 1, 12, 0, 30),
        datetime(2025, 1, 1, 12, 0, 45),
    ]
    assert nexts("0 */5 * * * *") == [
        datetime(2025, 1, 1, 12, 5),
        datetime(2025, 1, 1, 12, 10),
        datetime(2025, 1, 1, 12, 15),
    ]


def test_ranges_lists_and_stepped_ranges() -> None:
    assert nexts("0 0 9-17/4 * * *") == [
        datetime(2025, 1, 1, 13),
        datetime(2025, 1, 1, 17),
        datetime(2025, 1, 2, 9),
    ]
    assert nexts("5,10 30 8 * * *", count=4) == [
        datetime(2025, 1, 2, 8, 30, 5),
        datetime(2025, 1, 2, 8, 30, 10),
        datetime(2025, 1, 3, 8, 30, 5),
        datetime(2025, 1, 3, 8, 30, 10),
    ]


def test_start_value_with_step_runs_to_the_end_of_the_range() -> None:
    assert sorted(CronSchedule.parse("10/20 * * * * *").seconds) == [10, 30, 50]


def test_day_of_week_with_seven_as_sunday() -> None:
    # 2025-01-05 is a Sunday.
    assert nexts("0 0 10 * * 0", count=1) == nexts("0 0 10 * * 7", count=1)
    assert nexts("0 0 10 * * 7", count=2) == [datetime(2025, 1, 5, 10), datetime(2025, 1, 12, 10)]


def test_weekday_range_skips_the_weekend() -> None:
    found = nexts("0 30 9 * * 1-5", count=5)
    assert [d.day for d in found] == [2, 3, 6, 7, 8]  # Thu, Fri, (weekend), Mon, Tue, Wed


def test_names_for_months_and_days() -> None:
    named = CronSchedule.parse("0 0 0 * jan-mar mon,FRI")
    numbered = CronSchedule.parse("0 0 0 * 1-3 1,5")
    assert (named.months, named.weekdays) == (numbered.months, numbered.weekdays)
    assert named.months == frozenset({1, 2, 3})
    assert named.weekdays == frozenset({1, 5})


def test_day_of_month_and_day_of_week_must_both_match() -> None:
    # NCrontab, unlike Unix cron: Friday the 13th. The next one after 2025-01-01 is June 13.
    assert nexts("0 0 0 13 * 5", count=2) == [datetime(2025, 6, 13), datetime(2026, 2, 13)]


def test_month_and_year_rollover() -> None:
    assert nexts("0 0 0 1 * *", datetime(2025, 12, 31, 23, 59, 59), 2) == [
        datetime(2026, 1, 1),
        datetime(2026, 2, 1),
    ]


def test_february_29_waits_for_a_leap_year() -> None:
    assert nexts("0 0 0 29 2 *", count=1) == [datetime(2028, 2, 29)]


def test_day_31_skips_short_months() -> None:
    assert [d.month for d in nexts("0 0 0 31 * *", count=3)] == [1, 3, 5]


def test_five_fields_mean_second_zero() -> None:
    assert nexts("*/10 * * * *", count=2) == [
        datetime(2025, 1, 1, 12, 10),
        datetime(2025, 1, 1, 12, 20),
    ]


def test_keeps_the_time_zone_of_the_start() -> None:
    start = datetime(2025, 1, 1, 12, 0, tzinfo=ZoneInfo("Europe/Paris"))
    (found,) = nexts("0 0 13 * * *", start, 1)
    assert found == datetime(2025, 1, 1, 13, tzinfo=ZoneInfo("Europe/Paris"))
    assert found.utcoffset() == start.utcoffset()


def test_matches() -> None:
    schedule = CronSchedule.parse("0 30 9 * * 1-5")
    assert schedule.matches(datetime(2025, 1, 2, 9, 30))
    assert not schedule.matches(datetime(2025, 1, 4, 9, 30))  # Saturday


def test_never_firing_schedule_says_so() -> None:
    with pytest.raises(ValueError, match="never fires"):
        CronSchedule.parse("0 0 0 30 2 *").next_after(START)


@pytest.mark.parametrize(
    "expression",
    [
        "* * * *",  # too few fields
        "* * * * * * *",  # too many
        "60 * * * * *",  # second out of range
        "* * 24 * * *",
        "* * * 0 * *",  # days start at 1
        "* * * * 13 *",
        "* * * * * 8",
        "*/0 * * * * *",  # zero step
        "5-1 * * * * *",  # backwards range
        "a * * * * *",
        "* * * * foo *",
    ],
)
def test_invalid_expressions(expression: str) -> None:
    with pytest.raises(ValueError):
        CronSchedule.parse(expression)
