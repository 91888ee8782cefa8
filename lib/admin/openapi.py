"""OpenAPI 3.1 for the config API, generated from the route table and its pydantic models."""

from __future__ import annotations

import copy
import functools
import re
from typing import Any

from pydantic.json_schema import models_json_schema

from lib.admin import openapi_reports, openapi_sms
from lib.admin.api import (
    AUDIT_ACTION,
    AUDIT_CURSOR,
    ENDPOINT_OR_POISON,
    FAILURE_CURSOR,
    ROUTES,
    WRITEBACK_FAILURES,
    body_model,
)
from lib.admin.calls import ETAG
from lib.endpoints.models import (
    GUID,
    HTTP_OR_HTTPS_URL,
    HTTPS_URL,
    MAPPING_KEY,
    SLUG,
    Endpoint,
)
from lib.endpoints.secrets import SECRET_SETTING
from lib.writeback.failures import FAILURE_ID

REF = "#/components/schemas/{model}"
_ENTITY_ONLY = ("partition_key", "row_key", "etag", "timestamp")

PROBLEM = {
    "type": "object",
    "description": "RFC 7807 problem details with the connector's error code.",
    "required": ["type", "title", "status", "code", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "code": {"type": "string", "description": "See the error catalogue in the README."},
        "detail": {"type": "string"},
        "fix": {"type": "string"},
        "instance": {"type": "string"},
        "requestId": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "field": {"type": "string"},
                    "message": {"type": "string"},
                    "type": {"type": "string"},
                },
            },
        },
    },
}


def _endpoint_schema(defs: dict[str, Any]) -> dict[str, Any]:
    schema = copy.deepcopy(defs.pop("Endpoint"))
    for name in _ENTITY_ONLY:
        schema["properties"].pop(name, None)
    schema["required"] = [r for r in schema.get("required", []) if r not in _ENTITY_ONLY]
    schema["title"] = "Endpoint"
    return schema


def _extra_schemas() -> dict[str, Any]:
    ref = {"$ref": REF.format(model="Endpoint")}
    link = {"type": "string", "format": "uri"}
    return {
        "EndpointList": {
            "type": "object",
            "required": ["items", "count"],
            "properties": {"items": {"type": "array", "items": ref}, "count": {"type": "integer"}},
        },
        "ApprovalStart": {
            "type": "object",
            "required": ["authorize_url", "expires_in"],
            "properties": {"authorize_url": link, "expires_in": {"type": "integer"}},
        },
        "IntegrationRecords": {"type": "object", "additionalProperties": True},
        "SecretBinding": {
            "type": "object",
            "required": ["setting", "hosts", "pending"],
            "properties": {
                "setting": {"type": "string"},
                "hosts": {"type": "array", "items": {"type": "string"}},
                "pending": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["host", "asked_by"],
                        "properties": {"host": {"type": "string"}, "asked_by": {"type": "string"}},
                    },
                },
            },
        },
        "MappingList": {
            "type": "object",
            "required": ["items", "count"],
            "properties": {
                "items": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "mapping": {"type": "string"},
                            "entra_oid": {"type": "string"},
                            "created_at": {"type": "string"},
                        },
                    },
                },
                "count": {"type": "integer"},
            },
        },
        "AuditPage": {
            "type": "object",
            "required": ["items", "continuation"],
            "properties": {
                "items": {"type": "array", "items": {"type": "object"}},
                "continuation": {"type": ["string", "null"]},
            },
        },
        "WritebackFailure": _FAILURE,
        "WritebackFailurePage": {
            "type": "object",
            "required": ["items", "count", "continuation"],
            "properties": {
                "items": {"type": "array", "items": {"$ref": REF.format(model="WritebackFailure")}},
                "count": {"type": "integer"},
                "continuation": {"type": ["string", "null"]},
            },
        },
        "Problem": PROBLEM,
    }


_TEXT_OR_NULL = {"type": ["string", "null"]}
_TIME_OR_NULL = {"anyOf": [{"type": "string", "format": "date-time"}, {"type": "null"}]}
_INT_OR_NULL = {"type": ["integer", "null"]}
# One dead-letter row (lib/writeback/failures.py `Failure.public`): nothing identifies a patient.
_FAILURE = {
    "type": "object",
    "required": ["id", "endpoint_id", "code", "detail", "attempts", "delays", "failed_at"],
    "properties": {
        "id": {"type": "string", "pattern": FAILURE_ID, "description": "For replay."},
        "endpoint_id": {"type": "string", "description": "The endpoint, or `poison`."},
        "code": {"type": "string", "description": "WB-* code of the last error (catalogue)."},
        "detail": {"type": "string", "description": "HTTP status and the EHR's issue code."},
        "http_status": _INT_OR_NULL,
        "attempts": {"type": "integer", "description": "The queue's dequeue count."},
        "delays": {"type": "integer", "description": "Re-queues after Retry-After."},
        "failed_at": {"type": "string", "format": "date-time"},
        "visit_key": _TEXT_OR_NULL,
        "milestone": {"enum": ["connected", "in_visit", "left", None]},
        "rank": _INT_OR_NULL,
        "replayed_at": _TIME_OR_NULL,
        "replayed_by": _TEXT_OR_NULL,
        "replay_job_id": _TEXT_OR_NULL,
    },
}


# Path parameters, as the handlers find them (anything else is a 404).
PATH_PARAMS = {
    **openapi_sms.PATH_PARAMS,
    "setting": {
        "type": "string",
        "pattern": SECRET_SETTING,
        "description": "A client secret setting's name (EHR_SECRET_...).",
    },
    "id": {"type": "string", "pattern": SLUG, "description": "The endpoint's id."},
    "failure": {
        "type": "string",
        "pattern": FAILURE_ID,
        "description": "A write-back failure's id, as GET config/writeback/failures lists it.",
    },
    "mapping": {
        "type": "string",
        "pattern": MAPPING_KEY,
        "description": "A clinician mapping's key (a keyed hash, as GET .../mappings lists).",
    },
}
# Query parameters by route; the handlers refuse what these refuse (CFG-BAD-QUERY, 400).
_DATE = {
    "anyOf": [{"type": "string", "format": "date-time"}, {"type": "string", "format": "date"}],
}
QUERY: dict[tuple[str, str], list[dict[str, Any]]] = {
    ("GET", "config/audit"): [
        {"name": "endpoint", "schema": {"type": "string", "pattern": SLUG},
         "description": "Only this endpoint's entries."},
        {"name": "actor", "schema": {"type": "string", "pattern": GUID},
         "description": "Only changes by this Entra object id."},
        {"name": "action", "schema": {"type": "string", "pattern": AUDIT_ACTION},
         "description": "Only this action, e.g. endpoint.update or mapping.delete."},
        {"name": "since", "schema": _DATE,
         "description": "Entries at or after this time (default: 90 days ago)."},
        {"name": "until", "schema": _DATE, "description": "Entries before this time."},
        {"name": "pageSize", "schema": {"type": "integer", "minimum": 1, "maximum": 200,
                                        "default": 50}},
        {"name": "continuation", "schema": {"type": "string", "pattern": AUDIT_CURSOR},
         "description": "The `continuation` of the previous page."},
    ],
    ("GET", WRITEBACK_FAILURES): [
        {"name": "endpoint", "schema": {"type": "string",
                                        "pattern": ENDPOINT_OR_POISON},
         "description": "Only this endpoint's failures (`poison`: unreadable messages)."},
        {"name": "since", "schema": _DATE, "description": "Failures at or after this time."},
        {"name": "until", "schema": _DATE, "description": "Failures before this time."},
        {"name": "pageSize", "schema": {"type": "integer", "minimum": 1, "maximum": 100,
                                        "default": 50}},
        {"name": "continuation", "schema": {"type": "string", "pattern": FAILURE_CURSOR},
         "description": "The `continuation` of the previous page."},
    ],
    ("GET", "config/endpoints/{id}/integration-records"): [
        {"name": "format", "schema": {"type": "string", "enum": ["json", "text"]},
         "description": "text: the same records as plain text for a build ticket (also with "
         "Accept: text/plain)."},
    ],
    ("GET", "config/endpoints/{id}/mappings"): [
        {"name": "entra_oid", "schema": {"type": "string", "pattern": GUID},
         "description": "Only the mappings to this Entra object id."},
    ],
    **openapi_reports.QUERY,
}  # fmt: skip

# The error answers, each with the catalogue codes behind it (README "Errors").
ERRORS = {
    400: "The body is not JSON, or a query parameter is not valid (REQ-BAD-JSON, CFG-BAD-QUERY).",
    401: "No valid bearer token (AUTH-MISSING-TOKEN, AUTH-INVALID-TOKEN, AUTH-EXPIRED-TOKEN, "
    "AUTH-WRONG-AUDIENCE).",
    403: "The token lacks the app role, comes from another tenant, or the caller is not the "
    "named approver, or asked for what they approve (AUTH-FORBIDDEN-ROLE, AUTH-WRONG-TENANT, "
    "CFG-NOT-APPROVER, CFG-SECOND-PERSON-REQUIRED).",
    404: "No such endpoint, mapping, secret-host request, number, order or certificate "
    "(CFG-ENDPOINT-NOT-FOUND, CFG-MAPPING-NOT-FOUND, CFG-SECRET-HOST-NOT-PENDING, "
    "SMS-NUMBER-NOT-FOUND, SMS-ORDER-NOT-FOUND, SMS-CERTIFICATE-NOT-FOUND, REQ-NOT-FOUND).",
    409: "The state does not allow this (CFG-ENDPOINT-EXISTS, CFG-NOT-ACTIVE, "
    "CFG-NOT-APPROVABLE, CFG-PRODUCTION-NEEDS-TEST, CFG-APPROVER-NOT-REMOVABLE, "
    "SMS-CONSENT-REQUIRED, SMS-NOT-CONFIGURED, "
    "SMS-NUMBER-NOT-LINKED, SMS-ORGANIZATION-NAME-REQUIRED).",
    412: "It changed since it was read (CFG-STALE-ETAG).",
    413: "The body is larger than 64 KiB (REQ-TOO-LARGE).",
    415: "The body is not JSON (REQ-UNSUPPORTED-MEDIA).",
    422: "A field is missing or not valid, see `errors` (REQ-VALIDATION, CFG-APPROVER-REQUIRED, "
    "CFG-SECRET-SETTING-MISSING, CFG-SECRET-NAME-REFUSED, CFG-SIGNING-KEY-MISSING, "
    "SMS-CERT-INVALID).",
    428: "If-Match is missing (CFG-IF-MATCH-REQUIRED).",
    502: "Communication Services refused the request (SMS-PROVIDER-REFUSED).",
    503: "Storage, Entra ID signing keys or Communication Services are unreachable right now "
    "(SRV-STORAGE-UNAVAILABLE, AUTH-KEYS-UNAVAILABLE, SRV-SMS-UNAVAILABLE).",
}
# What a route can answer besides what its shape implies (see `error_statuses`).
_MORE_ERRORS: dict[tuple[str, str], set[int]] = {
    ("POST", "config/endpoints"): {409},
    ("PATCH", "config/endpoints/{id}"): {409},
    ("POST", "config/endpoints/{id}/activate"): {409},
    ("POST", "config/endpoints/{id}/approval"): {409, 422},
    ("POST", "config/endpoints/{id}/reject"): {409},
    ("GET", "config/endpoints/{id}/integration-records"): {409},
    ("GET", "config/secrets/{setting}"): {404},
    ("POST", WRITEBACK_FAILURES + "/{failure}/replay"): {404, 409, 412},
    ("POST", "config/secrets/{setting}/hosts"): {404, 412},
}
_SAVES = {"validate", "activate", "disable", "enable", "reject"}  # 412 on a concurrent change


def needs_if_match(route) -> bool:
    return route.method in ("PATCH", "DELETE") and route.path == "config/endpoints/{id}"


def takes_if_match(route) -> bool:
    """SMS changes: If-Match once the thing exists (428 without it then), none before."""
    return (route.method, route.path) in openapi_sms.CONDITIONAL


def error_statuses(route) -> set[int]:
    """Every error status the route can answer, from what it does."""
    found = {503}
    if route.role:
        found |= {401, 403}
    if "{id}" in route.path:
        found.add(404)
    if route.body is not None:
        found |= {400, 413, 415, 422}
    if (route.method, route.path) in QUERY:
        found.add(400)
    if needs_if_match(route):
        found |= {412, 428}
    if route.path.rsplit("/", 1)[-1] in _SAVES:
        found.add(412)
    found |= openapi_sms.error_statuses(route) | openapi_reports.error_statuses(route)
    return found | _MORE_ERRORS.get((route.method, route.path), set())


def _answer(route) -> dict[str, Any]:
    if route.status == 204:
        return {"description": "Done"}
    content = {"application/json": {"schema": {"$ref": REF.format(model=route.answer)}}}
    if route.answer == "IntegrationRecords":
        content["text/plain"] = {"schema": {"type": "string"}}
    answer: dict[str, Any] = {"description": "OK", "content": content}
    if route.answer in openapi_sms.WITH_ETAG:
        answer["headers"] = {"ETag": {"$ref": "#/components/headers/ETagOnceStored"}}
    if route.answer == "SmsSettings":
        answer["headers"] = {"ETag": {"$ref": "#/components/headers/ETag"}}
    if route.answer == "NumberOrder":
        answer["headers"] = {"Location": {"$ref": "#/components/headers/OrderLocation"}}
    if route.answer == "Endpoint":
        answer["headers"] = {"ETag": {"$ref": "#/components/headers/ETag"}}
        if route.status == 201:
            answer["headers"]["Location"] = {"$ref": "#/components/headers/Location"}
        answer["links"] = _ENDPOINT_LINKS
    return openapi_reports.answer_extras(route, answer)


# From any answer that is an endpoint: read it, or change it with the ETag that came with it.
_BY_ID = {"id": "$response.body#/id"}
_ENDPOINT_LINKS = {
    "read": {"operationId": "get_config_endpoints_id", "parameters": _BY_ID},
    "update": {
        "operationId": "patch_config_endpoints_id",
        "parameters": {**_BY_ID, "header.If-Match": "$response.header.ETag"},
    },
    "delete": {
        "operationId": "delete_config_endpoints_id",
        "parameters": {**_BY_ID, "header.If-Match": "$response.header.ETag"},
    },
}


def _operation(route) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": route.summary,
        "operationId": re.sub(r"\W+", "_", f"{route.method}_{route.path}").strip("_").lower(),
        "responses": {str(route.status): _answer(route)},
    }
    params = [
        {"name": p, "in": "path", "required": True, "schema": PATH_PARAMS[p]}
        for p in re.findall(r"{(\w+)}", route.path)
    ]
    query = QUERY.get((route.method, route.path), [])
    params += [{"in": "query", "required": False, **q} for q in query]
    if needs_if_match(route):
        params.append({"$ref": "#/components/parameters/IfMatch"})
    if takes_if_match(route):
        params.append({"$ref": "#/components/parameters/IfMatchOnceStored"})
    if (route.method, route.path) in openapi_sms.REQUIRED | openapi_reports.REQUIRED:
        params.append({"$ref": "#/components/parameters/IfMatchSettings"})
    op["parameters"] = params
    if route.body is not None:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": REF.format(model=route.body)}}},
        }
    for status in sorted(error_statuses(route)):
        op["responses"][str(status)] = {"$ref": f"#/components/responses/E{status}"}
    if route.role:
        op["security"] = [{"entra": [route.role.value]}]
        op["description"] = f"Needs the app role `{route.role.value}`."
    return op


def _components_extra() -> dict[str, Any]:
    problem = {"application/problem+json": {"schema": {"$ref": REF.format(model="Problem")}}}
    responses = {f"E{s}": {"description": text, "content": problem} for s, text in ERRORS.items()}
    challenge = {"schema": {"type": "string", "pattern": "^Bearer "}, "required": True,
                 "description": "RFC 6750 challenge."}  # fmt: skip
    responses["E401"]["headers"] = {"WWW-Authenticate": challenge}
    return {
        "responses": responses,
        "parameters": {
            "IfMatch": {
                "name": "If-Match",
                "in": "header",
                "required": True,
                "description": "The ETag from GET /config/endpoints/{id}: changes are refused "
                "without it (428) and when the endpoint changed since (412).",
                "schema": {"type": "string", "pattern": ETAG},
            },
            "IfMatchSettings": {
                "name": "If-Match",
                "in": "header",
                "required": True,
                "description": "The ETag from GET (settings never changed have one too).",
                "schema": {"type": "string", "pattern": ETAG},
            },
            "IfMatchOnceStored": {
                "name": "If-Match",
                "in": "header",
                "required": False,
                "description": "The ETag of the last read, once the setting is stored: the "
                "first write needs none; later ones are refused without it (428) and when it "
                "changed since (412).",
                "schema": {"type": "string", "pattern": ETAG},
            },
        },
        "headers": {
            "ETagOnceStored": {
                "required": False,
                "description": "The version, for If-Match (absent until first stored).",
                "schema": {"type": "string", "pattern": ETAG},
            },
            "OrderLocation": {
                "required": True,
                "description": "The order's status URL, to poll.",
                "schema": {"type": "string", "pattern": "^/api/config/sms/number-orders/"},
            },
            "ETag": {
                "required": True,
                "description": "The endpoint's version, for If-Match.",
                "schema": {"type": "string", "pattern": ETAG},
            },
            "Location": {
                "required": True,
                "description": "Where the new endpoint is read.",
                "schema": {"type": "string", "pattern": "^/api/config/endpoints/"},
            },
        },
    }


def _local(node: Any) -> Any:
    """The schemas as local mode enforces them: FHIR base URLs may also be http."""
    if isinstance(node, dict):
        return {
            k: HTTP_OR_HTTPS_URL if k == "pattern" and v == HTTPS_URL else _local(v)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_local(v) for v in node]
    return node


@functools.cache
def document(version: str, local_mode: bool) -> dict[str, Any]:
    """The OpenAPI document as this deployment enforces it (local mode: http bases too)."""
    bodies = sorted({r.body for r in ROUTES if r.body is not None})
    models = [(body_model(name), "validation") for name in bodies]
    models.append((Endpoint, "serialization"))
    models += [(m, "serialization") for m in openapi_sms.stored_models()]
    _, top = models_json_schema(models, ref_template=REF)
    defs = top.get("$defs", {})
    endpoint = _endpoint_schema(defs)  # the stored model less its keys: the API never shows them
    sms = openapi_sms.schemas(defs)
    reports = openapi_reports.schemas(defs)
    schemas = {**defs, "Endpoint": endpoint, **sms, **reports, **_extra_schemas()}
    if local_mode:
        schemas = _local(schemas)
    paths: dict[str, Any] = {}
    for route in ROUTES:
        paths.setdefault(f"/{route.path}", {})[route.method.lower()] = _operation(route)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "EHR virtual-visit connector: configuration API",
            "version": version,
            "description": "Register and approve FHIR endpoints, read integration records and "
            "the audit trail. Every call needs a Microsoft Entra ID bearer token with an app role."
            + (" Local mode: FHIR base URLs may be http." if local_mode else ""),
        },
        "servers": [{"url": "/api"}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            **_components_extra(),
            "securitySchemes": {
                "entra": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "Entra ID access token for the connector's Application ID "
                    "URI, with the roles Connector.Admin, Connector.Approver or Connector.Reader.",
                }
            },
        },
    }
