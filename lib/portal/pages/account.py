"""Signing in and out, and the home page that says who is signed in and what they may do."""

from __future__ import annotations

from lib.portal.core import SIGNED_IN, NavItem, Page, Visit, portal_path
from lib.web.http import Response


def home(visit: Visit) -> Response:
    return visit.render("home.html", "Admin portal")


def sign_in(visit: Visit) -> Response:
    return visit.svc.portal_signin.begin(visit.request.query.get("next"))


def sign_out(visit: Visit) -> Response:
    """POST only, with the CSRF token: a link on another site cannot sign anyone out."""
    answer = Response.redirect(portal_path("signed-out"), 303)
    assert visit.session is not None  # SIGNED_IN: app.py has read it
    return visit.svc.portal_sessions.end(answer, visit.session)


def signed_out(visit: Visit) -> Response:
    return visit.render("signed_out.html", "Signed out")


PAGES = [
    Page("GET", "portal", SIGNED_IN, home),
    Page("GET", "portal/signin", None, sign_in),
    Page("POST", "portal/signout", SIGNED_IN, sign_out),
    Page("GET", "portal/signed-out", None, signed_out),
]
NAV = [NavItem("Home", portal_path(), SIGNED_IN)]
