"""The report projection: a visit-timeline listener that writes the visit's report row.

Called after every applied event (duplicates included, lib/visits/timeline.py) and after every
applied scheduling message (a reschedule moves the day), it writes what the state and the visit
say *now*, never a delta: running it twice writes the same row. Order of writes, so that a crash
anywhere leaves nothing a redelivery does not mend: the new row, then the pointer, then the old
row's delete (a redelivery finds the pointer still old, writes the same row, and deletes again).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from lib.reports.rows import POINTER, REPORTS, ReportPointer, Stream, VisitReport, partition
from lib.reports.rows import row_key as report_row_key
from lib.sms.ledger import Ledger
from lib.storage import TableStore
from lib.visits.events import VisitEventMessage, VisitState
from lib.visits.quality import CallQuality, CallQualityStore
from lib.visits.store import VISITS, Visit, VisitStore

log = logging.getLogger(__name__)

# Ledger states of a text that left for the patient (Communication Services took it).
SENT = frozenset({"sent", "delivered", "undelivered"})
DEFAULT_ZONE = "UTC"


class ReportProjection:
    def __init__(
        self,
        store: TableStore,
        visits: VisitStore,
        quality: CallQualityStore,
        ledger: Ledger,
        zone_of: Callable[[str], str],
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._reports = store.table(REPORTS, VisitReport)
        self._pointers = store.table(VISITS, ReportPointer)
        self._visits, self._quality, self._ledger = visits, quality, ledger
        self._zone_of, self._now = zone_of, now

    def __call__(self, event: VisitEventMessage, state: VisitState) -> None:
        """The timeline listener."""
        self.refresh(event.visit_key, state)

    def refresh(self, visit_key: str, state: VisitState | None = None) -> VisitReport | None:
        """Write the visit's row as it stands (None: no such visit, nothing written)."""
        visit = self._visits.get(visit_key)
        if visit is None:
            return None
        if state is None:
            stored = self._visits.state(visit_key)
            state = VisitState.model_validate(stored.model_dump()) if stored else VisitState()
        row = self.build(visit, state)
        pointer = self._pointers.get(visit_key, POINTER)
        self._reports.upsert(row)
        where = (row.partition_key, row.row_key)
        if pointer is None or (pointer.report_partition, pointer.report_row) != where:
            self._pointers.upsert(
                ReportPointer(
                    partition_key=visit_key, row_key=POINTER,
                    report_partition=row.partition_key, report_row=row.row_key,
                )
            )  # fmt: skip
            if pointer is not None:
                self._reports.delete(pointer.report_partition, pointer.report_row)
                log.info("report row moved", extra={"visit": visit_key})
        return row

    def build(self, visit: Visit, state: VisitState) -> VisitReport:
        zone = self._zone(visit.endpoint_id)
        anchor = state.both_in_at or visit.start or state.last_at or visit.created_at
        anchor = anchor.astimezone(UTC)
        day = anchor.astimezone(ZoneInfo(zone)).date()
        quality = self._quality.get(visit.key)
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
        """The clinic's zone (the endpoint's text settings); UTC for an endpoint since removed."""
        try:
            return self._zone_of(endpoint_id)
        except Exception:  # a deleted endpoint still has its visits reported
            return DEFAULT_ZONE


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
