"""SMART sign-in callback (and, with the launch feature, the EHR launch URLs)."""

from __future__ import annotations

import azure.functions as func

from functions._http import handler
from lib.web.http import Request, Response

bp = func.Blueprint()


@bp.function_name("launch_callback")
@bp.route(route="launch/callback", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@handler(pages=True)
def launch_callback(request: Request) -> Response:
    from lib.callback import handle
    from lib.services import services

    return handle(request, services())
