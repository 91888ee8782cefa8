"""The daily summary: per day and department, folded from the visits' rows as they stream by.

Computed at read time from the day partitions (no aggregate table to keep in step): the fold
holds one small record per (day, department) and the lobby-wait histogram, so its memory does
not grow with the number of visits (bench/reports.py measures it).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

# The lobby-wait histogram's buckets: upper bounds in minutes (the last is open).
WAIT_BUCKETS = ((1, "under 1 min"), (5, "1-5 min"), (10, "5-10 min"), (15, "10-15 min"),
                (30, "15-30 min"), (None, "30 min or more"))  # fmt: skip


@dataclass
class Tally:
    visits: int = 0
    completed: int = 0
    no_shows: int = 0
    cancelled: int = 0
    open: int = 0
    duration_total: float = 0.0
    durations: int = 0
    wait_total: float = 0.0
    waits: int = 0
    texts_sent: int = 0
    measured: int = 0
    poor: int = 0

    def add(self, view: dict[str, Any]) -> None:
        self.visits += 1
        kind = view["status"]
        if kind == "completed":
            self.completed += 1
            self.wait_total += view["lobby_wait_seconds"] or 0.0
            self.waits += 1
        elif kind == "no-show":
            self.no_shows += 1
        elif kind == "cancelled":
            self.cancelled += 1
        else:
            self.open += 1
        if view["duration_seconds"] is not None:
            self.duration_total += view["duration_seconds"]
            self.durations += 1
        self.texts_sent += view["texts_sent"]
        if view["call_quality"] != "unmeasured":
            self.measured += 1
            self.poor += view["call_quality"] == "poor"

    def public(self) -> dict[str, Any]:
        decided = self.completed + self.no_shows
        return {
            "visits": self.visits,
            "completed": self.completed,
            "no_shows": self.no_shows,
            "cancelled": self.cancelled,
            "open": self.open,
            "average_duration_seconds": _avg(self.duration_total, self.durations),
            "average_lobby_wait_seconds": _avg(self.wait_total, self.waits),
            "no_show_rate": round(self.no_shows / decided, 4) if decided else None,
            "texts_sent": self.texts_sent,
            "measured_calls": self.measured,
            "poor_calls": self.poor,
            "poor_call_share": round(self.poor / self.measured, 4) if self.measured else None,
        }


def _avg(total: float, count: int) -> float | None:
    return round(total / count, 1) if count else None


@dataclass
class Summary:
    groups: dict[tuple[str, str], Tally] = field(default_factory=dict)
    total: Tally = field(default_factory=Tally)
    waits: list[int] = field(default_factory=lambda: [0] * len(WAIT_BUCKETS))

    def add(self, view: dict[str, Any]) -> None:
        key = (view["day"], view["department"] or "")
        self.groups.setdefault(key, Tally()).add(view)
        self.total.add(view)
        if view["status"] == "completed":
            self.waits[_bucket(view["lobby_wait_seconds"] or 0.0)] += 1

    def public(self) -> dict[str, Any]:
        rows = [
            {"day": day, "department": dept or None, **tally.public()}
            for (day, dept), tally in sorted(self.groups.items())
        ]
        histogram = [
            {"bucket": label, "visits": n}
            for (_, label), n in zip(WAIT_BUCKETS, self.waits, strict=True)
        ]
        return {"items": rows, "total": self.total.public(), "lobby_wait": histogram}


def _bucket(seconds: float) -> int:
    minutes = seconds / 60
    return next(i for i, (bound, _) in enumerate(WAIT_BUCKETS) if bound is None or minutes < bound)


def summarize(views: Iterable[dict[str, Any]]) -> Summary:
    summary = Summary()
    for view in views:
        summary.add(view)
    return summary
