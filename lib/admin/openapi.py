"""OpenAPI 3.1 for the config API, generated from the route table and its pydantic models."""

from __future__ import annotations

import copy
import functools
import re
from typing import Any

from pydantic.json_schema import models_json_schema

from lib.admin.api import ROUTES, body_model
from lib.endpoints.models import Endpoint

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
        "Problem": PROBLEM,
    }


def _operation(route) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": route.summary,
        "operationId": re.sub(r"\W+", "_", f"{route.method}_{route.path}").strip("_").lower(),
        "responses": {},
    }
    params = re.findall(r"{(\w+)}", route.path)
    op["parameters"] = [
        {"name": p, "in": "path", "required": True, "schema": {"type": "string"}} for p in params
    ]
    if route.method in ("PATCH", "DELETE"):
        op["parameters"].append(
            {"name": "If-Match", "in": "header", "required": False, "schema": {"type": "string"}}
        )
    if route.body is not None:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": REF.format(model=route.body)}}},
        }
    if route.status == 204:
        op["responses"]["204"] = {"description": "Done"}
    else:
        answer = route.answer
        op["responses"][str(route.status)] = {
            "description": "OK",
            "content": {"application/json": {"schema": {"$ref": REF.format(model=answer)}}},
        }
    problem = {
        "content": {"application/problem+json": {"schema": {"$ref": REF.format(model="Problem")}}}
    }
    op["responses"]["default"] = {"description": "An error from the catalogue", **problem}
    if route.role:
        op["security"] = [{"entra": [route.role.value]}]
        op["description"] = f"Needs the app role `{route.role.value}`."
    return op


@functools.cache
def document(version: str) -> dict[str, Any]:
    bodies = sorted({r.body for r in ROUTES if r.body is not None})
    models = [(body_model(name), "validation") for name in bodies]
    models.append((Endpoint, "serialization"))
    _, top = models_json_schema(models, ref_template=REF)
    defs = top.get("$defs", {})
    endpoint = _endpoint_schema(defs)  # the stored model less its keys: the API never shows them
    schemas = {**defs, "Endpoint": endpoint, **_extra_schemas()}
    paths: dict[str, Any] = {}
    for route in ROUTES:
        paths.setdefault(f"/{route.path}", {})[route.method.lower()] = _operation(route)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "EHR virtual-visit connector: configuration API",
            "version": version,
            "description": "Register and approve FHIR endpoints, read integration records and "
            "the audit trail. Every call needs a Microsoft Entra ID bearer token with an app role.",
        },
        "servers": [{"url": "/api"}],
        "paths": paths,
        "components": {
            "schemas": schemas,
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
