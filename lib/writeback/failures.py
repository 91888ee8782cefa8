"""The dead-letter table `WritebackFailures`: every write the EHR never took, with its reason.

PartitionKey: the endpoint's id (`poison` for messages that were not jobs at all); RowKey:
`{inverted ms}-{job id}`, so a partition reads newest first. A row keeps the job as it was
queued (visit key, milestone, rank: nothing that identifies a patient), the catalogue code of
the last error and a detail that is an HTTP status and an issue code, never a response body.

Replay puts the job back on the queue under a new job id (audited). Its rank is the one it had,
so a replay after a later write is stale and never moves the EHR backwards.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from lib.endpoints import audit
from lib.endpoints.actor import Actor
from lib.storage import ConcurrencyConflict, Entity, TableStore
from lib.telemetry import stamped
from lib.web.errors import AppError

if TYPE_CHECKING:
    from lib.storage import QueueSender
    from lib.writeback.errors import WriteFailure
    from lib.writeback.jobs import WritebackJob

FAILURES = "WritebackFailures"
POISON = "poison"
_MAX_MS = 10**13
# `{endpoint or poison}~{row key}`; lib/admin/api.py repeats it (the route table is imported at
# every cold start, this module's pydantic models are not): a unit test keeps the two equal.
FAILURE_ID = r"^(?:[a-z0-9][a-z0-9-]{1,38}[a-z0-9])~[0-9]{13}-[0-9a-f]{32}$"
MAX_PAGE = 100
# How long a dead letter is kept for an admin to see and replay: long past any EHR's interest in
# a visit's status, short enough that the table does not grow for ever (the cleanup timer).
KEPT_FOR = timedelta(days=90)
PURGE_BATCH = 500


class Failure(Entity):
    endpoint_id: str
    code: str
    detail: str = ""
    http_status: int | None = None
    attempts: int = 0  # the queue's dequeue count of the last try
    delays: int = 0
    failed_at: datetime
    visit_key: str | None = None
    milestone: str | None = None
    rank: int | None = None
    job: str | None = None  # the job's JSON, as queued; None for a poison message
    replayed_at: datetime | None = None
    replayed_by: str | None = None
    replay_job_id: str | None = None

    @property
    def id(self) -> str:
        return f"{self.partition_key}~{self.row_key}"

    def public(self) -> dict[str, Any]:
        data = self.model_dump(mode="json", exclude={"partition_key", "row_key", "etag", "job"})
        return {"id": self.id, **data}


def _row_key(at: datetime, job_id: str) -> str:
    return f"{_MAX_MS - int(at.timestamp() * 1000):013d}-{job_id}"


def _bound(at: datetime) -> str:
    return f"{_MAX_MS - int(at.timestamp() * 1000):013d}"


@dataclass
class FailurePage:
    items: list[Failure]
    next: str | None


class FailureStore:
    def __init__(self, store: TableStore) -> None:
        self._store = store
        self._table = store.table(FAILURES, Failure)

    def purge_expired(self, now: datetime | None = None, limit: int = PURGE_BATCH) -> int:
        """Remove dead letters older than KEPT_FOR (the cleanup timer), bounded per run."""
        cutoff = (now or datetime.now(UTC)) - KEPT_FOR
        removed = 0
        for row in list(self._table.query("failed_at le @t", {"t": cutoff}, limit=limit)):
            try:
                self._table.delete(row.partition_key, row.row_key, etag=row.etag)
            except ConcurrencyConflict:  # replayed meanwhile: the next run looks again
                continue
            removed += 1
        return removed

    def add(self, job: WritebackJob, failure: WriteFailure, *, attempts: int) -> Failure:
        """Idempotent per job: a redelivery that dead-letters the same job again finds its row."""
        now = datetime.now(UTC)
        existing = next(
            self._table.partition(job.endpoint_id, "job eq @job", job=job.to_text()), None
        )
        if existing is not None:
            return existing
        row = Failure(
            partition_key=job.endpoint_id,
            row_key=_row_key(now, job.job_id),
            endpoint_id=job.endpoint_id,
            code=failure.code,
            detail=failure.detail[:300],
            http_status=failure.http_status,
            attempts=attempts,
            delays=job.delays,
            failed_at=now,
            visit_key=job.visit_key,
            milestone=job.milestone,
            rank=job.rank,
            job=job.to_text(),
        )
        return self._table.create(row).entity

    def add_poison(self, message_id: str, reason: str, dequeue_count: int) -> Failure:
        """A message on the poison queue that is not a job: kept, so it shows to admins."""
        now = datetime.now(UTC)
        digest = hashlib.sha256(message_id.encode()).hexdigest()[:32]
        row = Failure(
            partition_key=POISON,
            row_key=_row_key(now, digest),
            endpoint_id=POISON,
            code="WB-POISON",
            detail=reason[:300],
            attempts=dequeue_count,
            failed_at=now,
        )
        return self._table.create(row).entity

    def get(self, failure_id: str) -> Failure:
        if not re.fullmatch(FAILURE_ID, failure_id):
            raise AppError("WB-FAILURE-NOT-FOUND")
        pk, rk = failure_id.split("~", 1)
        found = self._table.get(pk, rk)
        if found is None:
            raise AppError("WB-FAILURE-NOT-FOUND")
        return found

    def list(
        self,
        *,
        endpoint_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        size: int = 50,
        continuation: str | None = None,
    ) -> FailurePage:
        """Newest first within an endpoint (endpoints in id order); `continuation` is the id of
        the last failure of the previous page (`next`), so it is as checkable as any id."""
        clauses, params = [], {}
        if endpoint_id:
            clauses.append("PartitionKey eq @pk")
            params["pk"] = endpoint_id
        if since:
            clauses.append("RowKey le @since")
            params["since"] = _bound(since) + "~"  # every row of that millisecond and later
        if until:
            clauses.append("RowKey ge @until")
            params["until"] = _bound(until)
        if continuation:
            if not re.fullmatch(FAILURE_ID, continuation):
                raise ValueError("not a failure id")
            after_pk, after_rk = continuation.split("~", 1)
            clauses.append(
                "( ( PartitionKey eq @apk and RowKey gt @ark ) or PartitionKey gt @apk )"
            )
            params |= {"apk": after_pk, "ark": after_rk}
        size = max(1, min(size, MAX_PAGE))
        rows = list(self._table.query(" and ".join(clauses) or None, params, limit=size + 1))
        more = len(rows) > size
        rows = rows[:size]
        return FailurePage(rows, rows[-1].id if more else None)

    def replay(self, failure_id: str, actor: Actor, queue: QueueSender) -> Failure:
        """Queue the failed job again (new job id, same rank), mark the row, audit it."""
        from lib.writeback.jobs import WritebackJob

        row = self.get(failure_id)
        if row.job is None:
            raise AppError("WB-REPLAY-REFUSED", "An unreadable message has no job to replay.")
        old = WritebackJob.from_text(row.job)
        job = WritebackJob.new(old.visit_key, old.endpoint_id, old.milestone, old.rank)
        job = job.model_copy(update={"source": "replay"})
        queue.send(stamped(job).to_text())  # in the admin's trace, not the failed one's
        now = datetime.now(UTC)
        updated = row.model_copy(
            update={"replayed_at": now, "replayed_by": actor.oid, "replay_job_id": job.job_id}
        )
        try:
            updated = self._table.update(updated, etag=row.etag)
        except ConcurrencyConflict:
            raise AppError("CFG-STALE-ETAG", "Replayed by someone else meanwhile.") from None
        entry = audit.entry(
            f"writeback-{row.endpoint_id}",
            actor,
            "writeback.replay",
            f"writeback-failure:{row.id}",
            row.public(),
            updated.public(),
        )
        audit.add(self._store, entry)
        return updated
