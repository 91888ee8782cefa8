"""The poison sweep: what the queue host set aside on `ehr-writeback-poison` becomes a
dead-letter row, so no failed write is kept where no admin looks.

A job there failed in a way the worker could not record (its last attempt crashed, or storage
failed while it dead-lettered): it is stored with WB-EHR-UNAVAILABLE and can be replayed. A
message that is not a job at all is stored as WB-POISON, without its text (it could be anything).
"""

from __future__ import annotations

from lib.storage import QueueReader
from lib.writeback.errors import WriteFailure
from lib.writeback.failures import FailureStore
from lib.writeback.jobs import WRITEBACK_QUEUE, WritebackJob

POISON_QUEUE = WRITEBACK_QUEUE + "-poison"


class PoisonSweep:
    def __init__(self, reader: QueueReader, failures: FailureStore) -> None:
        self._reader = reader
        self._failures = failures

    def _keep(self, message_id: str, text: str, dequeue_count: int) -> None:
        try:
            job = WritebackJob.from_text(text)
        except ValueError:
            self._failures.add_poison(message_id, "not a write-back job", dequeue_count)
            return
        failure = WriteFailure.transient(
            "WB-EHR-UNAVAILABLE", "set aside on the poison queue after the host's retries"
        )
        self._failures.add(job, failure, attempts=dequeue_count)

    def run(self) -> int:
        """Move every poison message into the dead-letter table; the number moved."""
        return self._reader.drain(self._keep)
