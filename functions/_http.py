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
import re
import time
import uuid
from collections.abc import Callable

import azure.functions as func

from lib.net.budget import unavailable, within
from lib.telemetry import invocation_parent, joined
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
    # The v1 Python worker takes a whole body: chunks are joined here, at the very edge (HTTP
    # streams need the FastAPI extension, which changes every function's types: docs/reports.md).
    body = b"".join(resp.chunks) if resp.chunks is not None else resp.body
    return func.HttpResponse(body=body, status_code=resp.status, headers=headers)


def _budget() -> float:
    from lib.settings import get_settings  # on first use, not at cold start

    return get_settings().interactive_budget


def _with_security_headers(response: Response) -> Response:
    from lib.settings import SettingsError, get_settings  # on first use, not at cold start

    try:
        settings = get_settings()
    except SettingsError:  # the answer says so (SRV-NOT-CONFIGURED); nothing may frame it
        return security_headers(response, frame_ceiling=frozenset())
    return security_headers(
        response,
        https=settings.public_url.startswith("https://"),
        frame_ceiling=settings.frame_ceiling,
    )


def _failure(exc: Exception, request: Request, request_id: str, started: float) -> AppError:
    """The coded error an exception becomes; anything undescribable is logged in full."""
    # Imported here, not at the top: both modules pull in pydantic, which cold start does without.
    from lib.settings import SettingsError
    from lib.storage.tables import StorageUnavailable

    if isinstance(exc, AppError):
        log.info("request failed", extra={"error_code": exc.code, "path": request.path})
        return exc
    if isinstance(exc, StorageUnavailable):  # logs the dependency and how long it took
        return unavailable("storage", str(exc) or "no answer", started=started)
    if isinstance(exc, SettingsError):  # names the setting, never its value
        log.error("not configured: %s", exc, extra={"path": request.path})
        return AppError("SRV-NOT-CONFIGURED", headers={"Retry-After": "300"})
    log.exception("unhandled error", extra={"path": request.path, "request_id": request_id})
    return AppError("SRV-INTERNAL")


# A caller's X-Request-Id is kept (a gateway's trace id: a GUID, hex, `host:counter`); anything
# else would be echoed into every error answer and log line as sent, so it gets one of ours.
REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")


def _request_id(request: Request) -> str:
    given = request.headers.get("x-request-id") or ""
    return given if REQUEST_ID.fullmatch(given) else uuid.uuid4().hex[:16]


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
        def run(req: func.HttpRequest, context: func.Context = None) -> func.HttpResponse:  # type: ignore[assignment]
            # Our calls join the host's trace of this request (a no-op with telemetry off).
            with joined(*invocation_parent(context)):
                return _run(req)

        def _run(req: func.HttpRequest) -> func.HttpResponse:
            request = to_request(req)
            as_page = pages or request.wants_html()
            request_id = _request_id(request)
            started = time.monotonic()
            storage_down = False
            try:
                with within(_budget()):
                    response = fn(request)
            except Exception as exc:  # every failure becomes a coded answer
                err = _failure(exc, request, request_id, started)
                storage_down = err.code == "SRV-STORAGE-UNAVAILABLE"
                response = render_error(
                    err, as_page=as_page, instance=request.path, request_id=request_id
                )
            if framing is not None and response.status >= 400 and response.kind == "page":
                response.frame_ancestors = _safe_origins(framing, storage_down)
            return to_http_response(_with_security_headers(response))

        # Not functools.wraps: the host binds parameters by name and inspect.signature would
        # follow __wrapped__ to `request`; the trigger's parameter must stay `req`, and
        # `context` (the worker passes it by that name) gives the invocation's trace.
        run.__name__, run.__qualname__, run.__doc__ = fn.__name__, fn.__qualname__, fn.__doc__
        return run

    return wrap
