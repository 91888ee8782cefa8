"""Write-back failures (admins): the dead-letter table, newest first, with a replay button.

The same services and filters as GET /api/config/writeback/failures and its replay route; a
replay is audited as `writeback.replay` and never moves the EHR backwards (the job keeps its
rank: lib/writeback/failures.py).
"""

from __future__ import annotations

from lib.portal import forms
from lib.portal.core import ADMIN, NavItem, Page, Visit, portal_path, see_other
from lib.web.errors import AppError
from lib.web.http import Response

FILTERS = ("endpoint", "since", "until")


def failures(visit: Visit) -> Response:
    from lib.admin.api import failure_filters

    query = {k: v.strip() for k, v in visit.request.query.items() if v.strip()}
    try:
        page = visit.svc.writeback_failures.list(**failure_filters(query))
        items, cursor, problems = page.items, page.next, []
    except AppError as err:
        if err.code != "CFG-BAD-QUERY":
            raise
        items, cursor, problems = [], None, forms.problems(err)
    later = {k: query[k] for k in FILTERS if k in query}
    return visit.render(
        "writeback.html", "Write-back failures", status=422 if problems else 200, items=items,
        continuation=cursor, filters=later, problems=problems,
        replayed=visit.request.query.get("replayed", ""),
    )  # fmt: skip


def replay(visit: Visit) -> Response:
    queue = visit.svc.writeback_queue()
    found = visit.svc.writeback_failures.replay(visit.param("failure"), visit.actor, queue)
    return see_other(portal_path("writeback") + f"?replayed={found.id}")


PAGES = [
    Page("GET", "portal/writeback", ADMIN, failures),
    Page("POST", "portal/writeback/{failure}/replay", ADMIN, replay),
]
NAV = [NavItem("Write-back failures", portal_path("writeback"), ADMIN)]
