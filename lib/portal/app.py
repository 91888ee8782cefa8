"""The portal's router: one table of pages; sign-in, CSRF and roles checked here, for every one.

Order for a request to a page that needs a sign-in:
1. the session cookie (session.py): none, expired or forged, and a GET is sent to the sign-in
   (and back afterwards); anything else gets PORTAL-SIGNED-OUT;
2. a POST must come from our own origin (Origin / Sec-Fetch-Site, when the browser sends them)
   and carry the session's CSRF token (PORTAL-CSRF); the portal changes nothing on a GET (but
   a number order's page, which polls the order a POST started);
3. the page's roles (AUTH-FORBIDDEN-ROLE), on every page and every action;
4. the page's handler, which calls the same services as the config API (lib/admin/api.py);
5. the cookie re-sealed with the new last-seen time (the idle limit slides; the absolute one
   does not).

functions/portal.py registers one HTTP function per path of PAGES.
"""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import quote

from lib.portal.core import Page, PortalServices, Visit
from lib.portal.pages import account, approvals, audit, endpoints, reports, sms, writeback
from lib.web.errors import AppError
from lib.web.http import Request, Response

MODULES = (account, endpoints, approvals, audit, sms, writeback, reports)
PAGES: list[Page] = [p for m in MODULES for p in m.PAGES]
NAV = [n for m in MODULES for n in m.NAV]


def page_for(method: str, path: str) -> Page | None:
    return next((p for p in PAGES if p.method == method and p.path == path), None)


def dispatch(svc: PortalServices, request: Request, path: str) -> Response:
    found = page_for(request.method, path)
    if found is None:
        raise AppError("REQ-METHOD")
    if found.roles is None:  # the sign-in itself, the signed-out page
        return found.handler(Visit(svc, request, None, NAV))
    now = datetime.now(UTC)
    cookies = svc.portal_sessions
    session = cookies.read(request, now)
    if session is None:
        if request.method == "GET":
            return Response.redirect(f"/api/portal/signin?next={quote(request.path)}", 303)
        raise AppError("PORTAL-SIGNED-OUT")
    form: dict[str, str] = {}
    if request.method == "POST":
        _same_origin(request, svc.urls.origin)
        form = request.form()
        cookies.check_csrf(session, form.get("csrf"))
    if found.roles and not any(session.has(r) for r in found.roles):
        needed = " or ".join(r.value for r in found.roles)
        raise AppError("AUTH-FORBIDDEN-ROLE", f"This page needs the {needed} role.")
    session = cookies.touch(session, now)
    response = found.handler(Visit(svc, request, session, NAV, form))
    if "Set-Cookie" not in response.headers:  # sign-out clears it instead
        cookies.issue(response, session)
    return response


def _same_origin(request: Request, origin: str) -> None:
    """A form post from another site fails here even before its (missing) token is checked.

    Our pages send no referrer (Referrer-Policy: no-referrer), so a browser's form post says
    `Origin: null`; Sec-Fetch-Site still tells same-origin from cross-site."""
    sent = request.headers.get("origin")
    site = request.headers.get("sec-fetch-site")
    if sent not in (None, "null") and sent.lower() != origin.lower():
        raise AppError("PORTAL-CSRF", "The form was sent from another site.")
    if site not in (None, "same-origin"):
        raise AppError("PORTAL-CSRF", "The form was sent from another site.")
