"""Per visit, what write-back queued and wrote: the row `writeback` beside the visit in `Visits`.

- `queued`, `queued_rank`: the last milestone sent to the queue (the planner reads it);
- `written`, `written_rank`: the last one the EHR took (the worker skips any job not above it);
- `lease_job`, `lease_until`: the job writing now. One write per visit at a time, so two jobs of
  one visit can never reach the EHR in the wrong order; a worker that died leaves the lease to
  run out, and a redelivery of the same job may take it over at once.

Every change is made under the row's ETag. Nothing in it identifies a patient.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta

from lib.storage import ConcurrencyConflict, Entity, TableStore

VISITS = "Visits"  # the visit's own partition (lib/visits/store.py)
ROW = "writeback"


class Progress(Entity):
    endpoint_id: str
    queued: str | None = None
    queued_rank: int = 0
    written: str | None = None
    written_rank: int = 0
    written_at: datetime | None = None
    lease_job: str | None = None
    lease_until: datetime | None = None

    def leased_to_other(self, job_id: str, now: datetime) -> bool:
        return bool(
            self.lease_job
            and self.lease_job != job_id
            and self.lease_until is not None
            and self.lease_until > now
        )


class ProgressStore:
    def __init__(self, store: TableStore) -> None:
        self._table = store.table(VISITS, Progress)

    def get(self, visit_key: str) -> Progress | None:
        return self._table.get(visit_key, ROW)

    def _save(self, current: Progress | None, updated: Progress) -> Progress:
        if current is None:
            created = self._table.create(updated)
            if not created.created:
                raise ConcurrencyConflict("Visits: write-back row created meanwhile")
            return created.entity
        return self._table.update(updated, etag=current.etag)

    def _fresh(self, visit_key: str, endpoint_id: str) -> Progress:
        return Progress(partition_key=visit_key, row_key=ROW, endpoint_id=endpoint_id)

    def mark_queued(
        self, visit_key: str, endpoint_id: str, current: Progress | None, milestone: str, rank: int
    ) -> Progress:
        base = current or self._fresh(visit_key, endpoint_id)
        return self._save(
            current, base.model_copy(update={"queued": milestone, "queued_rank": rank})
        )

    def lease(
        self,
        visit_key: str,
        endpoint_id: str,
        current: Progress | None,
        job_id: str,
        seconds: float,
    ) -> Progress:
        """Take the visit's write lease for `job_id` (ConcurrencyConflict when beaten to it)."""
        base = current or self._fresh(visit_key, endpoint_id)
        until = datetime.now(UTC) + timedelta(seconds=seconds)
        return self._save(
            current, base.model_copy(update={"lease_job": job_id, "lease_until": until})
        )

    def written(self, held: Progress, milestone: str, rank: int) -> Progress:
        """Record a write and give the lease back (the lease holder's ETag: nobody else wrote)."""
        update = {"lease_job": None, "lease_until": None}
        if rank > held.written_rank:
            update |= {"written": milestone, "written_rank": rank, "written_at": datetime.now(UTC)}
        return self._table.update(held.model_copy(update=update), etag=held.etag)

    def release(self, held: Progress) -> None:
        """Give the lease back after a failure (best effort: it runs out by itself)."""
        with contextlib.suppress(ConcurrencyConflict):
            self._table.update(
                held.model_copy(update={"lease_job": None, "lease_until": None}), etag=held.etag
            )
