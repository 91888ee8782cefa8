"""Rendering: RFC 7807 problem JSON, HTML pages (Jinja2, autoescaped), and security headers."""

from __future__ import annotations

import functools
import secrets
from pathlib import Path
from typing import Any

from lib.web.errors import AppError
from lib.web.http import Response

TEMPLATES = Path(__file__).parent / "templates"
PROBLEM_TYPE_BASE = "https://github.com/ehr-virtual-visit-connector/docs/errors#"


@functools.cache
def _env():
    # Imported here: Jinja2 is only needed when a page is rendered, not on every cold start.
    from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

    return Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def page(template: str, *, status: int = 200, **context: Any) -> Response:
    """Render a page; the CSP nonce for its inline style / script is made here."""
    nonce = secrets.token_urlsafe(16)
    html = _env().get_template(template).render(csp_nonce=nonce, **context)
    response = Response.html(html, status)
    response.headers["X-CSP-Nonce"] = nonce  # consumed by security_headers, then removed
    return response


def problem(
    err: AppError, *, instance: str | None = None, request_id: str | None = None
) -> Response:
    d = err.definition
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + d.code,
        "title": d.title,
        "status": d.status,
        "code": d.code,
        "detail": err.detail or d.sentence,
        "fix": d.fix,
    }
    if instance:
        body["instance"] = instance
    if request_id:
        body["requestId"] = request_id
    if err.errors:
        body["errors"] = err.errors
    response = Response.json(body, d.status, err.headers)
    response.content_type = "application/problem+json"
    return response


def error_page(err: AppError, *, request_id: str | None = None) -> Response:
    d = err.definition
    response = page(
        "error.html",
        status=d.status,
        code=d.code,
        title=d.title,
        sentence=d.sentence,
        detail=err.detail,
        fix=d.fix,
        request_id=request_id,
    )
    response.headers.update(err.headers)
    return response


def render_error(
    err: AppError, *, as_page: bool, instance: str | None, request_id: str | None
) -> Response:
    if as_page:
        return error_page(err, request_id=request_id)
    return problem(err, instance=instance, request_id=request_id)


def security_headers(
    response: Response, *, https: bool = False, frame_ceiling: frozenset[str] | None = None
) -> Response:
    """Headers every answer carries. Pages may be framed only by the origins they name (an EHR).

    `https`: the app is served over https (its public URL), so browsers are told to keep to it
    (HSTS; no includeSubDomains: the hospital's other hosts are not ours to decide for).
    `frame_ceiling`: the deployment's CONNECTOR_FRAME_ORIGINS; origins outside it never frame.
    """
    h = response.headers
    if https:
        h.setdefault("Strict-Transport-Security", "max-age=31536000")
    frame_ancestors, form_action = response.frame_ancestors, response.form_action
    if frame_ceiling is not None:
        frame_ancestors = tuple(o for o in frame_ancestors if o.lower() in frame_ceiling)
    nonce = h.pop("X-CSP-Nonce", None)
    ancestors = " ".join(frame_ancestors) or "'none'"
    h.setdefault("X-Content-Type-Options", "nosniff")
    h.setdefault("Referrer-Policy", "no-referrer")
    # Tokens, visit data and patient context travel through these answers: never cache them.
    h.setdefault("Cache-Control", "no-store")
    h.setdefault("Pragma", "no-cache")
    if response.kind == "page":
        src = f"'nonce-{nonce}'" if nonce else "'none'"
        actions = " ".join(["'self'", *form_action])
        h.setdefault(
            "Content-Security-Policy",
            f"default-src 'none'; style-src {src}; script-src {src}; img-src 'self' data:; "
            f"connect-src 'self'; form-action {actions}; base-uri 'none'; "
            f"frame-ancestors {ancestors}",
        )
        if not frame_ancestors:
            h.setdefault("X-Frame-Options", "DENY")  # for browsers without CSP frame-ancestors
    else:
        h.setdefault("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
    return response
