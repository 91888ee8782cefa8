"""Reports (readers and up): the usage and call-quality reports over the same service as
GET /api/reports/* (lib/reports/service.py): presets and filters, three charts drawn on the
server as inline SVG with their numbers as tables, the visits page by page, and the CSV. Admins
also change the "poor call" thresholds here, through the same `Thresholds` service (ETag,
audit) as PUT /api/config/reports/thresholds."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from lib.portal import forms
from lib.portal.core import ADMIN, READER, NavItem, Page, Visit, portal_path, see_other
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


def reports(
    visit: Visit,
    refused: list[dict[str, str]] | None = None,
    status: int = 200,
    typed: dict[str, str] | None = None,
) -> Response:
    """The page; `refused`: why a thresholds change was refused, and `typed`: what the admin
    typed, shown again to correct (a stale change shows the current values instead)."""
    from lib.reports.charts import summary_charts
    from lib.reports.ranges import Position

    query = _query(visit)
    problems: list[dict[str, str]] = list(refused or [])
    try:
        scope = _scope(visit, query)
        token = visit.request.query.get("continuation")
        after = Position.parse(token, scope) if token else None
    except AppError as err:
        if err.code not in ("CFG-BAD-QUERY", "RPT-BAD-RANGE", "RPT-BAD-CONTINUATION"):
            raise
        problems, status = [*problems, *forms.problems(err)], 422
        query, after = {}, None
        scope = _scope(visit, query)
    svc = visit.svc.reports
    summary = svc.summary(scope)
    items, nxt = svc.page(scope, PAGE_SIZE, after, admin=visit.may(ADMIN))
    kept = {k: query[k] for k in FILTERS if k in query}
    limits = visit.svc.thresholds.get()
    return visit.render(
        "reports.html", "Reports", status=status, problems=problems,
        scope=scope, summary=summary, charts=summary_charts(summary), items=items,
        continuation=nxt, filters=kept, form=_form(visit, kept), admin=visit.may(ADMIN),
        endpoints=_endpoint_choices(visit, kept.get("endpoint")), presets=PRESET_LABELS,
        limits=limits, limit_values=typed or _limit_values(limits),
        saved=visit.request.query.get("saved") == "thresholds" and not problems,
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


def _limit_values(limits: Any) -> dict[str, str]:
    """The thresholds as the form's fields (`:g`: whole numbers without a trailing .0)."""
    numbers = {k: f"{getattr(limits, k):g}" for k in ("round_trip_ms", "packet_loss", "jitter_ms")}
    return {**numbers, "media": ", ".join(limits.media)}


def _limits_body(form: dict[str, str]) -> dict[str, Any]:
    """A ThresholdFields body from the form: numbers as numbers, text left for the model to name
    (the model is strict, so "abc" is refused as "not a number", never read as something)."""

    def number(name: str) -> Any:
        return forms.decimal(form.get(name, ""))

    words = [w.strip().lower() for w in form.get("media", "").split(",") if w.strip()]
    return {"round_trip_ms": number("round_trip_ms"), "packet_loss": number("packet_loss"),
            "jitter_ms": number("jitter_ms"), "media": words}  # fmt: skip


def save_thresholds(visit: Visit) -> Response:
    try:
        body = forms.validated("ThresholdFields", _limits_body(visit.form), False)
        visit.svc.thresholds.put(body, visit.form.get("etag") or None, visit.actor)
    except AppError as err:
        if err.code not in ("REQ-VALIDATION", "CFG-STALE-ETAG", "CFG-IF-MATCH-REQUIRED"):
            raise
        typed = visit.form if err.code == "REQ-VALIDATION" else None
        return reports(visit, forms.problems(err), err.status, typed)
    kept = {k: v for k, v in visit.request.query.items() if k in FILTERS}  # the range shown
    return see_other(portal_path("reports") + "?" + urlencode({**kept, "saved": "thresholds"})
                     + "#thresholds")  # fmt: skip


PAGES = [
    Page("GET", "portal/reports", READER, reports),
    Page("POST", "portal/reports/thresholds", ADMIN, save_thresholds),
    Page("GET", "portal/reports/csv", READER, download),
]
NAV = [NavItem("Reports", portal_path("reports"), READER)]
