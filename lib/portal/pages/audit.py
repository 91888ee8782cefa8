"""The audit log (admins): newest first, filtered as GET /api/config/audit is, page by page."""

from __future__ import annotations

from lib.portal import forms
from lib.portal.core import ADMIN, NavItem, Page, Visit, portal_path
from lib.web.errors import AppError
from lib.web.http import Response

FILTERS = ("endpoint", "actor", "action", "since", "until")


def log(visit: Visit) -> Response:
    from lib.admin.api import audit_filters
    from lib.endpoints import audit

    # An empty field of the filter form means "any", not "the empty value".
    query = {k: v.strip() for k, v in visit.request.query.items() if v.strip()}
    try:
        items, cursor = audit.query(visit.svc.store, **audit_filters(query))
        problems: list[dict[str, str]] = []
    except AppError as err:
        if err.code != "CFG-BAD-QUERY":
            raise
        items, cursor, problems = [], None, forms.problems(err)
    later = {k: query[k] for k in FILTERS if k in query}
    return visit.render(
        "audit.html", "Audit log", status=422 if problems else 200, items=items,
        continuation=cursor, filters=later, problems=problems,
    )  # fmt: skip


PAGES = [Page("GET", "portal/audit", ADMIN, log)]
NAV = [NavItem("Audit log", portal_path("audit"), ADMIN)]
