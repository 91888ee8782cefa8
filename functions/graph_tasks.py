"""Queue and timer: the Graph work nobody waits for (lib/notifications/tasks.py).

`graph_tasks` does one `GraphTask` (subscribe, unsubscribe, renew, recreate, reconcile, record)
under the background budget; a failure raises, so the queue retries it and after
maxDequeueCount the host keeps it in `graph-tasks-poison`. `graph_subscriptions` renews the
subscriptions that expire soon (GRAPH_TIMER_SCHEDULE, every 15 minutes by default; one
instance at a time across scale-out, as every timer trigger).
"""

from __future__ import annotations

import logging

import azure.functions as func

from lib.telemetry import continued, invocation_parent, joined

bp = func.Blueprint()
log = logging.getLogger(__name__)


@bp.function_name("graph_tasks")
@bp.queue_trigger(arg_name="msg", queue_name="graph-tasks", connection="AzureWebJobsStorage")
def graph_tasks(msg: func.QueueMessage, context: func.Context = None) -> None:  # type: ignore[assignment]
    from lib.bootstrap import background_services
    from lib.net.budget import within
    from lib.notifications.tasks import GraphTask

    svc = background_services()
    try:
        task = GraphTask.from_text(msg.get_body())
    except ValueError:  # pydantic's ValidationError and bad JSON are ValueErrors
        log.error("not a graph task", extra={"message_id": msg.id})
        raise
    carried = continued(task.traceparent, context, "graph-tasks")
    with carried, within(svc.settings.background_budget, "background"):
        run(svc, task)


def run(svc, task) -> None:
    """One task, by its kind (each one idempotent)."""
    if task.task == "subscribe" and task.visit_key:
        svc.subscriptions().subscribe(task.visit_key)
    elif task.task == "unsubscribe" and task.visit_key:
        svc.subscriptions().unsubscribe(task.visit_key)
    elif task.task == "renew" and task.subscription_id:
        svc.subscriptions().renew(task.subscription_id)
    elif task.task == "recreate" and task.subscription_id:
        svc.subscriptions().recreate(task.subscription_id)
    elif task.task == "reconcile" and task.visit_key:
        svc.reconciler().run(task.visit_key)
    elif task.task == "record" and task.record_id:
        svc.call_records().handle(task.record_id)
    else:
        log.error("graph task without what it needs", extra={"task": task.task})


@bp.function_name("graph_subscriptions")
@bp.timer_trigger(arg_name="timer", schedule="%GRAPH_TIMER_SCHEDULE%", run_on_startup=False)
def graph_subscriptions(timer: func.TimerRequest, context: func.Context = None) -> None:  # type: ignore[assignment]
    from lib.bootstrap import background_services
    from lib.net.budget import within

    svc = background_services()
    if not svc.settings.entra_client_secret:
        return  # no Graph in this deployment
    with joined(*invocation_parent(context)), within(svc.settings.background_budget, "background"):
        renewed = svc.subscriptions().renew_due()
    log.info("graph subscriptions renewed", extra={"renewed": renewed, "past_due": timer.past_due})
