"""The config API: one table of routes that both dispatches requests and writes the OpenAPI file.

Each route names its method, path, the app role it needs, its request model (validated, unknown
fields refused) and its answer model. functions/config_api.py registers one HTTP function per
path and hands every request, with the services, to `dispatch`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pydantic import BaseModel, ValidationError

    from lib.endpoints.models import Endpoint

from lib.admin import reports_api, sms_api
from lib.admin.auth import AppRole
from lib.admin.calls import Call, ConfigServices, if_match
from lib.web.errors import AppError
from lib.web.http import Request, Response


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # relative to /api, with {name} parameters
    role: AppRole | None  # None: no token (browser redirects, public documents)
    handler: Callable[[Call], Response]
    summary: str
    # Models by name (in lib/endpoints/models.py), resolved on first use: the function app imports
    # this table at every cold start, and building the models there would cost ~15 ms.
    body: str | None = None
    answer: str | None = None
    status: int = 200


def _endpoint_answer(endpoint: Endpoint, status: int = 200) -> Response:
    resp = Response.json(endpoint.public(), status, {"ETag": endpoint.etag or ""})
    if status == 201:
        resp.headers["Location"] = f"/api/config/endpoints/{endpoint.id}"
    return resp


# --- handlers ----------------------------------------------------------------------------------
def list_endpoints(call: Call) -> Response:
    items = [e.public() for e in call.svc.endpoints.list()]
    return Response.json({"items": items, "count": len(items)})


def create_endpoint(call: Call) -> Response:
    endpoint = call.svc.endpoints.create(call.body, call.principal.actor)
    return _endpoint_answer(endpoint, 201)


def get_endpoint(call: Call) -> Response:
    return _endpoint_answer(call.svc.endpoints.get(call.param("id")))


def update_endpoint(call: Call) -> Response:
    etag = if_match(call.request)
    endpoint = call.svc.endpoints.update(call.param("id"), call.body, etag, call.principal.actor)
    return _endpoint_answer(endpoint)


def delete_endpoint(call: Call) -> Response:
    call.svc.endpoints.delete(call.param("id"), if_match(call.request), call.principal.actor)
    return Response(204)


def validate_endpoint(call: Call) -> Response:
    return _endpoint_answer(call.svc.endpoints.revalidate(call.param("id"), call.principal.actor))


def activate_endpoint(call: Call) -> Response:
    return _endpoint_answer(call.svc.endpoints.activate(call.param("id"), call.principal.actor))


def disable_endpoint(call: Call) -> Response:
    return _endpoint_answer(
        call.svc.endpoints.set_enabled(call.param("id"), False, call.principal.actor)
    )


def enable_endpoint(call: Call) -> Response:
    return _endpoint_answer(
        call.svc.endpoints.set_enabled(call.param("id"), True, call.principal.actor)
    )


def start_approval(call: Call) -> Response:
    url = call.svc.approvals.start(call.param("id"), call.principal.actor)
    return Response.json({"authorize_url": url, "expires_in": 600}, 201)


def reject_endpoint(call: Call) -> Response:
    endpoint = call.svc.endpoints.reject(call.param("id"), call.body.reason, call.principal.actor)
    return _endpoint_answer(endpoint)


# The handlers import the endpoint rooms on first use: this table is imported at every cold
# start (functions/config_api.py), and bench/imports.py holds that import to its budget.
def integration_records(call: Call) -> Response:
    from lib.endpoints.records import as_text
    from lib.sms.records import integration_records as build_records

    fmt = _choice(call.request.query.get("format"), "format", ("json", "text"))
    endpoint = call.svc.endpoints.get(call.param("id"))
    records = build_records(endpoint, call.svc.urls, call.svc.sms)
    accept = call.request.headers.get("accept", "")
    if fmt == "text" or (fmt is None and "text/plain" in accept):
        return Response(200, as_text(endpoint, records).encode(), "text/plain; charset=utf-8")
    return Response.json(records)


def list_mappings(call: Call) -> Response:
    from lib.endpoints.models import GUID

    oid = _matching(call.request.query.get("entra_oid"), "entra_oid", GUID)
    endpoint = call.svc.endpoints.get(call.param("id"))
    found = call.svc.mappings.list(endpoint.id, oid)
    items = [
        {"mapping": m.row_key, "entra_oid": m.entra_oid, "created_at": m.created_at.isoformat()}
        for m in found
    ]
    return Response.json({"items": items, "count": len(items)})


def delete_mapping(call: Call) -> Response:
    endpoint = call.svc.endpoints.get(call.param("id"))
    call.svc.mappings.remove_audited(endpoint, call.param("mapping"), call.principal.actor)
    return Response(204)


def list_audit(call: Call) -> Response:
    from lib.endpoints import audit

    items, cursor = audit.query(call.svc.store, **audit_filters(call.request.query))
    data = [e.model_dump(mode="json", exclude={"partition_key"}) for e in items]
    return Response.json({"items": data, "continuation": cursor})


def audit_filters(q: dict[str, str]) -> dict[str, Any]:
    """The audit query's filters from its query parameters (the API's and the portal's)."""
    from lib.endpoints.models import GUID, SLUG
    from lib.endpoints.service import partition

    endpoint = _matching(q.get("endpoint"), "endpoint", SLUG)
    return {
        "partition_key": partition(endpoint) if endpoint else None,
        "actor": _matching(q.get("actor"), "actor", GUID),
        "action": _matching(q.get("action"), "action", AUDIT_ACTION),
        "since": _date(q.get("since"), "since") or datetime.now(UTC) - timedelta(days=90),
        "until": _date(q.get("until"), "until"),
        "size": _int(q.get("pageSize", "50"), "pageSize", 1, 200),
        "cursor": _matching(q.get("continuation"), "continuation", AUDIT_CURSOR),
    }


# --- EHR write-back failures (F17): the dead-letter table (lib/writeback/failures.py) ---------
def failure_filters(q: dict[str, str]) -> dict[str, Any]:
    """The failure listing's filters from its query parameters (the API's and the portal's)."""
    return {
        "endpoint_id": _matching(q.get("endpoint"), "endpoint", ENDPOINT_OR_POISON),
        "since": _date(q.get("since"), "since"),
        "until": _date(q.get("until"), "until"),
        "size": _int(q.get("pageSize", "50"), "pageSize", 1, 100),
        "continuation": _matching(q.get("continuation"), "continuation", FAILURE_CURSOR),
    }


def list_failures(call: Call) -> Response:
    page = call.svc.writeback_failures.list(**failure_filters(call.request.query))
    items = [f.public() for f in page.items]
    return Response.json({"items": items, "count": len(items), "continuation": page.next})


def replay_failure(call: Call) -> Response:
    """Back on the queue under a new job id, same rank: a replay never moves the EHR back."""
    queue = call.svc.writeback_queue()
    found = call.svc.writeback_failures.replay(call.param("failure"), call.principal.actor, queue)
    return Response.json(found.public(), 202)


# Query parameters: what the OpenAPI document declares for them (lib/admin/openapi.py).
FAILURE_ID = r"^(?:[a-z0-9][a-z0-9-]{1,38}[a-z0-9])~[0-9]{13}-[0-9a-f]{32}$"  # failures.py's
WRITEBACK_FAILURES = "config/writeback/failures"
FAILURE_CURSOR = FAILURE_ID  # the last failure of the previous page
ENDPOINT_OR_POISON = r"^(?:poison|[a-z0-9](?:[a-z0-9-]{1,38}[a-z0-9]))$"
AUDIT_ACTION = r"^[a-z]+(?:\.[a-z]+)+$"  # endpoint.create, mapping.delete, ...
AUDIT_CURSOR = r"^audit-[0-9]{13}-[0-9a-f]{8}$"  # the RowKey of the last entry of a page


def _matching(value: str | None, name: str, pattern: str) -> str | None:
    if value is None:
        return None
    if not re.fullmatch(pattern, value):
        raise AppError("CFG-BAD-QUERY", f"{name} is not in the form the API documentation gives.")
    return value


def _choice(value: str | None, name: str, choices: tuple[str, ...]) -> str | None:
    if value is not None and value not in choices:
        raise AppError("CFG-BAD-QUERY", f"{name} must be one of {', '.join(choices)}.")
    return value


def _int(value: str, name: str, lo: int, hi: int) -> int:
    if not re.fullmatch(r"[0-9]{1,9}", value) or not lo <= int(value) <= hi:
        raise AppError("CFG-BAD-QUERY", f"{name} must be a whole number from {lo} to {hi}.")
    return int(value)


# RFC 3339: a full-date, or a date-time with its offset (what `format: date`/`date-time` mean).
DATE_OR_TIME = (
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
    r"(?:[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?(?:[Zz]|[+-][0-9]{2}:[0-9]{2}))?"
)


def _date(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        if not re.fullmatch(DATE_OR_TIME, value):
            raise ValueError(value)
        parsed = datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    except ValueError:
        raise AppError("CFG-BAD-QUERY", f"{name} must be an ISO 8601 date or time.") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _binding_answer(setting: str, binding) -> Response:
    if binding is None:
        raise AppError("CFG-SECRET-HOST-NOT-PENDING", f"{setting} is bound to no host yet.")
    pending = [{"host": h, "asked_by": who} for h, who in sorted(binding.pending.items())]
    return Response.json({"setting": setting, "hosts": binding.hosts, "pending": pending})


def get_secret_binding(call: Call) -> Response:
    setting = call.param("setting")
    return _binding_answer(setting, call.svc.secrets.get(setting))


def approve_secret_host(call: Call) -> Response:
    setting = call.param("setting")
    binding = call.svc.secrets.approve(setting, call.body.host, call.principal.actor)
    return _binding_answer(setting, binding)


ENDPOINTS = "config/endpoints"
SMS = "config/sms"
REPORT_ROUTES = "reports"
ROUTES: list[Route] = [
    Route("GET", ENDPOINTS, AppRole.READER, list_endpoints, "List FHIR endpoints",
          answer="EndpointList"),
    Route("POST", ENDPOINTS, AppRole.ADMIN, create_endpoint,
          "Register and validate a FHIR endpoint", "EndpointCreate", "Endpoint", 201),
    Route("GET", ENDPOINTS + "/{id}", AppRole.READER, get_endpoint,
          "Read one endpoint (with ETag)", answer="Endpoint"),
    Route("PATCH", ENDPOINTS + "/{id}", AppRole.ADMIN, update_endpoint,
          "Change an endpoint (JSON merge patch, If-Match required)", "EndpointUpdate", "Endpoint"),
    Route("DELETE", ENDPOINTS + "/{id}", AppRole.ADMIN, delete_endpoint,
          "Delete an endpoint (If-Match required; its audit trail stays)", status=204),
    Route("POST", ENDPOINTS + "/{id}/validate", AppRole.ADMIN, validate_endpoint,
          "Fetch discovery again and re-check the endpoint", answer="Endpoint"),
    Route("POST", ENDPOINTS + "/{id}/activate", AppRole.ADMIN, activate_endpoint,
          "Re-apply the activation rules (production needs an active test endpoint)",
          answer="Endpoint"),
    Route("POST", ENDPOINTS + "/{id}/disable", AppRole.ADMIN, disable_endpoint,
          "Stop accepting launches", answer="Endpoint"),
    Route("POST", ENDPOINTS + "/{id}/enable", AppRole.ADMIN, enable_endpoint,
          "Accept launches again", answer="Endpoint"),
    Route("POST", ENDPOINTS + "/{id}/approval", AppRole.APPROVER, start_approval,
          "Start the approver's EHR sign-in (Epic); open the returned URL in a browser",
          answer="ApprovalStart", status=201),
    Route("POST", ENDPOINTS + "/{id}/reject", AppRole.APPROVER, reject_endpoint,
          "Reject the endpoint with a reason (Epic)", "RejectRequest", "Endpoint"),
    Route("GET", ENDPOINTS + "/{id}/integration-records", AppRole.READER, integration_records,
          "Records for the EHR build team (JSON, or text with ?format=text)",
          answer="IntegrationRecords"),
    Route("GET", ENDPOINTS + "/{id}/mappings", AppRole.READER, list_mappings,
          "Clinicians' EHR-to-Microsoft mappings (keyed hashes; filter: entra_oid)",
          answer="MappingList"),
    Route("DELETE", ENDPOINTS + "/{id}/mappings/{mapping}", AppRole.ADMIN, delete_mapping,
          "Remove a mapping: that clinician signs in to Microsoft again on the next launch",
          status=204),
    Route("GET", "config/secrets/{setting}", AppRole.READER, get_secret_binding,
          "The token hosts a client secret may be sent to, and the hosts asked for",
          answer="SecretBinding"),
    Route("POST", "config/secrets/{setting}/hosts", AppRole.APPROVER, approve_secret_host,
          "Let a client secret go to one more token host (a second person: not who asked)",
          "SecretHostApproval", "SecretBinding"),
    Route("GET", "config/audit", AppRole.READER, list_audit,
          "Audit trail, newest first (filters: endpoint, actor, action, since, until)",
          answer="AuditPage"),
    Route("GET", WRITEBACK_FAILURES, AppRole.READER, list_failures,
          "EHR write-back failures (the dead-letter table), newest first (filters: endpoint, "
          "since, until)", answer="WritebackFailurePage"),
    Route("POST", WRITEBACK_FAILURES + "/{failure}/replay", AppRole.ADMIN,
          replay_failure,
          "Put a failed write-back job back on the queue (audited; never moves the EHR "
          "backwards)", answer="WritebackFailure", status=202),
    Route("GET", SMS + "/consent", AppRole.READER, sms_api.get_consent,
          "The two SMS consent statements, with who recorded them and when",
          answer="SmsConsent"),
    Route("PUT", SMS + "/consent", AppRole.ADMIN, sms_api.put_consent,
          "Record both consent statements (required before any other SMS setting)",
          "ConsentGrant", "SmsConsent"),
    Route("GET", SMS + "/numbers", AppRole.READER, sms_api.list_numbers,
          "The Communication Services resource's texting numbers and their endpoints",
          answer="SmsNumberList"),
    Route("PUT", SMS + "/numbers/{number}", AppRole.ADMIN, sms_api.link_number,
          "Link a number to endpoints (each endpoint has one number; If-Match once linked)",
          "NumberLinks", "SmsNumber"),
    Route("POST", SMS + "/number-orders", AppRole.ADMIN, sms_api.create_order,
          "Order a toll-free number: answered 202 with the order's status URL (Location)",
          "NumberOrderCreate", "NumberOrder", 202),
    Route("GET", SMS + "/number-orders/{order}", AppRole.READER, sms_api.get_order,
          "An order's progress (searching, purchasing, succeeded, failed); poll after "
          "Retry-After", answer="NumberOrder"),
    Route("GET", SMS + "/endpoints/{id}", AppRole.READER, sms_api.get_settings,
          "An endpoint's text settings and its number", answer="SmsSettings"),
    Route("PATCH", SMS + "/endpoints/{id}", AppRole.ADMIN, sms_api.patch_settings,
          "Change an endpoint's text settings (JSON merge patch; If-Match once stored)",
          "SmsSettingsUpdate", "SmsSettings"),
    Route("GET", SMS + "/certificates/{environment}", AppRole.READER, sms_api.get_certificate,
          "The certificate that verifies this environment's scheduling messages",
          answer="IntakeCertificate"),
    Route("PUT", SMS + "/certificates/{environment}", AppRole.ADMIN, sms_api.put_certificate,
          "Upload the interface engine's public certificate (PEM or base64 DER)",
          "CertificateUpload", "IntakeCertificate"),
    Route("GET", REPORT_ROUTES + "/visits", AppRole.READER, reports_api.visits,
          "The visits of a range, one row each (JSON pages, or all of them as CSV)",
          answer="VisitReportPage"),
    Route("GET", REPORT_ROUTES + "/summary", AppRole.READER, reports_api.summary,
          "Per day and department: counts, averages, no-show rate, texts, poor calls",
          answer="ReportSummary"),
    Route("GET", "config/reports/thresholds", AppRole.READER, reports_api.get_thresholds,
          "The call-quality thresholds that make a stream poor (with ETag)",
          answer="QualityThresholds"),
    Route("PUT", "config/reports/thresholds", AppRole.ADMIN, reports_api.put_thresholds,
          "Change the call-quality thresholds (If-Match from GET; audited)",
          "ThresholdFields", "QualityThresholds"),
]  # fmt: skip


def route_for(method: str, path: str) -> Route | None:
    return next((r for r in ROUTES if r.method == method and r.path == path), None)


def dispatch(svc: ConfigServices, request: Request, path: str) -> Response:
    """Authenticate, authorise, validate the body, run the handler."""
    route = route_for(request.method, path)
    if route is None:
        raise AppError("REQ-METHOD")
    principal = svc.auth.require(request, route.role) if route.role else None
    context = {"local_mode": svc.settings.local_mode}
    body = _parse(route.body, request, context) if route.body is not None else None
    return route.handler(Call(svc, request, principal, body))


def body_model(name: str) -> type[BaseModel]:
    from lib.endpoints import models  # on first use: see Route.body
    from lib.reports import verdicts
    from lib.sms import models as sms_models

    return getattr(models, name, None) or getattr(sms_models, name, None) or getattr(verdicts, name)


def _parse(name: str, request: Request, context: dict[str, Any]) -> BaseModel:
    from pydantic import ValidationError

    model = body_model(name)
    data = request.json()
    if not isinstance(data, dict):
        raise AppError("REQ-VALIDATION", "The body must be a JSON object.")
    try:
        return model.model_validate(data, context=context)
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
