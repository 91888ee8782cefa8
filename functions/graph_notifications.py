"""Microsoft Graph's change and lifecycle notifications (lib/notifications/webhook.py)."""

from __future__ import annotations

import azure.functions as func

from functions._http import handler
from lib.web.http import Request, Response

bp = func.Blueprint()


@bp.function_name("graph_notifications")
@bp.route(route="graph/notifications", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@handler()
def graph_notifications(request: Request) -> Response:
    from lib.bootstrap import services  # on first use: keeps the cold import cheap

    return services().notifications().receive(request)
