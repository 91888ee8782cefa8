"""Scheduling intake: signed SIU or FHIR Appointment messages (POST /api/scheduling/...)."""

from __future__ import annotations

import azure.functions as func

from functions._http import handler
from lib.web.http import Request, Response

bp = func.Blueprint()


@bp.function_name("scheduling")
@bp.route(route="scheduling/{endpoint}", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@handler()
def scheduling(request: Request) -> Response:
    from lib.bootstrap import services  # on first use: keeps the cold import cheap

    return services().scheduling.receive(request.route["endpoint"], request)
