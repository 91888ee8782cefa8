"""Timer: remove what must not outlive its use: expired sign-in sessions, sealed values (the
patients' phone numbers among them) and SMS bookkeeping (lib/sms/cleanup.py)."""

from __future__ import annotations

import logging

import azure.functions as func

bp = func.Blueprint()
log = logging.getLogger(__name__)


@bp.function_name("cleanup")
@bp.timer_trigger(arg_name="timer", schedule="0 */15 * * * *", run_on_startup=False)
def cleanup(timer: func.TimerRequest) -> None:
    from lib.bootstrap import services
    from lib.sms.cleanup import purge

    svc = services()
    sessions = svc.sessions.purge_expired()
    sealed = svc.sealed.purge_expired()
    sms = purge(svc.store)
    log.info(
        "cleanup",
        extra={
            "sessions_removed": sessions,
            "sealed_removed": sealed,
            "sms_removed": sms,
            "past_due": timer.past_due,
        },
    )
