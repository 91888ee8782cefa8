"""The reports API (F18 / F19), routed by lib/admin/api.ROUTES: the visits report (JSON pages or
one CSV), the daily summary, and the call-quality thresholds. Readers and up read; only admins
change thresholds, and only admins see the appointment reference column."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from lib.admin.auth import AppRole
from lib.admin.calls import if_match
from lib.web.errors import AppError
from lib.web.http import Response

if TYPE_CHECKING:
    from lib.admin.calls import Call

PAGE_SIZE_DEFAULT, PAGE_SIZE_MAX = 100, 1000


def _scope(call: Call):
    from lib.reports.ranges import parse_range

    return parse_range(call.request.query, call.svc.reports.today())


def _page_size(value: str | None) -> int:
    if value is None:
        return PAGE_SIZE_DEFAULT
    if not re.fullmatch(r"[0-9]{1,9}", value) or not 1 <= int(value) <= PAGE_SIZE_MAX:
        raise AppError(
            "CFG-BAD-QUERY", f"pageSize must be a whole number from 1 to {PAGE_SIZE_MAX}."
        )
    return int(value)


def visits(call: Call) -> Response:
    from lib.reports.ranges import Position

    query = call.request.query
    fmt = query.get("format", "json")
    if fmt not in ("json", "csv"):
        raise AppError("CFG-BAD-QUERY", "format must be one of json, csv.")
    scope = _scope(call)
    size = _page_size(query.get("pageSize"))
    token = query.get("continuation")
    after = Position.parse(token, scope) if token is not None else None
    admin = call.principal.has(AppRole.ADMIN)
    reports = call.svc.reports
    if fmt == "csv":
        name = f"visits-{scope.first.isoformat()}-{scope.last.isoformat()}.csv"
        return Response(
            200,
            content_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
            chunks=reports.csv(scope, admin=admin),
        )
    items, nxt = reports.page(scope, size, after, admin=admin)
    return Response.json(
        {"from": scope.first.isoformat(), "to": scope.last.isoformat(), "items": items,
         "continuation": nxt}
    )  # fmt: skip


def summary(call: Call) -> Response:
    return Response.json(call.svc.reports.summary(_scope(call)))


def get_thresholds(call: Call) -> Response:
    found = call.svc.thresholds.get()
    return Response.json(found.public(), headers={"ETag": found.etag or ""})


def put_thresholds(call: Call) -> Response:
    found = call.svc.thresholds.put(call.body, if_match(call.request), call.principal.actor)
    return Response.json(found.public(), headers={"ETag": found.etag or ""})
