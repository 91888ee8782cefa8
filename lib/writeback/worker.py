"""One write-back job, start to end: the queue function `ehr_writeback` hands each message here.

1. A job not above what the EHR was last given (`written_rank`) is stale: done, nothing sent.
2. The visit's write lease (lib/writeback/progress.py): one write per visit at a time; a visit
   busy with another job's write puts this one back on the queue for a moment.
3. The endpoint's write-back settings, the appointment's id (opened from the sealed values, in
   memory only), the vendor code for the milestone (none configured: nothing to write).
4. The adapter's write; then the progress row records it and gives the lease back.

Failures (lib/writeback/errors.py): `later` goes back on the queue with the EHR's Retry-After as
its visibility delay; `transient` raises so the queue retries it, except on the last dequeue
(host.json maxDequeueCount), when it is dead-lettered; `permanent` is dead-lettered at once.
No outcome drops a job without a trace: each is a log line, a write, or a dead-letter row.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

from lib.endpoints.models import Endpoint
from lib.sealing import SealBroken
from lib.storage import ConcurrencyConflict, QueueSender
from lib.visits.sealed import APPOINTMENT_ID, SealedValues
from lib.writeback.adapters import DEFAULT_CODES, Adapter
from lib.writeback.errors import WriteFailure
from lib.writeback.failures import FailureStore
from lib.writeback.jobs import WritebackJob
from lib.writeback.progress import Progress, ProgressStore

if TYPE_CHECKING:
    from lib.endpoints.service import EndpointService

log = logging.getLogger(__name__)

BUSY_DELAY = 2  # seconds before a job retries a visit another job is writing
MAX_DELAYS = 20  # Retry-After / busy re-queues of one job before it is dead-lettered
LEASE_ROUNDS = 4

Result = Literal["written", "unchanged", "skipped", "delayed", "dead-lettered", "retry"]


class TransientWriteFailure(Exception):
    """Raised to the queue function: the message becomes visible again and is retried."""


@dataclass
class WriteBack:
    endpoints: EndpointService
    sealed: SealedValues
    progress: ProgressStore
    failures: FailureStore
    adapters: Mapping[str, Adapter]
    queue: Callable[[], QueueSender]
    lease_seconds: float

    def handle(self, job: WritebackJob, dequeue_count: int, max_dequeue_count: int) -> Result:
        """Run `job` and act on its outcome; raises TransientWriteFailure to be retried."""
        try:
            return self.run(job)
        except WriteFailure as failure:
            last = dequeue_count >= max_dequeue_count
            if failure.kind == "later" and job.delays < MAX_DELAYS:
                return self._delay(job, round(failure.retry_after or BUSY_DELAY), failure)
            if failure.kind == "transient" and not last:
                log.warning(
                    "write-back will be retried", extra=_fields(job, failure, dequeue_count)
                )
                raise TransientWriteFailure(failure.code) from None
            self.failures.add(job, failure, attempts=dequeue_count)
            log.error("write-back dead-lettered", extra=_fields(job, failure, dequeue_count))
            return "dead-lettered"

    def run(self, job: WritebackJob) -> Result:
        held = self._lease(job)
        if held is None:
            return "skipped"
        try:
            written = self._write(job)
        except BaseException:
            self.progress.release(held)
            raise
        self._record(held, job)
        log.info("write-back done", extra=job.fields() | {"written": written})
        return "written" if written else "unchanged"

    def _lease(self, job: WritebackJob) -> Progress | None:
        """The visit's lease for `job`, or None when the job is stale."""
        for _ in range(LEASE_ROUNDS):
            row = self.progress.get(job.visit_key)
            if row is not None and row.written_rank >= job.rank:
                log.info(
                    "write-back stale", extra=job.fields() | {"written_rank": row.written_rank}
                )
                return None
            now = datetime.now(UTC)
            if row is not None and row.leased_to_other(job.job_id, now):
                raise WriteFailure.later(
                    _busy_delay(job, row, now), "another write of this visit runs"
                )
            try:
                return self.progress.lease(
                    job.visit_key, job.endpoint_id, row, job.job_id, self.lease_seconds
                )
            except ConcurrencyConflict:
                continue
        raise WriteFailure.later(BUSY_DELAY, "the visit's write-back row is contended")

    def _record(self, held: Progress, job: WritebackJob) -> None:
        try:
            self.progress.written(held, job.milestone, job.rank)
        except ConcurrencyConflict:
            # Our lease ran out and another job took it: it reads our write's effect as its own
            # starting point, and its rank decides. Nothing of ours is lost.
            log.warning("write-back lease lost before recording", extra=job.fields())

    def _write(self, job: WritebackJob) -> bool:
        endpoint = self.endpoints.snapshot().find(job.endpoint_id)
        if endpoint is None or not endpoint.writeback.enabled:
            endpoint = self.endpoints.find(job.endpoint_id)  # before refusing: no stale snapshot
        if endpoint is None or not endpoint.writeback.enabled or endpoint.writeback.auth is None:
            raise WriteFailure.permanent("WB-NOT-CONFIGURED", "write-back is off or has no auth")
        code = codes_for(endpoint).get(job.milestone)
        if code is None:
            return False  # nothing configured for this milestone: the rank still moves on
        try:
            reference = self.sealed.open(job.visit_key, APPOINTMENT_ID)
        except SealBroken:
            raise WriteFailure.permanent(
                "WB-NO-APPOINTMENT", "the sealed id does not open"
            ) from None
        if not reference or not reference.startswith("Appointment/"):
            raise WriteFailure.permanent("WB-NO-APPOINTMENT", "no appointment id is sealed")
        adapter = self.adapters[adapter_of(endpoint)]
        return adapter.write(endpoint, reference.removeprefix("Appointment/"), code, job.visit_key)

    def _delay(self, job: WritebackJob, seconds: int, failure: WriteFailure) -> Result:
        again = job.model_copy(update={"delays": job.delays + 1})
        self.queue().send(again.to_text(), delay_seconds=max(seconds, 1))
        log.info("write-back delayed", extra=_fields(job, failure, None) | {"delay": seconds})
        return "delayed"


def _busy_delay(job: WritebackJob, row: Progress, now: datetime) -> float:
    """Back off while another job holds the visit (2, 4, 8 ... s), never past its lease: a
    worker that died holding it is waited out, not raced into the dead-letter table."""
    left = (row.lease_until - now).total_seconds() if row.lease_until else BUSY_DELAY
    return max(1.0, min(left, BUSY_DELAY * 2 ** min(job.delays, 6)))


def adapter_of(endpoint: Endpoint) -> str:
    chosen = endpoint.writeback.adapter
    return chosen or ("epic" if endpoint.vendor.value == "epic" else "fhir")


def codes_for(endpoint: Endpoint) -> dict[str, str | None]:
    """Milestone -> vendor code: the endpoint's own, else the adapter's defaults."""
    return {**DEFAULT_CODES[adapter_of(endpoint)], **endpoint.writeback.statuses}


def _fields(job: WritebackJob, failure: WriteFailure, dequeue_count: int | None) -> dict:
    return job.fields() | {
        "error_code": failure.code,
        "detail": failure.detail,
        "dequeue_count": dequeue_count,
    }
