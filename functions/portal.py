"""The admin portal's HTTP functions: one per path of lib/portal/app.PAGES (as config_api does).

The page table is imported on first request, not at cold start: the portal is for a few admins,
and its modules (pydantic models, Jinja2) are not needed to launch a visit.
"""

from __future__ import annotations

import re

import azure.functions as func

from functions._http import handler
from lib.web.http import Request, Response

bp = func.Blueprint()

# The portal's paths and methods, written out here so that registering them imports nothing;
# tests/unit/test_portal_routes.py checks this list against lib/portal/app.PAGES.
PATHS: dict[str, list[str]] = {
    "portal": ["GET"],
    "portal/signin": ["GET"],
    "portal/signout": ["POST"],
    "portal/signed-out": ["GET"],
    "portal/endpoints": ["GET"],
    "portal/new-endpoint": ["GET", "POST"],
    "portal/endpoints/{id}": ["GET"],
    "portal/endpoints/{id}/edit": ["GET", "POST"],
    "portal/endpoints/{id}/validate": ["POST"],
    "portal/endpoints/{id}/activate": ["POST"],
    "portal/endpoints/{id}/enable": ["POST"],
    "portal/endpoints/{id}/disable": ["POST"],
    "portal/endpoints/{id}/records": ["GET"],
    "portal/endpoints/{id}/mappings": ["GET"],
    "portal/endpoints/{id}/mappings/{mapping}/remove": ["POST"],
    "portal/approvals": ["GET"],
    "portal/approvals/{id}/start": ["POST"],
    "portal/approvals/{id}/reject": ["POST"],
    "portal/secrets/{setting}/approve": ["POST"],
    "portal/audit": ["GET"],
    "portal/writeback": ["GET"],
    "portal/writeback/{failure}/replay": ["POST"],
    "portal/reports": ["GET"],
    "portal/reports/csv": ["GET"],
    "portal/reports/thresholds": ["POST"],
    "portal/sms": ["GET"],
    "portal/sms/consent": ["POST"],
    "portal/sms/orders": ["POST"],
    "portal/sms/orders/{order}": ["GET"],
    "portal/sms/numbers/{number}/link": ["POST"],
    "portal/sms/endpoints/{id}": ["GET", "POST"],
    "portal/sms/certificates/{environment}": ["POST"],
}


def _register(path: str, methods: list[str]) -> None:
    name = "portal_" + (re.sub(r"\W+", "_", path.removeprefix("portal")).strip("_") or "home")

    @bp.function_name(name)
    @bp.route(route=path, methods=methods, auth_level=func.AuthLevel.ANONYMOUS)
    @handler(pages=True)
    def run(request: Request) -> Response:
        from lib.bootstrap import services  # on first use: keeps the cold import cheap
        from lib.portal.app import dispatch

        return dispatch(services(), request, path)


for _path, _methods in PATHS.items():
    _register(_path, _methods)
