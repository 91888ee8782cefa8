"""Reports (readers and up): the usage and call-quality reports over the same service as
GET /api/reports/* (lib/reports/service.py): presets and filters, three charts drawn on the
server as inline SVG with their numbers as tables, the visits page by page, and the CSV."""

from __future__ import annotations

from typing import Any

from lib.portal import forms
from lib.portal.core import ADMIN, READER, NavItem, Page, Visit, portal_path
from lib.web.errors import AppError
from lib.web.http import Response

FILTERS = ("preset", "from", "to", "endpoint", "department")
PAGE_SIZE = 50
PRESET_LABELS = {"7d": "Last 7 days", "30d": "Last 30 days", "90d": "Last 90 days",
                 "custom": "From and to below"}  # fmt: skip


def _query(visit: Visit) -> dict[str, str]:
    """The filter form's fields as the API's query: a preset, or custom dates (not both)."""
    query = {k: v.strip() for k, v in visit.request.query.items() if v.strip()}
    if query.get("preset") == "custom":
        query.pop("preset")
    elif "preset" in query:
        query.pop("from", None), query.pop("to", None)
    return query


def _scope(visit: Visit, query: dict[str, str]):
    from lib.reports.ranges import parse_range

    return parse_range(query, visit.svc.reports.today())


def reports(visit: Visit) -> Response:
    from lib.reports.charts import summary_charts
    from lib.reports.ranges import Position

    query = _query(visit)
    problems: list[dict[str, str]] = []
    try:
        scope = _scope(visit, query)
        token = visit.request.query.get("continuation")
        after = Position.parse(token) if token else None
    except AppError as err:
        if err.code not in ("CFG-BAD-QUERY", "RPT-BAD-RANGE", "RPT-BAD-CONTINUATION"):
            raise
        problems = forms.problems(err)
        query, after = {}, None
        scope = _scope(visit, query)
    svc = visit.svc.reports
    summary = svc.summary(scope)
    items, nxt = svc.page(scope, PAGE_SIZE, after, admin=visit.may(ADMIN))
    kept = {k: query[k] for k in FILTERS if k in query}
    return visit.render(
        "reports.html", "Reports", status=422 if problems else 200, problems=problems,
        scope=scope, summary=summary, charts=summary_charts(summary), items=items,
        continuation=nxt, filters=kept, form=_form(visit, kept), admin=visit.may(ADMIN),
        endpoints=_endpoint_choices(visit, kept.get("endpoint")), presets=PRESET_LABELS,
        limits=visit.svc.thresholds.get(),
    )  # fmt: skip


def _endpoint_choices(visit: Visit, chosen: str | None) -> list[str]:
    """The registered endpoints, and the one asked for if it is not (any more): a removed
    endpoint's past visits are still in the reports."""
    found = sorted(e.id for e in visit.svc.endpoints.list())
    return [*found, chosen] if chosen and chosen not in found else found


def _form(visit: Visit, kept: dict[str, str]) -> dict[str, Any]:
    preset = kept.get("preset") or ("custom" if "from" in kept or "to" in kept else "30d")
    return {**kept, "preset": preset}


def download(visit: Visit) -> Response:
    """The CSV of the filtered range: what GET /api/reports/visits?format=csv answers."""
    scope = _scope(visit, _query(visit))
    name = f"visits-{scope.first.isoformat()}-{scope.last.isoformat()}.csv"
    return Response(
        200,
        content_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
        chunks=visit.svc.reports.csv(scope, admin=visit.may(ADMIN)),
    )


PAGES = [
    Page("GET", "portal/reports", READER, reports),
    Page("GET", "portal/reports/csv", READER, download),
]
NAV = [NavItem("Reports", portal_path("reports"), READER)]
