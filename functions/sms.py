"""SMS: the join link a text carries (GET /api/j/{token})."""

from __future__ import annotations

import azure.functions as func

from functions._http import handler
from lib.web.http import Request, Response

bp = func.Blueprint()


@bp.function_name("sms_join")
@bp.route(route="j/{token}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@handler(pages=True)
def sms_join(request: Request) -> Response:
    from lib.bootstrap import services  # on first use: keeps the cold import cheap

    return services().sms_join.join(request.route["token"])
