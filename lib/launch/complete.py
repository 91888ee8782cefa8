"""The EHR's answer to a launch: code -> tokens -> verified identity -> context -> the visit.

A clinician whose EHR user has no Microsoft mapping yet goes through the one-time Microsoft
sign-in first (signin.py) and comes back to `open_visit`. The EHR's tokens are used within this
request only (one FHIR read of the appointment for its times) and never stored.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from lib.admin.credentials import redeem_code
from lib.admin.models import EndpointRecord
from lib.launch.start import pinned_discovery, requested_scopes
from lib.launch.visit import open_visit
from lib.privacy import keyed_hash
from lib.services import Services
from lib.sessions import SignInSession
from lib.smart.context import LaunchContext, extract_context
from lib.smart.scopes import missing
from lib.smart.tokens import TokenResponse
from lib.visits.store import Visit
from lib.web.errors import AppError
from lib.web.http import Response

log = logging.getLogger(__name__)


def complete(svc: Services, record: EndpointRecord, session: SignInSession, code: str) -> Response:
    found = pinned_discovery(svc, record)
    hosts = found.hosts.all()
    token, claims = redeem_code(
        svc.http, svc.id_tokens, svc.keys, record, found.config, hosts, session, code
    )
    absent = missing(
        requested_scopes(record, session.kind), token.granted_scopes, has_id_token=True
    )
    if absent:
        raise AppError("LAUNCH-SCOPE-NOT-GRANTED", "Not granted: " + " ".join(absent))
    context = extract_context(
        token, vendor=record.vendor.value, id_claims=claims, field_map=record.launch.field_map
    )
    subject = _subject(context)
    visit_key = visit_key_for(record, *subject)
    landed = Landed(record, token, context, subject, visit_key, svc.visits.get(visit_key))
    return (_provider if session.kind == "provider" else _patient)(svc, landed)


@dataclass(frozen=True)
class Landed:
    """What a completed EHR sign-in says: the tokens, the context, and the visit it is about."""

    record: EndpointRecord
    token: TokenResponse
    context: LaunchContext
    subject: tuple[str, str]  # ("Appointment" | "Encounter", FHIR id)
    visit_key: str
    existing: Visit | None


def _subject(context: LaunchContext) -> tuple[str, str]:
    if context.appointment_id:
        return ("Appointment", context.appointment_id)
    if context.encounter_id:
        return ("Encounter", context.encounter_id)
    raise AppError("LAUNCH-NO-APPOINTMENT")


def _pending_visit(svc: Services, landed: Landed) -> dict[str, Any]:
    """What a new visit needs (no identifiers in clear): its key, times, department.

    Only a new visit reads the appointment (for its times and clinicians): a launch into an
    existing visit skips that EHR call.
    """
    kind, rid = landed.subject
    appointment = (
        _read(svc, landed.record, landed.token, kind, rid) if kind == "Appointment" else {}
    )
    return {
        "visit_key": landed.visit_key,
        "start": appointment.get("start"),
        "end": appointment.get("end"),
        "department": landed.context.department,
        "practitioners": _practitioners(appointment),
    }


def _read(
    svc: Services, record: EndpointRecord, token: TokenResponse, kind: str, rid: str
) -> dict[str, Any]:
    """One FHIR read with the launch's token; a failure costs only the appointment's times."""
    try:
        resp = svc.http.get(
            f"{record.fhir_base_url}/{kind}/{rid}",
            headers={
                "Authorization": f"Bearer {token.access_token}",
                "Accept": "application/fhir+json",
            },
        )
        return resp.json() if resp.status == 200 else {}
    except AppError as err:
        log.info("appointment read failed", extra={"error_code": err.code, "endpoint": record.id})
        return {}


def _practitioners(appointment: dict[str, Any]) -> list[str]:
    """Practitioner ids of the participants (relative, absolute or versioned references)."""
    found = []
    for participant in appointment.get("participant") or []:
        actor = (participant or {}).get("actor") or {}
        ref = str(actor.get("reference") or "").split("/_history/")[0]
        parts = ref.rstrip("/").split("/")
        if len(parts) >= 2 and parts[-2] == "Practitioner" and parts[-1]:
            found.append(parts[-1])
    return found


def visit_key_for(record: EndpointRecord, kind: str, fhir_id: str) -> str:
    # The FHIR base is part of the key: re-pointing an endpoint (or re-using its name) at another
    # server must never open another server's Appointment/123 meeting.
    return keyed_hash(record.id, record.fhir_base_url, kind, fhir_id)


def user_hash(record: EndpointRecord, practitioner_id: str) -> str:
    return keyed_hash(
        record.id, record.fhir_base_url, "Practitioner", practitioner_id, purpose="ehr-user"
    )


def _provider(svc: Services, landed: Landed) -> Response:
    from lib.launch import signin

    record = landed.record
    if not landed.context.user_id:
        raise AppError("LAUNCH-NO-USER")
    if landed.context.user_type not in (None, "Practitioner", "PractitionerRole"):
        # A portal user on a provider launch URL: never let them act as a clinician.
        raise AppError("LAUNCH-NO-USER", f"The signed-in user is a {landed.context.user_type}.")
    hashed = user_hash(record, landed.context.user_id)
    organizer = svc.visits.mapping(record.id, hashed)
    if landed.existing is not None and organizer is not None:
        pending = {"visit_key": landed.visit_key}
        return open_visit(svc, record, "provider", pending, organizer, landed.existing)
    pending = _pending_visit(svc, landed)
    if organizer is None:  # first launch of this clinician: one Microsoft sign-in, once
        return signin.begin(svc, record, {**_jsonable(pending), "user_hash": hashed})
    return open_visit(svc, record, "provider", pending, organizer)


def _patient(svc: Services, landed: Landed) -> Response:
    record, existing = landed.record, landed.existing
    if existing is not None:
        pending = {"visit_key": landed.visit_key}
        return open_visit(svc, record, "patient", pending, existing.organizer_oid, existing)
    pending = _pending_visit(svc, landed)
    # The patient is first: the appointment's clinician organizes if we know their account.
    for practitioner in pending["practitioners"]:
        organizer = svc.visits.mapping(record.id, user_hash(record, practitioner))
        if organizer:
            return open_visit(svc, record, "patient", pending, organizer)
    if record.launch.default_organizer:
        return open_visit(svc, record, "patient", pending, record.launch.default_organizer)
    raise AppError("LAUNCH-NO-ORGANIZER")


def _jsonable(pending: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in pending.items()}
