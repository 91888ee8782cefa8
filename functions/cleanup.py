"""Timer: remove what must not outlive its use: expired sign-in sessions and sealed values."""

from __future__ import annotations

import logging

import azure.functions as func

bp = func.Blueprint()
log = logging.getLogger(__name__)


@bp.function_name("cleanup")
@bp.timer_trigger(arg_name="timer", schedule="0 */15 * * * *", run_on_startup=False)
def cleanup(timer: func.TimerRequest) -> None:
    from lib.bootstrap import services

    svc = services()
    sessions = svc.sessions.purge_expired()
    sealed = svc.sealed.purge_expired()
    log.info(
        "cleanup",
        extra={"sessions_removed": sessions, "sealed_removed": sealed, "past_due": timer.past_due},
    )
