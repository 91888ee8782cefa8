"""The config API's HTTP functions: one per path of lib/admin/api.ROUTES, plus the OpenAPI file.

Generated from the route table rather than written out one by one, so the registered routes, the
dispatcher and the OpenAPI document are the same list.
"""

from __future__ import annotations

import re

import azure.functions as func

from functions._http import handler
from lib.admin.api import ROUTES, dispatch
from lib.web.http import Request, Response

bp = func.Blueprint()


def _register(path: str, methods: list[str]) -> None:
    name = "config_" + re.sub(r"\W+", "_", path.removeprefix("config/")).strip("_")

    @bp.function_name(name)
    @bp.route(route=path, methods=methods, auth_level=func.AuthLevel.ANONYMOUS)
    @handler()
    def run(request: Request) -> Response:
        from lib.bootstrap import services  # on first use: keeps the cold import cheap

        return dispatch(services(), request, path)


for _path in dict.fromkeys(r.path for r in ROUTES):
    _register(_path, [r.method for r in ROUTES if r.path == _path])


@bp.function_name("openapi")
@bp.route(route="openapi.json", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@handler()
def openapi(request: Request) -> Response:
    from lib.admin.openapi import document
    from lib.health import app_version
    from lib.settings import get_settings

    resp = Response.json(document(app_version(), get_settings().local_mode))
    resp.headers["Cache-Control"] = "public, max-age=300"
    return resp
