"""Communication Services' Event Grid events: delivery reports and inbound texts."""

from __future__ import annotations

import azure.functions as func

from functions._http import handler
from lib.web.http import Request, Response

bp = func.Blueprint()


@bp.function_name("sms_events")
@bp.route(route="sms/events", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@handler()
def sms_events(request: Request) -> Response:
    from lib.bootstrap import services  # on first use: keeps the cold import cheap

    return services().sms_events.receive(request)
