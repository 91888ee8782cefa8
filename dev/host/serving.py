"""HTTP serving: the WSGI app that routes a request to its function and turns the answer into
a response, as the Python worker does."""

from __future__ import annotations

import logging
import ssl
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import azure.functions as func
from azure.functions import _abc as func_abc
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler
from werkzeug.wrappers import Request, Response

from dev.host.functions import FunctionInfo
from dev.host.invocation import Invocation, Invoker
from dev.host.routes import Route

log = logging.getLogger("dev.host")

# Hop-by-hop or length headers are the server's business, not the function's.
SERVER_HEADERS = {"content-length", "transfer-encoding", "connection"}


def to_http_request(request: Request, route_params: dict[str, str]) -> func.HttpRequest:
    return func.HttpRequest(
        method=request.method,
        url=request.url,
        headers=dict(request.headers.items()),
        params=dict(request.args.items()),
        route_params=route_params,
        body=request.get_data(),
    )


def _header_items(headers: Any) -> Iterator[tuple[str, str]]:
    # werkzeug Headers (what func.HttpResponse holds) keeps repeated names, e.g. Set-Cookie.
    yield from (headers.items() if hasattr(headers, "items") else headers)


def to_wsgi_response(answer: Any) -> Response:
    """Turn what an HTTP function returned into a response, as the Python worker does:
    str and bytes become 200 bodies, None an empty 204."""
    if answer is None:
        return Response(status=204)
    if isinstance(answer, str):
        answer = func.HttpResponse(answer)
    elif isinstance(answer, bytes | bytearray):
        answer = func.HttpResponse(bytes(answer), mimetype="application/octet-stream")
    if not isinstance(answer, func_abc.HttpResponse):
        raise TypeError(f"an HTTP function must return func.HttpResponse, not {type(answer)}")
    headers = [(k, v) for k, v in _header_items(answer.headers) if k.lower() not in SERVER_HEADERS]
    if not any(k.lower() == "content-type" for k, _ in headers):
        mimetype = answer.mimetype
        if mimetype.startswith("text/"):
            mimetype = f"{mimetype}; charset={answer.charset}"
        headers.append(("Content-Type", mimetype))
    return Response(answer.get_body(), status=answer.status_code, headers=headers)


def plain(status: int, text: str, headers: list[tuple[str, str]] | None = None) -> Response:
    return Response(text, status=status, headers=headers, content_type="text/plain; charset=utf-8")


class HttpApp:
    """The WSGI application: routes a request to a function and logs one line per request,
    without the query string (it may carry tokens)."""

    def __init__(self, routes: list[Route], invoker: Invoker) -> None:
        self.routes = sorted(routes, key=lambda r: r.template.precedence)
        self.invoker = invoker

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        request = Request(environ)
        started = time.perf_counter()
        response = self.dispatch(request)
        ms = (time.perf_counter() - started) * 1000
        log.info("%s %s %d %.0fms", request.method, request.path, response.status_code, ms)
        return response(environ, start_response)

    def dispatch(self, request: Request) -> Response:
        matched = [(r, p) for r in self.routes if (p := r.template.match(request.path)) is not None]
        if not matched:
            return plain(404, "Not Found")
        for route, params in matched:
            if route.allows(request.method):
                return self.call(route.fn, request, params)
        allowed = sorted({m for r, _ in matched for m in (r.methods or ())})
        return plain(405, "Method Not Allowed", [("Allow", ", ".join(allowed))])

    def call(self, fn: FunctionInfo, request: Request, params: dict[str, str]) -> Response:
        try:
            invocation = self.invoker.invoke(
                fn,
                to_http_request(request, params),
                "HTTP request",
                request.headers.get("traceparent"),
            )
        except Exception:  # the invoker logged the traceback, as the real host does
            return plain(500, "Internal Server Error")
        try:
            return to_wsgi_response(http_answer(fn, invocation))
        except Exception:
            log.exception("'%s' returned something that is not an HTTP response", fn.name)
            return plain(500, "Internal Server Error")


def http_answer(fn: FunctionInfo, invocation: Invocation) -> Any:
    """The response is the return value, or what was set on a named HTTP output."""
    for binding in fn.output("http"):
        if binding.name != "$return":
            return invocation.outputs[binding.name].get()
    return invocation.result


class QuietRequestHandler(WSGIRequestHandler):
    """Werkzeug's own request line includes the query string; HttpApp logs a safer one."""

    disable_nagle_algorithm = True  # small answers leave at once, as from the real host
    # Keep connections open between requests, as the real host (Kestrel) does: over https a
    # fresh TLS handshake per browser hop is a cost of this stand-in host, not of the app.
    protocol_version = "HTTP/1.1"
    timeout = 120  # an idle keep-alive connection does not hold its thread forever

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


def serve_tls(server: BaseWSGIServer, cert: str | Path, key: str | Path) -> None:
    """Serve https with this certificate. The handshake runs in the per-connection thread:
    werkzeug's own wrapping shakes hands in accept(), so one silent client (a browser's
    preconnect) would stall every other request."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    server.ssl_context = ctx
