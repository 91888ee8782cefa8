"""The texts ledger: one row per (visit, kind, schedule version), and the due index by minute.

- `SmsLedger`: PartitionKey the visit key, RowKey the text's id (`booked-v1`, `reminder-1440-v2`,
  `cancelled-v3`, `on-demand-202612011030`). Its `state` moves only forward, each step under the
  row's ETag:

      due --claim--> claimed --> sending --> sent | failed | unknown      (or skipped)
       ^                |          |
       +--- release ----+          +-- (an explicit "not taken": 429, 5xx, no connection) -> due

  A row in `sending` whose outcome was never recorded (the process died) becomes `unknown`, never
  `due`: its text may have reached the service, so it is not sent again.
- `SmsDue`: PartitionKey `m-YYYYMMDDHHMM` (the minute it is due), RowKey `{visit key}~{text id}`:
  a timer run reads the few minutes up to now, so its work grows with what is due, not with
  what is stored. A pointer is removed once its row left `due`.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from lib.storage import Entity, TableStore

LEDGER = "SmsLedger"
DUE = "SmsDue"
TERMINAL = frozenset({"sent", "failed", "unknown", "skipped", "delivered", "undelivered"})


class LedgerRow(Entity):
    endpoint_id: str
    kind: str  # booked | moved | cancelled | reminder | on-demand
    version: int
    state: str = "due"
    due_at: datetime
    attempts: int = 0
    claimed_at: datetime | None = None
    sending_at: datetime | None = None
    message_id: str | None = None
    reason: str | None = None
    updated_at: datetime | None = None

    @property
    def visit_key(self) -> str:
        return self.partition_key

    @property
    def text_id(self) -> str:
        return self.row_key

    @property
    def tag(self) -> str:
        """What the delivery report brings back (no identifier: a hash and a kind)."""
        return f"{self.partition_key}~{self.row_key}"


class DuePointer(Entity):
    due_at: datetime


class Cursor(Entity):
    """PartitionKey / RowKey `cursor` in SmsDue: the earliest minute a run may not have
    finished. A run that dies (or stops at its limit) leaves it there, so the next run reads
    from it: no minute is skipped, however late or broken the runs before."""

    minute: datetime


def bucket(moment: datetime) -> str:
    return f"m-{moment.astimezone(UTC):%Y%m%d%H%M}"


def minutes(start: datetime, end: datetime) -> Iterator[str]:
    """Every minute bucket from ``start`` to ``end`` inclusive."""
    at = start.astimezone(UTC).replace(second=0, microsecond=0)
    while at <= end:
        yield bucket(at)
        at += timedelta(minutes=1)


class Ledger:
    def __init__(self, store: TableStore) -> None:
        self.rows = store.table(LEDGER, LedgerRow)
        self.due = store.table(DUE, DuePointer)
        self.cursors = store.table(DUE, Cursor)

    def plan(self, row: LedgerRow) -> bool:
        """Create the row and its pointer unless this (visit, kind, version) is already known:
        a message delivered twice plans its texts once. The pointer first: a row without one
        would never be found, a pointer without a row is dropped when read."""
        self.point(row, row.due_at)
        if self.cursor() is None:  # the first text ever: runs read from here on
            self.move_cursor(row.due_at)
        return self.rows.create(row).created

    def point(self, row: LedgerRow, due_at: datetime) -> None:
        self.due.upsert(DuePointer(partition_key=bucket(due_at), row_key=row.tag, due_at=due_at))

    def cursor(self) -> datetime | None:
        found = self.cursors.get("cursor", "cursor")
        return found.minute if found else None

    def move_cursor(self, minute: datetime) -> None:
        self.cursors.upsert(Cursor(partition_key="cursor", row_key="cursor", minute=minute))

    def pointers(self, minute: str) -> list[DuePointer]:
        return list(self.due.partition(minute))

    def drop(self, pointer: DuePointer) -> None:
        self.due.delete(pointer.partition_key, pointer.row_key)

    def row_for(self, pointer: DuePointer) -> LedgerRow | None:
        visit_key, _, text_id = pointer.row_key.partition("~")
        return self.rows.get(visit_key, text_id)

    def for_visit(self, visit_key: str) -> list[LedgerRow]:
        return list(self.rows.partition(visit_key))
