"""Form fields to the config API's request models, and their problems back to the form.

The portal validates with the same models as the API (lib/endpoints/models.py), so a field the
API refuses is refused here with the same message; only the shape differs (flat form fields,
one origin a line).
"""

from __future__ import annotations

import re
from typing import Any

from lib.web.errors import AppError
from lib.web.http import whole_number

# What a model's field path is called on the form.
LABELS = {
    "id": "Endpoint id",
    "fhir_base_url": "FHIR base URL",
    "vendor": "EHR vendor",
    "environment": "Environment",
    "organization": "Organization",
    "client_id": "Client id",
    "client_auth": "Client authentication",
    "client_auth.client_secret_basic.secret_setting": "Secret setting",
    "client_auth.private_key_jwt.alg": "Signing algorithm",
    "approver": "Approver",
    "approver.oid": "Approver object id",
    "approver.display_name": "Approver name",
    "launch.ehr_origins": "EHR origins",
    "reason": "Reason",
    "host": "Host",
    # texts (lib/portal/pages/sms.py)
    "organization_name": "Organization name in texts",
    "time_zone": "Clinic time zone",
    "default_region": "Default phone region",
    "reminder_offsets_minutes": "Reminders",
    "quiet_hours.start": "Quiet hours from",
    "quiet_hours.end": "Quiet hours until",
    "join_window.before_minutes": "Join link: minutes before",
    "join_window.after_minutes": "Join link: minutes after",
    "certificate": "Certificate",
    "area_code": "Area code",
    # call-quality thresholds (lib/portal/pages/reports.py)
    "round_trip_ms": "Average round trip",
    "packet_loss": "Average packet loss rate",
    "jitter_ms": "Average jitter",
    "media": "Streams judged",
}


# Numbers as a person types them, in ASCII: not int() / float()'s grammar, which also reads
# "1_000", "nan", "inf" and other scripts' digits ("٣٠" is 30), saving what the form never showed
# (and str.isdigit() is true of "²", which int() then refuses).
DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]{1,3})?")


def whole(text: str) -> Any:
    """A whole number typed in a field, or the text for the (strict) model to name."""
    found = whole_number(text)
    return found if found is not None else text.strip()


def decimal(text: str) -> Any:
    """A decimal number typed in a field, or the text for the (strict) model to name."""
    text = text.strip()
    return float(text) if DECIMAL.fullmatch(text) else text


def lines(text: str | None) -> list[str]:
    return [line.strip() for line in (text or "").splitlines() if line.strip()]


def client_auth(form: dict[str, str]) -> dict[str, Any]:
    method = form.get("auth_method", "")
    if method == "client_secret_basic":
        return {"method": method, "secret_setting": form.get("secret_setting", "").strip()}
    return {"method": method, "alg": form.get("alg") or "RS384"}


def approver(form: dict[str, str]) -> dict[str, str] | None:
    oid, name = form.get("approver_oid", "").strip(), form.get("approver_name", "").strip()
    return {"oid": oid, "display_name": name} if oid or name else None


def endpoint_body(form: dict[str, str]) -> dict[str, Any]:
    """An EndpointCreate body from the add form."""
    body: dict[str, Any] = {
        "fhir_base_url": form.get("fhir_base_url", "").strip(),
        "vendor": form.get("vendor", ""),
        "environment": form.get("environment", ""),
        "organization": form.get("organization", "").strip(),
        "client_id": form.get("client_id", "").strip(),
        "client_auth": client_auth(form),
        "launch": {
            "ehr_origins": lines(form.get("ehr_origins")),
            "open_teams_directly": form.get("open_teams_directly") == "on",
        },
    }
    if form.get("id", "").strip():
        body["id"] = form["id"].strip()
    if approver(form) is not None:
        body["approver"] = approver(form)
    return body


def validated(model_name: str, data: dict[str, Any], local_mode: bool) -> Any:
    """The API's model for `data`, or REQ-VALIDATION naming each field (as the API does)."""
    from pydantic import ValidationError

    from lib.admin.api import body_model, field_errors

    try:
        return body_model(model_name).model_validate(data, context={"local_mode": local_mode})
    except ValidationError as exc:
        raise AppError("REQ-VALIDATION", errors=field_errors(exc)) from None


def _label(field: str) -> str:
    """A field's name on the form; an item of a list (`reminder_offsets_minutes.1`) is named by
    its list and its place."""
    head, _, index = field.rpartition(".")
    if field not in LABELS and index.isdigit() and head in LABELS:
        return f"{LABELS[head]} (item {int(index) + 1})"
    return LABELS.get(field, field)


def problems(err: AppError) -> list[dict[str, str]]:
    """What a form shows for a refused change: each field's problem, or the error's sentence."""
    if err.errors:
        return [{"field": _label(e["field"]), "message": e["message"]} for e in err.errors]
    d = err.definition
    return [{"field": d.code, "message": err.detail or d.sentence}]
