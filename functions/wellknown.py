"""GET /api/.well-known/jwks.json: our public signing keys, for EHRs verifying private_key_jwt."""

from __future__ import annotations

import azure.functions as func

from functions._http import handler
from lib.web.http import Request, Response

bp = func.Blueprint()


@bp.function_name("jwks")
@bp.route(route=".well-known/jwks.json", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@handler()
def jwks(request: Request) -> Response:
    from lib.bootstrap import services

    resp = Response.json(services().keys.public_jwks())
    # EHRs cache it; an hour lets a rotation (add, wait, switch) propagate predictably.
    resp.headers["Cache-Control"] = "public, max-age=3600"
    return resp
