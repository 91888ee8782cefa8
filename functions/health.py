"""GET /api/health: version and storage reachability (503 when storage is down)."""

from __future__ import annotations

import azure.functions as func

from functions._http import handler
from lib.health import health_report
from lib.web.http import Request, Response

bp = func.Blueprint()


@bp.function_name("health")
@bp.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@handler()
def health(request: Request) -> Response:
    from lib.settings import get_settings  # on first use: the model costs ~90 ms to import

    report = health_report(get_settings())
    return Response.json(report, 200 if report["status"] == "ok" else 503)
