"""Timer: remove what must not outlive its use: expired sign-in sessions, sealed values (the
patients' phone numbers among them) and SMS bookkeeping (lib/sms/cleanup.py).

It runs under the background budget with the background storage client (longer reads, more
retries). When storage does not answer, the run logs it and stops: nothing is half-done (each
purge deletes rows that stay expired), and the next run takes up what is left.
"""

from __future__ import annotations

import logging

import azure.functions as func

from lib.telemetry import invocation_parent, joined

bp = func.Blueprint()
log = logging.getLogger(__name__)


@bp.function_name("cleanup")
@bp.timer_trigger(arg_name="timer", schedule="0 */15 * * * *", run_on_startup=False)
def cleanup(timer: func.TimerRequest, context: func.Context = None) -> None:  # type: ignore[assignment]
    from lib.bootstrap import background_services
    from lib.net.budget import unavailable, within
    from lib.sms.cleanup import purge
    from lib.storage import StorageUnavailable

    svc = background_services()
    with joined(*invocation_parent(context)), within(svc.settings.background_budget, "background"):
        try:
            sessions = svc.sessions.purge_expired()
            sealed = svc.sealed.purge_expired()
            sms = purge(svc.store)
            sign_outs = svc.portal_sessions.purge_expired()
            dead_letters = svc.writeback_failures.purge_expired()
        except StorageUnavailable as exc:
            unavailable("storage", f"cleanup stopped: {exc}")  # logged; the next run goes on
            return
    log.info(
        "cleanup",
        extra={
            "sessions_removed": sessions,
            "sealed_removed": sealed,
            "sms_removed": sms,
            "portal_sign_outs_removed": sign_outs,
            "writeback_failures_removed": dead_letters,
            "past_due": timer.past_due,
        },
    )
