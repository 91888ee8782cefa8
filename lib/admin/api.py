"""The config API: one table of routes that both dispatches requests and writes the OpenAPI file.

Each route names its method, path, the role it needs, its request model (validated, unknown fields
refused) and its answer model. functions/config_api.py registers one HTTP function per path and
hands every request to `dispatch`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pydantic import BaseModel, ValidationError

    from lib.admin.models import EndpointRecord

from lib.admin.auth import AdminAuth, Principal, Role
from lib.web.errors import AppError
from lib.web.http import Request, Response


@dataclass
class Call:
    request: Request
    principal: Principal
    body: Any = None

    def param(self, name: str) -> str:
        return self.request.route[name]


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # relative to /api, with {name} parameters
    role: Role | None  # None: no token (browser redirects, public documents)
    handler: Callable[[Call], Response]
    summary: str
    # Models by name (in lib/admin/models.py), resolved on first use: the function app imports
    # this table at every cold start, and building the models there would cost ~15 ms.
    body: str | None = None
    answer: str | None = None
    status: int = 200


def _services():
    from lib.services import services

    return services()


def _endpoint_answer(record: EndpointRecord, status: int = 200) -> Response:
    resp = Response.json(record.public(), status, {"ETag": record.etag or ""})
    if status == 201:
        resp.headers["Location"] = f"/api/config/endpoints/{record.id}"
    return resp


# --- handlers ----------------------------------------------------------------------------------
def list_endpoints(call: Call) -> Response:
    items = [r.public() for r in _services().endpoints.list()]
    return Response.json({"items": items, "count": len(items)})


def create_endpoint(call: Call) -> Response:
    record = _services().endpoints.create(call.body, call.principal)
    return _endpoint_answer(record, 201)


def get_endpoint(call: Call) -> Response:
    return _endpoint_answer(_services().endpoints.get(call.param("id")))


def update_endpoint(call: Call) -> Response:
    etag = call.request.headers.get("if-match")
    record = _services().endpoints.update(call.param("id"), call.body, etag, call.principal)
    return _endpoint_answer(record)


def delete_endpoint(call: Call) -> Response:
    etag = call.request.headers.get("if-match")
    _services().endpoints.delete(call.param("id"), etag, call.principal)
    return Response(204)


def validate_endpoint(call: Call) -> Response:
    return _endpoint_answer(_services().endpoints.revalidate(call.param("id"), call.principal))


def activate_endpoint(call: Call) -> Response:
    return _endpoint_answer(_services().endpoints.activate(call.param("id"), call.principal))


def disable_endpoint(call: Call) -> Response:
    record = _services().endpoints.set_enabled(call.param("id"), False, call.principal)
    return _endpoint_answer(record)


def enable_endpoint(call: Call) -> Response:
    record = _services().endpoints.set_enabled(call.param("id"), True, call.principal)
    return _endpoint_answer(record)


def start_approval(call: Call) -> Response:
    url = _services().approvals.start(call.param("id"), call.principal)
    return Response.json({"authorize_url": url, "expires_in": 600}, 201)


def reject_endpoint(call: Call) -> Response:
    record = _services().endpoints.reject(call.param("id"), call.body.reason, call.principal)
    return _endpoint_answer(record)


def integration_records(call: Call) -> Response:
    from lib.admin.records import as_text
    from lib.admin.records import integration_records as build

    record = _services().endpoints.get(call.param("id"))
    records = build(record)
    if call.request.query.get("format") == "text" or "text/plain" in call.request.headers.get(
        "accept", ""
    ):
        return Response(200, as_text(record, records).encode(), "text/plain; charset=utf-8")
    return Response.json(records)


def list_mappings(call: Call) -> Response:
    svc = _services()
    record = svc.endpoints.get(call.param("id"))
    found = svc.visits.mappings(record.id, call.request.query.get("entra_oid"))
    items = [
        {"mapping": m.row_key, "entra_oid": m.entra_oid, "created_at": m.created_at.isoformat()}
        for m in found
    ]
    return Response.json({"items": items, "count": len(items)})


def delete_mapping(call: Call) -> Response:
    from lib.admin import audit

    svc = _services()
    record = svc.endpoints.get(call.param("id"))
    removed = svc.visits.forget(record.id, call.param("mapping"))
    if removed is None:
        raise AppError("CFG-MAPPING-NOT-FOUND")
    before = {"mapping": removed.row_key, "entra_oid": removed.entra_oid}
    entry = audit.entry(
        record.partition_key,
        call.principal,
        "mapping.delete",
        f"endpoint:{record.id}",
        before,
        None,
    )
    svc.store.table(audit.CONFIG_TABLE, audit.AuditEntry).create(entry)
    return Response(204)


def list_audit(call: Call) -> Response:
    from lib.admin import audit
    from lib.admin.endpoints import partition

    q = call.request.query
    size = _int(q.get("pageSize", "50"), "pageSize", 1, 200)
    since = _date(q.get("since"), "since") or datetime.now(UTC) - timedelta(days=90)
    until = _date(q.get("until"), "until")
    items, cursor = audit.query(
        _services().store,
        partition_key=partition(q["endpoint"]) if q.get("endpoint") else None,
        actor=q.get("actor"),
        action=q.get("action"),
        since=since,
        until=until,
        size=size,
        cursor=q.get("continuation"),
    )
    data = [e.model_dump(mode="json", exclude={"partition_key"}) for e in items]
    return Response.json({"items": data, "continuation": cursor})


def _int(value: str, name: str, lo: int, hi: int) -> int:
    if not value.isdigit() or not lo <= int(value) <= hi:
        raise AppError("CFG-BAD-QUERY", f"{name} must be a whole number from {lo} to {hi}.")
    return int(value)


def _date(value: str | None, name: str) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise AppError("CFG-BAD-QUERY", f"{name} must be an ISO 8601 date or time.") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


E = "config/endpoints"
ROUTES: list[Route] = [
    Route("GET", E, Role.READER, list_endpoints, "List FHIR endpoints", answer="EndpointList"),
    Route("POST", E, Role.ADMIN, create_endpoint, "Register and validate a FHIR endpoint",
          "EndpointCreate", "Endpoint", 201),
    Route("GET", E + "/{id}", Role.READER, get_endpoint, "Read one endpoint (with ETag)",
          answer="Endpoint"),
    Route("PATCH", E + "/{id}", Role.ADMIN, update_endpoint,
          "Change an endpoint (JSON merge patch, If-Match required)", "EndpointUpdate", "Endpoint"),
    Route("DELETE", E + "/{id}", Role.ADMIN, delete_endpoint,
          "Delete an endpoint (If-Match required; its audit trail stays)", status=204),
    Route("POST", E + "/{id}/validate", Role.ADMIN, validate_endpoint,
          "Fetch discovery again and re-check the endpoint", answer="Endpoint"),
    Route("POST", E + "/{id}/activate", Role.ADMIN, activate_endpoint,
          "Re-apply the activation rules (production needs an active test endpoint)",
          answer="Endpoint"),
    Route("POST", E + "/{id}/disable", Role.ADMIN, disable_endpoint, "Stop accepting launches",
          answer="Endpoint"),
    Route("POST", E + "/{id}/enable", Role.ADMIN, enable_endpoint, "Accept launches again",
          answer="Endpoint"),
    Route("POST", E + "/{id}/approval", Role.APPROVER, start_approval,
          "Start the approver's EHR sign-in (Epic); open the returned URL in a browser",
          answer="ApprovalStart", status=201),
    Route("POST", E + "/{id}/reject", Role.APPROVER, reject_endpoint,
          "Reject the endpoint with a reason (Epic)", "RejectRequest", "Endpoint"),
    Route("GET", E + "/{id}/integration-records", Role.READER, integration_records,
          "Records for the EHR build team (JSON, or text with ?format=text)",
          answer="IntegrationRecords"),
    Route("GET", E + "/{id}/mappings", Role.READER, list_mappings,
          "Clinicians' EHR-to-Microsoft mappings (keyed hashes; filter: entra_oid)",
          answer="MappingList"),
    Route("DELETE", E + "/{id}/mappings/{mapping}", Role.ADMIN, delete_mapping,
          "Remove a mapping: that clinician signs in to Microsoft again on the next launch",
          status=204),
    Route("GET", "config/audit", Role.READER, list_audit,
          "Audit trail, newest first (filters: endpoint, actor, action, since, until)",
          answer="AuditPage"),
]  # fmt: skip


def route_for(method: str, path: str) -> Route | None:
    return next((r for r in ROUTES if r.method == method and r.path == path), None)


@functools.cache
def _auth() -> AdminAuth:
    return _services().auth


def dispatch(request: Request, path: str) -> Response:
    """Authenticate, authorise, validate the body, run the handler."""
    route = route_for(request.method, path)
    if route is None:
        raise AppError("REQ-METHOD")
    principal = _auth().require(request, route.role) if route.role else None
    body = None
    if route.body is not None:
        body = _parse(route.body, request)
    return route.handler(Call(request, principal, body))


def body_model(name: str) -> type[BaseModel]:
    from lib.admin import models

    return getattr(models, name)


def _parse(name: str, request: Request) -> BaseModel:
    from pydantic import ValidationError

    model = body_model(name)
    data = request.json()
    if not isinstance(data, dict):
        raise AppError("REQ-VALIDATION", "The body must be a JSON object.")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise AppError("REQ-VALIDATION", errors=field_errors(exc)) from None


def field_errors(exc: ValidationError) -> list[dict[str, str]]:
    # Never echo the input value back: it may be a secret pasted in the wrong field.
    return [
        {
            "field": ".".join(str(p) for p in e["loc"]) or "(body)",
            "message": e["msg"],
            "type": e["type"],
        }
        for e in exc.errors(include_url=False, include_input=False)
    ]
