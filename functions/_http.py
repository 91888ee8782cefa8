"""The one adapter between the Functions host's HTTP types and lib/web's.

Every HTTP function is wrapped by `handler`: it converts the request, runs the lib/ code, turns any
`AppError` into problem JSON (API clients) or an HTML page (people), turns storage outages into
503, and anything unexpected into a 500 with a reference and no traceback. Security headers are
added to every answer here, so no function can forget them.

Every request runs under one time budget (CONNECTOR_INTERACTIVE_BUDGET_SECONDS, lib/net/budget.py):
a person is waiting, so every call it makes shares that many seconds.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable

import azure.functions as func

from lib.net.budget import unavailable, within
from lib.settings import get_settings
from lib.storage.tables import StorageUnavailable
from lib.web.errors import AppError
from lib.web.http import Headers, Request, Response
from lib.web.render import render_error, security_headers

log = logging.getLogger("functions.http")

Handler = Callable[[Request], Response]


def to_request(req: func.HttpRequest) -> Request:
    return Request(
        method=req.method.upper(),
        url=req.url,
        headers=Headers(dict(req.headers)),
        query=dict(req.params),
        route=dict(req.route_params),
        body=req.get_body() or b"",
    )


def to_http_response(resp: Response) -> func.HttpResponse:
    headers = dict(resp.headers)
    headers["Content-Type"] = resp.content_type
    return func.HttpResponse(body=resp.body, status_code=resp.status, headers=headers)


def _served_over_https() -> bool:
    return get_settings().public_url.startswith("https://")


# The error page's framing origins come from storage: a short look, after the request's budget.
FRAMING_LOOKUP = 1.5


def _safe_origins(framing: Callable[[], tuple[str, ...]], storage_down: bool) -> tuple[str, ...]:
    if storage_down:  # no point asking: the page renders, just not framable
        return ()
    try:
        with within(FRAMING_LOOKUP):
            return framing()
    except Exception:  # storage down: the page still renders, just not framable
        return ()


def handler(
    *, pages: bool = False, framing: Callable[[], tuple[str, ...]] | None = None
) -> Callable[[Handler], Callable[[func.HttpRequest], func.HttpResponse]]:
    """Wrap a lib-level handler. `pages=True`: errors become HTML pages for browsers.

    `framing`: origins that may frame this function's error pages (an EHR showing the launch in
    an iframe must see our error page, not "refused to connect").
    """

    def wrap(fn: Handler) -> Callable[[func.HttpRequest], func.HttpResponse]:
        def run(req: func.HttpRequest) -> func.HttpResponse:
            request = to_request(req)
            as_page = pages or request.wants_html()
            request_id = request.headers.get("x-request-id") or uuid.uuid4().hex[:16]
            started = time.monotonic()
            storage_down = False
            try:
                with within(get_settings().interactive_budget):
                    response = fn(request)
            except AppError as err:
                log.info("request failed", extra={"error_code": err.code, "path": request.path})
                response = render_error(
                    err, as_page=as_page, instance=request.path, request_id=request_id
                )
            except StorageUnavailable as exc:
                storage_down = True
                err = unavailable("storage", str(exc) or "no answer", started=started)
                response = render_error(
                    err, as_page=as_page, instance=request.path, request_id=request_id
                )
            except Exception:
                log.exception(
                    "unhandled error", extra={"path": request.path, "request_id": request_id}
                )
                err = AppError("SRV-INTERNAL")
                response = render_error(
                    err, as_page=as_page, instance=request.path, request_id=request_id
                )
            if framing is not None and response.status >= 400 and response.kind == "page":
                response.frame_ancestors = _safe_origins(framing, storage_down)
            return to_http_response(security_headers(response, https=_served_over_https()))

        # Not functools.wraps: the host binds parameters by name and inspect.signature would
        # follow __wrapped__ to `request`; the trigger's parameter must stay `req`.
        run.__name__, run.__qualname__, run.__doc__ = fn.__name__, fn.__qualname__, fn.__doc__
        return run

    return wrap
