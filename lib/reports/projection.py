"""The report projection: a visit-timeline listener that writes the visit's report row.

Called after every applied event (duplicates included, lib/visits/timeline.py) and after every
applied scheduling message (a reschedule moves the day), it writes what the state and the visit
say *now*, never a delta: running it twice writes the same row. Order of writes, so that a crash
anywhere leaves nothing a redelivery does not mend: the new row, then the pointer, then the old
row's delete (a redelivery finds the pointer still old, writes the same row, and deletes again).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from lib.reports.rows import POINTER, REPORTS, ReportPointer, Stream, VisitReport, partition
from lib.reports.rows import row_key as report_row_key
from lib.sms.ledger import Ledger
from lib.storage import ConcurrencyConflict, StorageUnavailable, TableStore
from lib.visits.events import VisitState
from lib.visits.quality import CallQuality
from lib.visits.store import VISITS, Visit, VisitRows, VisitStore
from lib.visits.timeline import Applied

log = logging.getLogger(__name__)

# Ledger states of a text that left for the patient (Communication Services took it).
SENT = frozenset({"sent", "delivered", "undelivered"})
DEFAULT_ZONE = "UTC"
MAX_ROUNDS = 8  # as the timeline's: one visit has a handful of writers at most
ZONE_TTL = 60.0  # seconds a clinic's zone is kept (a changed zone shows within a minute)


class ReportProjection:
    def __init__(
        self,
        store: TableStore,
        visits: VisitStore,
        ledger: Ledger,
        zone_of: Callable[[str], str],
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._reports = store.table(REPORTS, VisitReport)
        self._pointers = store.table(VISITS, ReportPointer)
        self._visits, self._ledger = visits, ledger
        self._zone_of, self._now = zone_of, now
        self._zones: dict[str, tuple[str, float]] = {}  # endpoint -> (zone, when read)

    def __call__(self, applied: Applied) -> None:
        """The timeline listener: its first round builds from what the apply read and wrote."""
        self.refresh(applied.event.visit_key, applied)

    def refresh(self, visit_key: str, applied: Applied | None = None) -> VisitReport | None:
        """Write the visit's row as it stands (None: no such visit, nothing written).

        Several workers may refresh one visit at once (a queue batch holds several of its
        events). Each round writes the row, then moves the pointer under its ETag (so the moves
        are one at a time), then reads the visit's partition again: if its state or visit row
        changed since the round's build, it builds again. A row it wrote at a place the pointer
        no longer names is deleted at the end, so at most one row per visit stays. One partition
        read stands for the visit, its state, the pointer and call quality, each time.
        """
        if applied is not None:
            rows, state, state_etag = applied.rows, applied.state, applied.state_etag
        else:
            rows = self._visits.rows(visit_key)
            state, state_etag = rows.state(), _etag(rows)
        written: set[tuple[str, str]] = set()
        for _ in range(MAX_ROUNDS):
            visit = rows.visit
            if visit is None:
                return None
            row = self.build(visit, state, rows.get(CallQuality, "quality"))
            where = (row.partition_key, row.row_key)
            pointer = rows.get(ReportPointer, POINTER)
            self._reports.upsert(row)
            written.add(where)
            try:
                self._point(visit_key, where, pointer)
            except ConcurrencyConflict:
                # another worker moved it meanwhile: build again from what is stored
                rows = self._visits.rows(visit_key)
                state, state_etag = rows.state(), _etag(rows)
                continue
            if pointer is not None and (pointer.report_partition, pointer.report_row) != where:
                self._reports.delete(pointer.report_partition, pointer.report_row)
                log.info("report row moved", extra={"visit": visit_key})
            rows = self._visits.rows(visit_key)
            current = rows.visit
            if _etag(rows) == state_etag and current and current.etag == visit.etag:
                break
            state, state_etag = rows.state(), _etag(rows)
        else:
            raise StorageUnavailable(f"report row still contended after {MAX_ROUNDS} rounds")
        for stale in written - {where}:
            self._reports.delete(*stale)
        return row

    def _point(self, visit_key: str, where: tuple[str, str], pointer: ReportPointer | None) -> None:
        """The pointer names `where` now, only if unchanged since read (ConcurrencyConflict)."""
        row = ReportPointer(
            partition_key=visit_key, row_key=POINTER,
            report_partition=where[0], report_row=where[1],
        )  # fmt: skip
        if pointer is None:
            if not self._pointers.create(row).created:
                raise ConcurrencyConflict("report pointer created meanwhile")
            return
        self._pointers.update(row, etag=pointer.etag)

    def build(self, visit: Visit, state: VisitState, quality: CallQuality | None) -> VisitReport:
        zone = self._zone(visit.endpoint_id)
        anchor = state.both_in_at or visit.start or state.last_at or visit.created_at
        anchor = anchor.astimezone(UTC)
        day = anchor.astimezone(ZoneInfo(zone)).date()
        texts = sum(1 for t in self._ledger.for_visit(visit.key) if t.state in SENT)
        return VisitReport(
            partition_key=partition(visit.endpoint_id, day),
            row_key=report_row_key(anchor, visit.key),
            endpoint_id=visit.endpoint_id,
            visit_key=visit.key,
            department=visit.department,
            time_zone=zone,
            scheduled_at=visit.start,
            started_at=state.both_in_at,
            ended_at=_ended(state),
            organizer_oid=visit.organizer_oid or None,
            max_present=state.max_present,
            lobby_wait_seconds=round(state.lobby_wait_seconds, 3),
            patient_admitted=state.admitted_at is not None,
            call_ended=state.ended_at is not None,
            cancelled=visit.cancelled_at is not None,
            texts_sent=texts,
            quality_measured=quality is not None,
            streams=_streams(quality),
            updated_at=self._now(),
        )

    def _zone(self, endpoint_id: str) -> str:
        """The clinic's zone (the endpoint's text settings); UTC for an endpoint since removed.
        Kept ZONE_TTL per endpoint: every event of every visit asks, and it seldom changes."""
        now = time.monotonic()
        cached = self._zones.get(endpoint_id)
        if cached is not None and now - cached[1] < ZONE_TTL:
            return cached[0]
        try:
            zone = self._zone_of(endpoint_id)
        except Exception:  # a deleted endpoint still has its visits reported
            zone = DEFAULT_ZONE
        self._zones[endpoint_id] = (zone, now)
        return zone


def _etag(rows: VisitRows) -> str | None:
    """The stored state row's ETag (None: no state yet)."""
    row = rows.state_row
    return row.etag if row else None


def _ended(state: VisitState) -> datetime | None:
    """When the last person left: the meeting last became empty, or the call ended for all."""
    if state.present:  # someone is still in: not ended, whatever came before
        return None
    candidates = [t for t in (state.emptied_at, state.ended_at) if t is not None]
    return min(candidates) if candidates else None


def _streams(quality: CallQuality | None) -> list[Stream]:
    if quality is None:
        return []
    return [
        Stream(
            media=s.media, direction=s.direction,
            avg_loss=s.avg_packet_loss, max_loss=s.max_packet_loss,
            avg_jitter=s.avg_jitter_ms, max_jitter=s.max_jitter_ms,
            avg_rtt=s.avg_round_trip_ms, max_rtt=s.max_round_trip_ms,
        )
        for s in quality.streams
    ]  # fmt: skip
