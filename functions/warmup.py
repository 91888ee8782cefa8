"""Warmup: a new instance gets ready before the platform sends it traffic.

Azure calls the `warmup` function when it adds an instance (scale-out, always-ready instances on
Flex Consumption); dev/host calls it before it listens. Cold start itself stays cheap (the host
imports function_app.py on every start); here the settings are validated, the services built (the
libraries they need imported) and the endpoints read, so the first clinician's launch on this
instance does not pay for them. Restarts do not call warmup: everything here also happens on
first use, lazily.
"""

from __future__ import annotations

import logging
import time

import azure.functions as func

bp = func.Blueprint()
log = logging.getLogger(__name__)


@bp.function_name("warmup")
@bp.warm_up_trigger("warmup")
def warmup(warmup: func.WarmUpContext) -> None:
    from lib.bootstrap import services
    from lib.settings import SettingsError

    started = time.monotonic()
    try:
        svc = services()
        svc.endpoints.snapshot()  # the storage connection opened, the endpoint cache filled
        svc.events.ready()  # the visit-events queue opened: a launch's event is one call
        if svc.settings.entra_client_secret:
            # The notification certificate read and Entra's keys fetched: Graph's first
            # notification on this instance is answered without waiting for either.
            svc.notifications().ready()
    except SettingsError as exc:  # names the setting, never its value; requests say so too
        log.error("not configured: %s", exc)
        return
    except Exception:  # storage down: first use will try again, and say so with a code
        log.warning("warmup incomplete", exc_info=True)
        return
    log.info("warm", extra={"duration_ms": int((time.monotonic() - started) * 1000)})
