"""The SMS part of the OpenAPI document (config/sms routes): answer schemas from the stored
models less their storage keys, path parameters, and which errors each route can answer."""

from __future__ import annotations

import copy
from typing import Any

from lib.admin.sms_api import ORDER_ID
from lib.endpoints.models import SLUG

PREFIX = "config/sms"
_ENTITY_ONLY = ("partition_key", "row_key", "etag", "timestamp")
# Stored models whose API view is the model less its keys (and fields `public()` leaves out).
STORED = {
    "SmsConsent": ("SmsConsent", ()),
    "SmsNumber": ("SmsNumber", ()),
    "NumberOrder": ("NumberOrder", ("poll_token", "search_id")),
    "SmsSettings": ("EndpointSms", ()),
    "IntakeCertificate": ("IntakeCertificate", ("pem",)),
}
E164 = r"^\+[1-9][0-9]{6,14}$"
PATH_PARAMS = {
    "number": {"type": "string", "pattern": E164, "description": "An E.164 phone number."},
    "order": {"type": "string", "pattern": ORDER_ID, "description": "An order's id."},
    "environment": {
        "type": "string",
        "pattern": "^(?:test|production)$",
        "description": "The environment whose scheduling messages it verifies.",
    },
}
# Changes that need If-Match once the thing exists (the first write needs none).
CONDITIONAL = {
    ("PUT", f"{PREFIX}/consent"),
    ("PUT", f"{PREFIX}/numbers/{{number}}"),
    ("PUT", f"{PREFIX}/certificates/{{environment}}"),
}
# Changes that always need it: settings answer an ETag even before they are first stored.
REQUIRED = {("PATCH", f"{PREFIX}/endpoints/{{id}}")}
WITH_ETAG = {"SmsConsent", "SmsNumber", "IntakeCertificate"}  # once stored; SmsSettings always


def stored_models() -> list[Any]:
    from lib.sms import models

    return [getattr(models, model) for model, _ in STORED.values()]


def schemas(defs: dict[str, Any]) -> dict[str, Any]:
    """The answer schemas, taken out of ``defs`` (the stored models' serialization schemas)."""
    found: dict[str, Any] = {}
    for name, (model, hidden) in STORED.items():
        schema = copy.deepcopy(defs.pop(model))
        for field in (*_ENTITY_ONLY, *hidden):
            schema["properties"].pop(field, None)
        schema["required"] = [r for r in schema.get("required", []) if r in schema["properties"]]
        schema["title"] = name
        found[name] = schema
    found["SmsSettings"]["properties"]["number"] = {
        "anyOf": [{"type": "string", "pattern": E164}, {"type": "null"}],
        "description": "The number this endpoint's texts come from (none: texts cannot be on).",
    }
    consent = found["SmsConsent"]
    for key in ("sends_on_behalf_of_organization", "attendees_consented"):
        consent["properties"][key] = {"anyOf": [consent["properties"][key], {"type": "null"}]}
    consent["description"] = "Both statements, or both null until recorded."
    number = {"type": "object", "required": ["number", "endpoints"], "properties": {
        "number": {"type": "string"}, "number_type": {"type": "string"},
        "country": {"type": "string"}, "sms": {"type": "string"},
        "endpoints": {"type": "array", "items": {"type": "string", "pattern": SLUG}},
        "etag": {"type": ["string", "null"], "description": "If-Match for linking it."},
    }}  # fmt: skip
    found["SmsNumberList"] = {
        "type": "object",
        "required": ["items", "count"],
        "properties": {"items": {"type": "array", "items": number}, "count": {"type": "integer"}},
    }
    return found


def error_statuses(route: Any) -> set[int]:
    if not route.path.startswith(PREFIX):
        return set()
    found: set[int] = set()
    if route.method != "GET":
        found.add(409)  # consent first
    if "number" in route.path:
        found |= {409, 502}  # these call Communication Services: not set up, or it refused
    if route.path.endswith("/certificates/{environment}") and route.method != "GET":
        found.add(422)  # not a usable certificate (SMS-CERT-INVALID)
    if (route.method, route.path) in CONDITIONAL | REQUIRED:
        found |= {412, 428}
    if "{" in route.path:
        found.add(404)
    return found
