"""Timer: send the texts that are due (lib/sms/sending.py). Every minute by default
(SMS_TIMER_SCHEDULE); one instance at a time across scale-out, as every timer trigger."""

from __future__ import annotations

import logging

import azure.functions as func

from lib.telemetry import invocation_parent, joined

bp = func.Blueprint()
log = logging.getLogger(__name__)


@bp.function_name("reminders")
@bp.timer_trigger(arg_name="timer", schedule="%SMS_TIMER_SCHEDULE%", run_on_startup=False)
def reminders(timer: func.TimerRequest, context: func.Context = None) -> None:  # type: ignore[assignment]
    from lib.bootstrap import services

    svc = services()
    if not svc.settings.acs_connection_string:
        return  # SMS is off in this deployment
    with joined(*invocation_parent(context)):  # each text's send is a call in this run's trace
        report = svc.texting.run()
    log.info(
        "texts",
        extra={
            "seen": report.seen,
            "sent": report.sent,
            "skipped": report.skipped,
            "failed": report.failed,
            "unknown": report.unknown,
            "deferred": report.deferred,
            "past_due": timer.past_due,
        },
    )
