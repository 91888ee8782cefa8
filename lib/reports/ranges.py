"""What a report covers: days (clinic-local calendar days), endpoints, a department; and where a
page of it resumes (the continuation token)."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, timedelta

from lib.endpoints.models import LINE, SLUG
from lib.web.errors import AppError

PRESETS = {"7d": 7, "30d": 30, "90d": 90}
DEFAULT_PRESET = "30d"
MAX_DAYS = 400  # a year and a bit: a longer export is several reports

DEPARTMENT = LINE  # as the endpoint's organization label, at most 100 characters
DEPARTMENT_MAX = 100
DAY = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
# base64url of `v1|{day}|{endpoint}|{row key}`: resume after that row of that partition.
CONTINUATION = r"^[A-Za-z0-9_-]{16,400}$"
_ROW_KEY = re.compile(r"^[0-9]{8}T[0-9]{6}-[A-Za-z0-9_-]{8,128}$")


@dataclass(frozen=True)
class Range:
    first: date
    last: date  # inclusive
    endpoint: str | None = None
    department: str | None = None

    def days(self) -> Iterator[date]:
        for n in range((self.last - self.first).days + 1):
            yield self.first + timedelta(days=n)


@dataclass(frozen=True)
class Position:
    """Resume after `row_key` in the partition of (`day`, `endpoint`)."""

    day: date
    endpoint: str
    row_key: str

    def token(self) -> str:
        text = f"v1|{self.day.isoformat()}|{self.endpoint}|{self.row_key}"
        return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")

    @classmethod
    def parse(cls, token: str, scope: Range) -> Position:
        """The position in `token`, which must lie in `scope`: the rows resume in the token's
        partition, so a token of another report's days or endpoint would read outside this one."""
        try:
            if not re.fullmatch(CONTINUATION, token):
                raise ValueError(token)
            text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
            version, day, endpoint, row_key = text.split("|")
            if version != "v1" or not re.fullmatch(SLUG, endpoint) or not _ROW_KEY.match(row_key):
                raise ValueError(text)
            found = cls(date.fromisoformat(day), endpoint, row_key)
        except (ValueError, UnicodeDecodeError, binascii.Error):
            raise AppError("RPT-BAD-CONTINUATION") from None
        if not scope.first <= found.day <= scope.last or scope.endpoint not in (None, endpoint):
            raise AppError("RPT-BAD-CONTINUATION", "The token is from a report of other days "
                           "or another endpoint.")  # fmt: skip
        return found


def parse_range(query: Mapping[str, str], today: date) -> Range:
    """`from` / `to` (dates, inclusive), or `preset` (7d, 30d, 90d: the days up to today)."""
    preset, start, end = query.get("preset"), query.get("from"), query.get("to")
    if preset is not None and (start is not None or end is not None):
        raise AppError("RPT-BAD-RANGE", "Give a preset or from / to, not both.")
    if preset is not None and preset not in PRESETS:
        raise AppError("CFG-BAD-QUERY", "preset must be one of 7d, 30d, 90d.")
    try:
        if start is None and end is None:
            days = PRESETS[preset or DEFAULT_PRESET]
            first, last = today - timedelta(days=days - 1), today
        else:
            last = _day(end, "to") if end is not None else today
            first = (
                _day(start, "from")
                if start is not None
                else last - timedelta(days=PRESETS["30d"] - 1)
            )
    except OverflowError:  # a `to` in the first days of year 1
        raise AppError("RPT-BAD-RANGE", "The range starts before the calendar does.") from None
    if first > last:
        raise AppError("RPT-BAD-RANGE", "from is after to.")
    if (last - first).days + 1 > MAX_DAYS:
        raise AppError("RPT-BAD-RANGE", f"A report covers at most {MAX_DAYS} days.")
    endpoint = _matching(query.get("endpoint"), "endpoint", SLUG)
    department = _matching(query.get("department"), "department", DEPARTMENT)
    return Range(first, last, endpoint, department)


def _day(value: str, name: str) -> date:
    try:
        if not re.fullmatch(DAY, value):
            raise ValueError(value)
        return date.fromisoformat(value)
    except ValueError:
        raise AppError("CFG-BAD-QUERY", f"{name} must be a date, yyyy-mm-dd.") from None


def _matching(value: str | None, name: str, pattern: str) -> str | None:
    if value is None:
        return None
    if not re.fullmatch(pattern, value) or len(value) > DEPARTMENT_MAX:
        raise AppError("CFG-BAD-QUERY", f"{name} is not in the form the API documentation gives.")
    return value
