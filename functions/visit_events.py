"""Queue: apply each visit event to its visit (who is present, the lobby wait, the end).

Thin: the message is parsed and handed to lib/visits/timeline.py. A message that fails (storage
down, ETag contention) raises, so the queue makes it visible again and retries it; after
host.json's maxDequeueCount the host moves it to `visit-events-poison`. A message that is not an
event at all raises too: it ends in the poison queue, where an operator can see it, never dropped.
"""

from __future__ import annotations

import logging

import azure.functions as func

from lib.telemetry import continued

bp = func.Blueprint()
log = logging.getLogger(__name__)


@bp.function_name("visit_events")
@bp.queue_trigger(arg_name="msg", queue_name="visit-events", connection="AzureWebJobsStorage")
def visit_events(msg: func.QueueMessage, context: func.Context = None) -> None:  # type: ignore[assignment]
    from lib.bootstrap import background_services
    from lib.net.budget import within
    from lib.visits.events import VisitEventMessage

    svc = background_services()
    try:
        event = VisitEventMessage.from_text(msg.get_body())
    except ValueError:  # pydantic's ValidationError and bad JSON are ValueErrors
        log.error(
            "not a visit event", extra={"message_id": msg.id, "dequeue_count": msg.dequeue_count}
        )
        raise
    carried = continued(event.traceparent, context, "visit-events")
    with carried, within(svc.settings.background_budget, "background"):
        svc.timeline.apply(event)
