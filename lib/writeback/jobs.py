"""What the EHR is told, and when: a milestone per visit state, queued only when it changes.

The EHR sees three milestones of the patient (`Milestone` in lib/endpoints/models.py):
`connected` (opened the link or waits in the lobby), `in_visit` (admitted), `left` (left, or the
call ended). The provider's comings and goings are the clinician's own business in Teams.

A job carries the milestone and a **rank**: how many distinct events the visit's state was
folded from. A visit's events are only ever added, so a fold with more events is the later,
more complete truth; a job whose rank is not above what was written is stale (a replay, a
redelivery, a job overtaken by a later one) and never moves the EHR backwards.

Nothing in a job identifies a patient: the visit key (a keyed hash), the endpoint's slug, the
milestone. The appointment's FHIR id is opened from the sealed values only by the worker.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

from lib.endpoints.models import SLUG, Milestone
from lib.storage import ConcurrencyConflict, QueueSender
from lib.telemetry import TRACEPARENT, stamped
from lib.visits.events import IN_VISIT, LEFT, WAITING_STATUSES, VisitState
from lib.visits.sealed import WRITEBACK_WINDOW
from lib.writeback.progress import ROW, Progress, ProgressStore

if TYPE_CHECKING:
    from lib.endpoints.service import EndpointService
    from lib.visits.store import Visit, VisitRows
    from lib.visits.timeline import Applied

log = logging.getLogger(__name__)

WRITEBACK_QUEUE = "ehr-writeback"
ROUNDS = 5  # ETag rounds on the progress row; a visit has a handful of writers at most


class WritebackJob(BaseModel):
    """One write: this visit's EHR should now show `milestone` (as of `rank` events)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    job_id: str = Field(pattern=r"^[0-9a-f]{32}$")
    visit_key: str = Field(pattern=r"^[A-Za-z0-9_-]{8,128}$")
    endpoint_id: str = Field(pattern=SLUG)
    milestone: Milestone
    rank: int = Field(ge=1)
    # Times this job was put back on the queue after a Retry-After or a busy visit (the queue's
    # own dequeue count restarts with each new message, so the job counts its delays itself).
    delays: int = Field(default=0, ge=0)
    source: Literal["event", "replay"] = "event"
    # The trace of the event that asked for it (W3C), when telemetry is on: the queue carries
    # no headers, so the write-back's EHR call joins the launch's transaction.
    traceparent: str | None = Field(default=None, pattern=TRACEPARENT)

    @classmethod
    def new(cls, visit_key: str, endpoint_id: str, milestone: Milestone, rank: int) -> WritebackJob:
        return cls(
            job_id=uuid.uuid4().hex,
            visit_key=visit_key,
            endpoint_id=endpoint_id,
            milestone=milestone,
            rank=rank,
        )

    def to_text(self) -> str:
        return self.model_dump_json(exclude_none=True)

    @classmethod
    def from_text(cls, text: str | bytes) -> WritebackJob:
        return cls.model_validate_json(text)

    def fields(self) -> dict[str, object]:
        """What a log line may say of a job: all of it (nothing in it identifies anyone)."""
        return self.model_dump()


def milestone_of(state: VisitState) -> Milestone | None:
    """What the EHR should show for this state; None before the patient came at all."""
    if state.patient in WAITING_STATUSES:
        return "connected"
    if state.patient == IN_VISIT:
        return "in_visit"
    if state.patient == LEFT:
        return "left"
    return None


class WritebackPlanner:
    """The timeline listener: after each applied event, queue a job if the milestone moved.

    At least once and idempotent, as listeners must be: the job is sent before the progress
    row says it was queued, so a crash in between sends it again on redelivery (a duplicate
    job is harmless: its rank makes the second one stale); a listener that finds the milestone
    already queued at this rank or later sends nothing.
    """

    def __init__(
        self,
        endpoints: EndpointService,
        progress: ProgressStore,
        queue: Callable[[], QueueSender],
    ) -> None:
        self._endpoints = endpoints
        self._progress = progress
        self._queue = queue

    def __call__(self, applied: Applied) -> None:
        milestone = milestone_of(applied.state)
        if milestone is None:
            return
        visit = applied.visit  # the visit and its write-back row: from the apply's one read
        if visit is None:
            return
        if past_window(visit):
            # Events applied long after the visit (history replayed, seeded demo visits): the
            # appointment's id is no longer kept and the EHR's day is closed, so nothing is sent
            # that could only end in the dead-letter table.
            log.info("write-back skipped: past the visit's window", extra={"visit": visit.key})
            return
        # The snapshot is up to SNAPSHOT_TTL old on this instance; one it does not know yet (just
        # registered through another instance, or through the config API's own services) is read.
        endpoint = self._endpoints.snapshot().find(visit.endpoint_id)
        endpoint = endpoint or self._endpoints.find(visit.endpoint_id)
        if endpoint is None or not endpoint.writeback.enabled:
            return
        self.plan(visit.key, visit.endpoint_id, milestone, applied.state.events, applied.rows)

    def plan(
        self,
        visit_key: str,
        endpoint_id: str,
        milestone: Milestone,
        rank: int,
        rows: VisitRows | None = None,
    ) -> bool:
        """Queue the job unless this milestone (or a later rank) is queued already. `rows`: the
        visit's partition as just read, for the first look at its write-back row (the row's
        ETag decides; one changed since costs a round)."""
        sent = False
        for round_ in range(ROUNDS):
            if round_ == 0 and rows is not None:
                row = rows.get(Progress, ROW)
            else:
                row = self._progress.get(visit_key)
            if row is not None and (row.queued_rank >= rank or row.queued == milestone):
                return sent
            if not sent:
                job = WritebackJob.new(visit_key, endpoint_id, milestone, rank)
                self._queue().send(stamped(job).to_text())
                log.info("write-back queued", extra=job.fields())
                sent = True
            try:
                self._progress.mark_queued(visit_key, endpoint_id, row, milestone, rank)
                return sent
            except ConcurrencyConflict:
                continue  # another event of this visit was planned meanwhile: look again
        return sent  # the job is on the queue; the row catches up with the next event


def past_window(visit: Visit, now: datetime | None = None) -> bool:
    """Whether `visit` is past its write-back window: WRITEBACK_WINDOW after its end (or after
    it was opened, when that came later), as long as the launch and intake keep its id."""
    ends = [t for t in (visit.end, visit.created_at) if t is not None]
    return bool(ends) and max(ends) + WRITEBACK_WINDOW < (now or datetime.now(UTC))
