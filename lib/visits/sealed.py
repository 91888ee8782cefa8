"""Sealed values of a visit in Table Storage: identifiers kept only until their purge-after time.

One row per visit and purpose (PartitionKey: the visit key, itself a keyed hash; RowKey: the
purpose, e.g. `appointment-id`, `phone`). A row holds the sealed text (lib/sealing.py) and its
`purge_after` time, never the value in clear. A value past its purge-after time does not open,
even before the cleanup timer has removed it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from lib.sealing import Sealer
from lib.storage import ConcurrencyConflict, Entity, TableStore

SEALED = "Sealed"
PURGE_BATCH = 500  # rows removed per cleanup run at most; the next run takes the rest

# The appointment's FHIR reference (`Appointment/{id}`), sealed at launch for EHR write-back.
APPOINTMENT_ID = "appointment-id"
# It is kept this long after the visit's end: the end's write-back, the queue's retries and an
# admin's replay of a failed write the next working day all need it; then it is purged.
WRITEBACK_WINDOW = timedelta(hours=36)


def purge_after_visit(end: datetime | None, now: datetime | None = None) -> datetime:
    """When a value kept for the visit's write-back goes: WRITEBACK_WINDOW after its end (or
    after now, when the end is not known yet or already past)."""
    now = now or datetime.now(UTC)
    return max(end or now, now) + WRITEBACK_WINDOW


class SealedValue(Entity):
    """PartitionKey: the visit key; RowKey: the purpose."""

    sealed: str
    purge_after: datetime


def _aware(moment: datetime, name: str) -> datetime:
    if moment.tzinfo is None:
        raise ValueError(f"{name} must be timezone-aware")
    return moment


class SealedValues:
    def __init__(self, store: TableStore, sealer: Sealer) -> None:
        self._table = store.table(SEALED, SealedValue)
        self._sealer = sealer

    def put(
        self,
        visit_key: str,
        purpose: str,
        value: str,
        purge_after: datetime,
        *,
        now: datetime | None = None,
    ) -> None:
        """Seal and store `value` (replacing an earlier one for this visit and purpose)."""
        now = _aware(now, "now") if now else datetime.now(UTC)
        if _aware(purge_after, "purge_after") <= now:
            raise ValueError("purge_after is already past: the value could never be opened")
        sealed = self._sealer.seal(value, visit_key=visit_key, purpose=purpose)
        self._table.upsert(
            SealedValue(
                partition_key=visit_key, row_key=purpose, sealed=sealed, purge_after=purge_after
            )
        )

    def open(self, visit_key: str, purpose: str, *, now: datetime | None = None) -> str | None:
        """The value, or None when there is none or it is past its purge-after time.

        Raises lib.sealing.SealBroken when the stored text does not open (altered, or sealed
        with a key no longer configured): that is never the same as "absent".
        """
        row = self._table.get(visit_key, purpose)
        if row is None:
            return None
        now = _aware(now, "now") if now else datetime.now(UTC)
        if now >= row.purge_after:
            return None
        return self._sealer.open(row.sealed, visit_key=visit_key, purpose=purpose)

    def forget(self, visit_key: str, purpose: str | None = None) -> None:
        """Remove one sealed value of a visit, or all of them (idempotent)."""
        if purpose is not None:
            self._table.delete(visit_key, purpose)
            return
        for row in list(self._table.partition(visit_key)):
            self._table.delete(row.partition_key, row.row_key)

    def purge_expired(self, *, now: datetime | None = None, limit: int = PURGE_BATCH) -> int:
        """Delete at most `limit` values past their purge-after time; the number deleted.

        Idempotent and safe beside writers: each row is deleted under the ETag it was read
        with, so a value put again meanwhile (with a new purge-after time) is kept, and one
        removed meanwhile is simply not counted.
        """
        if limit < 1:
            raise ValueError("limit must be at least 1")
        now = _aware(now, "now") if now else datetime.now(UTC)
        expired = list(self._table.query("purge_after le @now", {"now": now}, limit=limit))
        removed = 0
        for row in expired:
            try:
                self._table.delete(row.partition_key, row.row_key, etag=row.etag)
            except ConcurrencyConflict:
                continue
            removed += 1
        return removed
