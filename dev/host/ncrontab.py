"""A small NCRONTAB parser: the schedule format of Azure Functions timer triggers.

Six fields, `second minute hour day month day-of-week` (five are accepted too, with second 0,
as NCrontab does). Each field takes `*`, `*/n`, `a`, `a-b`, `a-b/n`, `a/n` and comma lists;
months and days of week also take English names (`jan`, `mon`). Day of week runs 0-6 from
Sunday, and 7 is Sunday too.

Like NCrontab (and unlike Unix cron), a restricted day of month and a restricted day of week
must BOTH match: `0 0 0 13 * 5` is Friday the 13th, not every 13th and every Friday.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from datetime import datetime, timedelta

MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
# name, lowest, highest, names (first name stands for `lowest`)
FIELDS: tuple[tuple[str, int, int, tuple[str, ...]], ...] = (
    ("second", 0, 59, ()),
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day", 1, 31, ()),
    ("month", 1, 12, MONTHS),
    ("day of week", 0, 7, DAYS),
)
# Past this horizon a schedule such as `0 0 0 30 2 *` never fires; say so instead of looping.
SEARCH_YEARS = 5


@dataclass(frozen=True)
class CronSchedule:
    seconds: frozenset[int]
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    expression: str = ""

    @classmethod
    def parse(cls, expression: str) -> CronSchedule:
        parts = expression.split()
        if len(parts) == 5:
            parts = ["0", *parts]
        if len(parts) != 6:
            raise ValueError(
                f"NCRONTAB '{expression}' needs six fields "
                "(second minute hour day month day-of-week)"
            )
        sets = [parse_field(text, field) for text, field in zip(parts, FIELDS, strict=True)]
        weekdays = frozenset(d % 7 for d in sets[5])  # 7 is Sunday as well
        return cls(*sets[:5], weekdays, expression)

    def matches(self, when: datetime) -> bool:
        return (
            when.second in self.seconds
            and when.minute in self.minutes
            and when.hour in self.hours
            and self._day_matches(when)
        )

    def next_after(self, when: datetime) -> datetime:
        """The first matching whole second strictly after `when` (same tzinfo, wall clock)."""
        t = when.replace(microsecond=0) + timedelta(seconds=1)
        limit = t.year + SEARCH_YEARS
        while t.year <= limit:
            if not self._day_matches(t):
                t = _next_day(t)
            elif t.hour not in self.hours:
                t = t.replace(minute=0, second=0) + timedelta(hours=1)
            elif t.minute not in self.minutes:
                t = t.replace(second=0) + timedelta(minutes=1)
            elif t.second not in self.seconds:
                t += timedelta(seconds=1)
            else:
                return t
        raise ValueError(f"NCRONTAB '{self.expression}' never fires")

    def _day_matches(self, when: datetime) -> bool:
        cron_weekday = (when.weekday() + 1) % 7  # Python counts from Monday, cron from Sunday
        return when.month in self.months and when.day in self.days and cron_weekday in self.weekdays


def _next_day(t: datetime) -> datetime:
    return t.replace(hour=0, minute=0, second=0) + timedelta(days=1)


def parse_field(text: str, field: tuple[str, int, int, tuple[str, ...]]) -> frozenset[int]:
    name, low, high, names = field
    values: set[int] = set()
    for part in text.split(","):
        values.update(_parse_part(part.strip().lower(), name, low, high, names))
    return frozenset(values)


def _parse_part(part: str, name: str, low: int, high: int, names: tuple[str, ...]) -> range:
    base, _, step_text = part.partition("/")
    step = _number(step_text, name) if step_text else 1
    if step < 1:
        raise ValueError(f"{name}: step must be at least 1 in '{part}'")
    if base == "*":
        start, end = low, high
    elif "-" in base:
        first, _, last = base.partition("-")
        start, end = _value(first, name, low, high, names), _value(last, name, low, high, names)
    else:
        start = _value(base, name, low, high, names)
        end = high if step_text else start  # `a/n` runs from a to the end of the range
    if start > end:
        raise ValueError(f"{name}: range '{part}' runs backwards")
    return range(start, end + 1, step)


def _value(text: str, name: str, low: int, high: int, names: tuple[str, ...]) -> int:
    if text[:3] in names and text.isalpha():
        return low + names.index(text[:3])
    value = _number(text, name)
    if not low <= value <= high:
        raise ValueError(f"{name}: {value} is outside {low}-{high}")
    return value


def _number(text: str, name: str) -> int:
    if not text.isdigit():
        raise ValueError(f"{name}: '{text}' is not a number")
    return int(text)


def main(argv: list[str] | None = None) -> None:
    """Print the next few occurrences: `python -m dev.host.ncrontab '0 */5 * * * *'`."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("expression")
    parser.add_argument("-n", type=int, default=5)
    args = parser.parse_args(argv)
    schedule, t = CronSchedule.parse(args.expression), datetime.now().astimezone()
    for _ in range(args.n):
        t = schedule.next_after(t)
        print(t.isoformat())


if __name__ == "__main__":
    main()
