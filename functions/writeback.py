"""Queue and timer: EHR write-back (lib/writeback).

- `ehr_writeback` (queue `ehr-writeback`): one job per message, handed to lib/writeback/worker.py
  with its dequeue count and host.json's maxDequeueCount, so the last attempt is known: a
  transient failure raises (the queue retries it after visibilityTimeout) except then, when it is
  dead-lettered instead. A message that is not a job raises: the host moves it to the poison
  queue, which the sweep empties into the dead-letter table.
- `writeback_sweep` (every 5 minutes): moves messages of `ehr-writeback-poison` into the
  dead-letter table, so a failure the host set aside shows to admins and can be replayed.
"""

from __future__ import annotations

import functools
import json
import logging
from pathlib import Path

import azure.functions as func

from lib.telemetry import continued, invocation_parent, joined

bp = func.Blueprint()
log = logging.getLogger(__name__)
HOST_JSON = Path(__file__).resolve().parents[1] / "host.json"


@functools.cache
def max_dequeue_count() -> int:
    """host.json's queues.maxDequeueCount (the host's default, 5, when it says nothing)."""
    try:
        config = json.loads(HOST_JSON.read_text())
        return int(config["extensions"]["queues"].get("maxDequeueCount", 5))
    except (OSError, ValueError, KeyError):
        return 5


@bp.function_name("ehr_writeback")
@bp.queue_trigger(arg_name="msg", queue_name="ehr-writeback", connection="AzureWebJobsStorage")
def ehr_writeback(msg: func.QueueMessage, context: func.Context = None) -> None:  # type: ignore[assignment]
    from lib.bootstrap import background_services
    from lib.net.budget import within
    from lib.writeback.jobs import WritebackJob

    svc = background_services()
    try:
        job = WritebackJob.from_text(msg.get_body())
    except ValueError:  # not a job: the host moves it to the poison queue after its retries
        log.error("not a write-back job", extra={"message_id": msg.id})
        raise
    carried = continued(job.traceparent, context, "ehr-writeback")
    with carried, within(svc.settings.background_budget, "background"):
        svc.writeback.handle(job, msg.dequeue_count or 1, max_dequeue_count())


@bp.function_name("writeback_sweep")
@bp.timer_trigger(arg_name="timer", schedule="0 */5 * * * *", run_on_startup=False)
def writeback_sweep(timer: func.TimerRequest, context: func.Context = None) -> None:  # type: ignore[assignment]
    from lib.bootstrap import background_services
    from lib.net.budget import unavailable, within
    from lib.storage import StorageUnavailable

    svc = background_services()
    with joined(*invocation_parent(context)), within(svc.settings.background_budget, "background"):
        try:
            moved = svc.writeback_sweep.run()
        except StorageUnavailable as exc:
            unavailable("storage", f"write-back sweep stopped: {exc}")
            return
    log.info("write-back sweep", extra={"moved": moved})
