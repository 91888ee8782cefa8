"""What SMS keeps only for a while, removed by the cleanup timer (functions/cleanup.py),
idempotent and bounded per run (PURGE_BATCH rows a table; the next run takes the rest):

- the replay guard's `jti`s once past their purge-after time (twice the signature's max age);
- handled Event Grid event ids after EVENT_DAYS (Event Grid retries for 24 hours);
- ledger rows of texts due more than LEDGER_GRACE ago, in a final state (a row still `due`
  or `sending` is left: the sender decides it first).
The patient's phone and the Appointment id are sealed values with their own purge-after time
(lib/visits/sealed.py, purged by the same timer).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from lib.sms.events import SMS_EVENTS_TABLE, SeenEvent
from lib.sms.ledger import LEDGER, TERMINAL, LedgerRow
from lib.sms.signature import REPLAY_TABLE, SeenSignature
from lib.storage import ConcurrencyConflict, Entity, Table, TableStore

PURGE_BATCH = 500
EVENT_DAYS = timedelta(days=2)
LEDGER_GRACE = timedelta(days=2)


def purge(store: TableStore, *, now: datetime | None = None, limit: int = PURGE_BATCH) -> int:
    now = now or datetime.now(UTC)
    removed = _delete(store.table(REPLAY_TABLE, SeenSignature), "purge_after le @t", now, limit)
    seen = store.table(SMS_EVENTS_TABLE, SeenEvent)
    removed += _delete(seen, "at le @t", now - EVENT_DAYS, limit)
    ledger = store.table(LEDGER, LedgerRow)
    old = ledger.query("due_at le @t", {"t": now - LEDGER_GRACE}, limit=limit)
    removed += _delete_rows(ledger, [r for r in old if r.state in TERMINAL])
    return removed


def _delete(table: Table, clause: str, moment: datetime, limit: int) -> int:
    return _delete_rows(table, list(table.query(clause, {"t": moment}, limit=limit)))


def _delete_rows(table: Table, rows: list[Entity]) -> int:
    removed = 0
    for row in rows:
        try:
            table.delete(row.partition_key, row.row_key, etag=row.etag)
        except ConcurrencyConflict:  # changed meanwhile: the next run looks again
            continue
        removed += 1
    return removed
