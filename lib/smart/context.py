"""The launch context: which appointment, encounter, patient and user a launch is about.

SMART puts context beside the access token, and each vendor adds its own fields:
- generic SMART: `patient`, `encounter`, `fhirContext` ([{"reference": "Appointment/123"}, ...]);
- Epic: `appointment` (FHIR id), `loginDepartment`; other fields (user id, CSN, department) are
  configured per customer in the integration record, so they come through a per-endpoint
  field map, e.g. {"ehr_user_id": "epicUserID", "department": "loginDepartment", "csn": "csn"};
- Cerner: `user` (Practitioner id), `username`, `tenant`.

A field map is {context name: token-response field}. The names `ehr_user_id`, `department`,
`tenant`, `appointment`, `encounter`, `patient` fill the `LaunchContext` attributes; any other
name lands in `extras`. The caller passes the vendor's defaults merged with the endpoint's map
(`VendorProfile.field_map` in lib/ehr/profiles.py).

The EHR user is the id_token's `fhirUser` when present (it is signed); the vendor field otherwise.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from lib.smart.id_token import FHIR_ID, fhir_user, parse_reference
from lib.web.errors import AppError

if TYPE_CHECKING:
    from lib.smart.tokens import TokenResponse

# A user id from a vendor field (Epic's configured user id, Cerner's `user`): printable, short.
EHR_USER_ID = re.compile(r"^[\x21-\x7e]{1,128}$")
# context name -> LaunchContext attribute
_ATTRIBUTES = {
    "ehr_user_id": "user_id",
    "department": "department",
    "tenant": "tenant",
    "appointment": "appointment_id",
    "encounter": "encounter_id",
    "patient": "patient_id",
}


class LaunchContext(BaseModel):
    """What a launch is about. Ids are FHIR logical ids (no resource type prefix)."""

    appointment_id: str | None = None
    # SMART 2.1 identifier-only context ("system|value"): resolved by a search before use
    appointment_identifier: str | None = None
    encounter_id: str | None = None
    patient_id: str | None = None
    user_id: str | None = None
    user_type: str | None = None  # Practitioner / Patient / RelatedPerson; None when unknown
    department: str | None = None
    tenant: str | None = None
    need_patient_banner: bool | None = None
    extras: dict[str, str] = Field(default_factory=dict)


def _text(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    return str(value).strip() or None


def _id_of(value: Any, resource_type: str) -> str | None:
    """A bare id, or the id out of a 'Type/id' / absolute reference of the right type."""
    text = _text(value)
    if text is None or "/" not in text:
        return text
    parsed = parse_reference(text)
    return parsed[1] if parsed and parsed[0] == resource_type else None


LAUNCH_ROLE = "launch"


def _launch_items(fhir_context: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """SMART 2.1: an item without `role` (or with role `launch`) is the launch's own context;
    any other role is additional context (e.g. the encounter a questionnaire belongs to)."""
    return [i for i in fhir_context if i.get("role") in (None, LAUNCH_ROLE)]


def context_references(fhir_context: list[dict[str, Any]]) -> dict[str, str]:
    """{resource type: id} from `fhirContext` references (first of each type wins)."""
    found: dict[str, str] = {}
    for item in _launch_items(fhir_context):
        reference = item.get("reference")
        parsed = parse_reference(reference) if isinstance(reference, str) else None
        if parsed and item.get("type") in (None, parsed[0]):
            found.setdefault(parsed[0], parsed[1])
    return found


def context_identifiers(fhir_context: list[dict[str, Any]]) -> dict[str, str]:
    """{resource type: "system|value"} from identifier-only `fhirContext` items (SMART 2.1),
    in the token form a FHIR search takes (`Appointment?identifier=system|value`)."""
    found: dict[str, str] = {}
    for item in _launch_items(fhir_context):
        identifier, kind = item.get("identifier"), item.get("type")
        if item.get("reference") or not isinstance(identifier, dict) or not isinstance(kind, str):
            continue
        system, value = identifier.get("system"), identifier.get("value")
        if isinstance(value, str) and value and (system is None or isinstance(system, str)):
            found.setdefault(kind, f"{system}|{value}" if system else value)
    return found


def _mapped_fields(token: TokenResponse, field_map: Mapping[str, str]) -> dict[str, str]:
    available: dict[str, Any] = {
        **token.extras,
        "patient": token.patient,
        "encounter": token.encounter,
        "tenant": token.tenant,
    }
    values = {name: _text(available.get(source)) for name, source in field_map.items()}
    return {name: value for name, value in values.items() if value is not None}


def extract_context(
    token: TokenResponse,
    *,
    id_claims: Mapping[str, Any] | None = None,
    field_map: Mapping[str, str] | None = None,
) -> LaunchContext:
    """The launch context of a token response (+ verified id_token claims, when there are)."""
    references = context_references(token.fhir_context)
    mapped = _mapped_fields(token, field_map or {})
    found: dict[str, Any] = {
        "appointment_id": _id_of(token.extras.get("appointment"), "Appointment")
        or references.get("Appointment"),
        "encounter_id": _id_of(token.encounter, "Encounter") or references.get("Encounter"),
        "patient_id": _id_of(token.patient, "Patient") or references.get("Patient"),
        "appointment_identifier": context_identifiers(token.fhir_context).get("Appointment"),
        "tenant": token.tenant,
        "need_patient_banner": token.need_patient_banner,
    }
    extras: dict[str, str] = {}
    for name, value in mapped.items():
        attribute = _ATTRIBUTES.get(name)
        if attribute is None:
            extras[name] = value
        elif not found.get(attribute):
            found[attribute] = value
    user = fhir_user(id_claims or {})
    if user:
        found["user_type"], found["user_id"] = user
        if user[0] == "Patient" and not found["patient_id"]:
            found["patient_id"] = user[1]  # a patient launch: the user is the patient
    _check_ids(found)
    return LaunchContext(**found, extras=extras)


def _check_ids(found: Mapping[str, Any]) -> None:
    """Ids go into FHIR URLs and keys: anything but FHIR id syntax is refused before any use.

    The error names the field, never the value (it may be patient data, or an attack).
    """
    for name in ("appointment_id", "encounter_id", "patient_id"):
        value = found.get(name)
        if value is not None and not FHIR_ID.match(value):
            raise AppError("LAUNCH-BAD-CONTEXT", f"{name.removesuffix('_id')} is not a FHIR id.")
    user = found.get("user_id")
    if user is not None and not EHR_USER_ID.match(user):
        raise AppError("LAUNCH-BAD-CONTEXT", "The user id is not an id.")
