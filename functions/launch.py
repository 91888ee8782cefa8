"""The SMART EHR launch: launch URLs, the one sign-in callback, and the clinician's visit page."""

from __future__ import annotations

import azure.functions as func

from functions._http import handler
from lib.web.http import Request, Response

bp = func.Blueprint()


def _services():
    from lib.services import services

    return services()


def _ehr_origins() -> tuple[str, ...]:
    return _services().endpoints.ehr_origins()


@bp.function_name("launch")
@bp.route(route="launch/{endpoint}/{role}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@handler(pages=True, framing=_ehr_origins)
def launch(request: Request) -> Response:
    from lib.launch.start import start

    return start(_services(), request.route["endpoint"], request.route["role"], request.query)


@bp.function_name("launch_callback")
@bp.route(route="launch/callback", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@handler(pages=True, framing=_ehr_origins)
def launch_callback(request: Request) -> Response:
    from lib.callback import handle

    return handle(request, _services())


@bp.function_name("visit_page")
@bp.route(route="visit", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@handler(pages=True, framing=_ehr_origins)
def visit_page(request: Request) -> Response:
    from lib.launch.visit import visit_page

    return visit_page(_services())


@bp.function_name("visit_status")
@bp.route(route="visit/status", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@handler()
def visit_status(request: Request) -> Response:
    from lib.launch.visit import visit_status

    return visit_status(_services(), request.headers.get("x-visit-token"))
