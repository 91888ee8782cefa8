"""Reading the report table: the visits of a range, page by page or all as a stream, each row
with its columns (organizer resolved, call judged, appointment reference for admins only).

Memory is one page of rows (up to STREAM_PAGE entities a round trip) and the organizer cache,
whatever the range holds: rows are read partition after partition and handed on as they come.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from lib.reports.ranges import Position, Range
from lib.reports.rows import REPORTS, VisitReport, partition
from lib.reports.verdicts import ThresholdFields, judge
from lib.storage import TableStore
from lib.visits.sealed import WRITEBACK_WINDOW

log = logging.getLogger(__name__)

# Entities per round trip when a report streams (the CSV, the summary): Table Storage's most, so
# a 90-day CSV of 100,000 visits is 100 round trips, not 1,000; memory stays one such page.
STREAM_PAGE = 1000
# A visit nobody got into is a no-show once its call ended, its day is over, or this long after
# its scheduled start; until then it is "open".
NO_SHOW_AFTER = timedelta(hours=1)

# A sealed appointment reference is kept WRITEBACK_WINDOW after the visit's end: older visits
# are not even looked up (an admin's 90-day CSV would otherwise read one sealed row per visit).
# The day of margin covers a visit that ran past its scheduled end.
REFERENCE_KEPT = WRITEBACK_WINDOW + timedelta(days=1)

# Looks up a directory user by Entra object id: (display name, email) or None.
UserLookup = Callable[[str], "tuple[str | None, str | None] | None"]
# Opens a visit's sealed appointment reference (None: not kept any more).
ReferenceOpener = Callable[[str], "str | None"]


class Organizers:
    """One report's organizer names: each object id asked of Graph once per report, never stored.
    A directory that fails answers nothing for the rest of the report (the columns stay empty)."""

    def __init__(self, lookup: UserLookup | None) -> None:
        self._lookup = lookup
        self._seen: dict[str, tuple[str | None, str | None]] = {}

    def __call__(self, oid: str | None) -> tuple[str | None, str | None]:
        if not oid or self._lookup is None:
            return (None, None)
        if oid not in self._seen:
            try:
                self._seen[oid] = self._lookup(oid) or (None, None)
            except Exception as exc:  # Graph down: the report still comes, without names
                log.warning("organizer lookup failed", extra={"error": type(exc).__name__})
                self._lookup = None
                return (None, None)
        return self._seen[oid]


def status(row: VisitReport, now: datetime) -> str:
    """completed (the patient got in), no-show (never did), cancelled, or open (not yet)."""
    if row.patient_admitted:
        return "completed"
    if row.cancelled:
        return "cancelled"
    today = now.astimezone(ZoneInfo(row.time_zone)).date().isoformat()
    late = row.scheduled_at is not None and row.scheduled_at + NO_SHOW_AFTER < now
    return "no-show" if row.call_ended or row.day < today or late else "open"


def duration_seconds(row: VisitReport) -> float | None:
    if row.started_at is None or row.ended_at is None:
        return None
    return max((row.ended_at - row.started_at).total_seconds(), 0.0)


@dataclass
class Reader:
    """What one report request reads with: who may see references, the thresholds, now."""

    limits: ThresholdFields
    organizers: Organizers
    reference: ReferenceOpener | None  # None: not an admin, the column stays empty
    now: datetime

    def _reference(self, row: VisitReport) -> str | None:
        if self.reference is None or not _may_be_kept(row, self.now):
            return None
        return self.reference(row.visit_key)

    def view(self, row: VisitReport) -> dict[str, Any]:
        zone = ZoneInfo(row.time_zone)
        judged = judge(row, self.limits)
        name, email = self.organizers(row.organizer_oid)
        local = row.started_at.astimezone(zone) if row.started_at else None
        return {
            "visit": row.visit_key,
            "endpoint": row.endpoint_id,
            "department": row.department,
            "day": row.day,
            "time_zone": row.time_zone,
            "scheduled_at": _iso(row.scheduled_at),
            "start_utc": _iso(row.started_at),
            "start_local": local.isoformat() if local else None,
            "end_utc": _iso(row.ended_at),
            "duration_seconds": _round(duration_seconds(row)),
            "organizer_oid": row.organizer_oid,
            "organizer_name": name,
            "organizer_email": email,
            "attendees": row.max_present,
            "lobby_wait_seconds": _round(row.lobby_wait_seconds),
            "status": status(row, self.now),
            "texts_sent": row.texts_sent,
            "appointment_reference": self._reference(row),
            "call_quality": judged.verdict,
            "poor_streams": list(judged.poor_streams),
            "packet_loss_avg": _round(judged.avg_loss, 4),
            "packet_loss_max": _round(judged.max_loss, 4),
            "jitter_ms_avg": _round(judged.avg_jitter),
            "jitter_ms_max": _round(judged.max_jitter),
            "round_trip_ms_avg": _round(judged.avg_rtt),
            "round_trip_ms_max": _round(judged.max_rtt),
        }


def _may_be_kept(row: VisitReport, now: datetime) -> bool:
    latest = max((t for t in (row.ended_at, row.scheduled_at) if t is not None), default=None)
    return latest is None or latest + REFERENCE_KEPT > now


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z") if moment else None


def _round(value: float | None, places: int = 1) -> float | None:
    return round(value, places) if value is not None else None


class ReportRows:
    """The rows of a range, in (day, endpoint, start) order.

    One PartitionKey range query from the first day to the last (partitions are
    `{day}|{endpoint}`), an endpoint and a department as filters the service applies: a few
    round trips of up to 1000 rows, however many days or endpoints, rather than one query per
    day and endpoint (400 of them for a long range of one endpoint)."""

    def __init__(self, store: TableStore) -> None:
        self._table = store.table(REPORTS, VisitReport)

    def rows(
        self, scope: Range, after: Position | None = None, page_size: int = STREAM_PAGE
    ) -> Iterator[VisitReport]:
        upper = f"{scope.last.isoformat()}|~"  # "~" sorts after every endpoint id
        lower = f"{scope.first.isoformat()}|"
        clause = "PartitionKey gt @lo and PartitionKey lt @hi"
        if after is not None:
            resume = partition(after.endpoint, after.day)
            yield from self._query(
                "PartitionKey eq @pk", {"pk": resume}, scope, after.row_key, page_size
            )
            lower = max(resume, lower)
        yield from self._query(clause, {"lo": lower, "hi": upper}, scope, None, page_size)

    def _query(
        self, clause: str, params: dict[str, Any], scope: Range, after: str | None, page_size: int
    ) -> Iterator[VisitReport]:
        clauses, params = [clause], dict(params)
        if scope.endpoint is not None:
            clauses.append("endpoint_id eq @endpoint")
            params["endpoint"] = scope.endpoint
        if scope.department is not None:
            clauses.append("department eq @department")
            params["department"] = scope.department
        if after is not None:
            clauses.append("RowKey gt @after")
            params["after"] = after
        return self._table.query(" and ".join(clauses), params, page_size=page_size)

    def page(
        self, scope: Range, size: int, after: Position | None = None
    ) -> tuple[list[VisitReport], Position | None]:
        """Up to `size` rows and where the next page starts (None: this was the last)."""
        found: list[VisitReport] = []
        stream = self.rows(scope, after, min(size + 1, STREAM_PAGE))  # a page, and one to peek
        for row in stream:
            if len(found) == size:  # one more exists: the next page starts after the last
                last = found[-1]
                return found, Position(date.fromisoformat(last.day), last.endpoint_id, last.row_key)
            found.append(row)
        return found, None


class Reports:
    """The reports API's and the portal's one way in (lib/admin/reports_api.py, the portal)."""

    def __init__(
        self,
        rows: ReportRows,
        thresholds: Callable[[], ThresholdFields],
        lookup: UserLookup | None,
        reference: ReferenceOpener,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.rows = rows
        self._thresholds, self._lookup, self._reference, self._now = (
            thresholds, lookup, reference, now,
        )  # fmt: skip

    def today(self) -> date:
        return self._now().astimezone(UTC).date()

    def reader(self, *, admin: bool, names: bool = True) -> Reader:
        return Reader(
            limits=self._thresholds(),
            organizers=Organizers(self._lookup if names else None),
            reference=self._safe_reference if admin else None,
            now=self._now(),
        )

    def _safe_reference(self, visit_key: str) -> str | None:
        try:
            return self._reference(visit_key)
        except Exception as exc:  # a value that does not open is shown as not kept
            log.warning("appointment reference not opened", extra={"error": type(exc).__name__})
            return None

    def page(
        self, scope: Range, size: int, after: Position | None, *, admin: bool
    ) -> tuple[list[dict[str, Any]], str | None]:
        found, nxt = self.rows.page(scope, size, after)
        reader = self.reader(admin=admin)
        return [reader.view(r) for r in found], nxt.token() if nxt else None

    def views(self, scope: Range, *, admin: bool, names: bool = True) -> Iterator[dict[str, Any]]:
        reader = self.reader(admin=admin, names=names)
        return (reader.view(r) for r in self.rows.rows(scope))

    def csv(self, scope: Range, *, admin: bool) -> Iterator[bytes]:
        from lib.reports.export import csv_chunks

        return csv_chunks(self.views(scope, admin=admin))

    def summary(self, scope: Range) -> dict[str, Any]:
        from lib.reports.summary import summarize

        found = summarize(self.views(scope, admin=False, names=False)).public()
        return {"from": scope.first.isoformat(), "to": scope.last.isoformat(), **found}
