"""The SMART EHR launch: launch URLs, the one sign-in callback, and the clinician's visit page."""

from __future__ import annotations

import azure.functions as func

from functions._http import handler
from lib.web.http import Request, Response

bp = func.Blueprint()


def _services():
    from lib.bootstrap import services  # on first use: keeps the cold import cheap

    return services()


def _ehr_origins() -> tuple[str, ...]:
    return _services().endpoints.ehr_origins()


@bp.function_name("launch")
@bp.route(route="launch/{endpoint}/{persona}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@handler(pages=True, framing=_ehr_origins)
def launch(request: Request) -> Response:
    return _services().launch.start(
        request.route["endpoint"], request.route["persona"], request.query
    )


@bp.function_name("launch_callback")
@bp.route(route="launch/callback", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@handler(pages=True, framing=_ehr_origins)
def launch_callback(request: Request) -> Response:
    return _services().callback.handle(request)


@bp.function_name("visit_page")
@bp.route(route="visit", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@handler(pages=True, framing=_ehr_origins)
def visit_page(request: Request) -> Response:
    return _services().visit_pages.page()


@bp.function_name("visit_status")
@bp.route(route="visit/status", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@handler()
def visit_status(request: Request) -> Response:
    return _services().visit_pages.status(request.headers.get("x-visit-token"))


@bp.function_name("launch_confirm")
@bp.route(route="launch/confirm", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@handler(pages=True, framing=_ehr_origins)
def launch_confirm(request: Request) -> Response:
    return _services().microsoft.confirm(request)


@bp.function_name("visit_unlink")
@bp.route(route="visit/unlink", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@handler()
def visit_unlink(request: Request) -> Response:
    return _services().visit_pages.unlink(request.headers.get("x-visit-token"))


@bp.function_name("visit_sms")
@bp.route(route="visit/sms", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@handler()
def visit_sms(request: Request) -> Response:
    return _services().visit_texts.availability(request.headers.get("x-visit-token"))


@bp.function_name("visit_sms_preview")
@bp.route(route="visit/sms/preview", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@handler()
def visit_sms_preview(request: Request) -> Response:
    return _services().visit_texts.preview(request.headers.get("x-visit-token"))


@bp.function_name("visit_sms_send")
@bp.route(route="visit/sms", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@handler()
def visit_sms_send(request: Request) -> Response:
    return _services().visit_texts.send(request.headers.get("x-visit-token"), request.json())


@bp.function_name("signin_window")
@bp.route(route="launch/window", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@handler(pages=True)
def signin_window(request: Request) -> Response:
    return _services().signin_window.window_page()


@bp.function_name("signin_window_handoff")
@bp.route(route="launch/window", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@handler(pages=True)
def signin_window_handoff(request: Request) -> Response:
    return _services().signin_window.take_over(request)


@bp.function_name("signin_window_status")
@bp.route(route="launch/window/status", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@handler()
def signin_window_status(request: Request) -> Response:
    return _services().signin_window.status(request)


@bp.function_name("signin_window_resume")
@bp.route(route="launch/window/resume", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@handler(pages=True, framing=_ehr_origins)
def signin_window_resume(request: Request) -> Response:
    return _services().signin_window.resume(request)
