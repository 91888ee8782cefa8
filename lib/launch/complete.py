"""The EHR's answer to a launch: code -> tokens -> verified identity -> context -> the visit.

A clinician whose EHR user has no Microsoft mapping yet goes through the one-time Microsoft
sign-in first (signin.py) and comes back to `open_visit`. The EHR's tokens are used within this
request only (one FHIR read of the appointment for its times) and never stored.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from lib.admin.credentials import client_auth_for
from lib.admin.models import EndpointRecord
from lib.launch.start import pinned_discovery, requested_scopes
from lib.launch.visit import open_visit
from lib.privacy import keyed_hash
from lib.services import Services
from lib.sessions import SignInSession
from lib.smart.context import LaunchContext, extract_context
from lib.smart.scopes import missing
from lib.smart.tokens import TokenResponse, exchange_code
from lib.web.errors import AppError
from lib.web.http import Response

log = logging.getLogger(__name__)


def complete(svc: Services, session: SignInSession, code: str) -> Response:
    record = svc.endpoints.get(session.endpoint_id or "")
    token, claims = _tokens(svc, record, session, code)
    absent = missing(
        requested_scopes(record, session.kind), token.granted_scopes, has_id_token=True
    )
    if absent:
        raise AppError("LAUNCH-SCOPE-NOT-GRANTED", "Not granted: " + " ".join(absent))
    context = extract_context(
        token, vendor=record.vendor.value, id_claims=claims, field_map=record.launch.field_map
    )
    pending = _pending_visit(svc, record, token, context)
    if session.kind == "provider":
        return _provider(svc, record, context, pending)
    return _patient(svc, record, token, context, pending)


def _tokens(
    svc: Services, record: EndpointRecord, session: SignInSession, code: str
) -> tuple[TokenResponse, dict[str, Any]]:
    found = pinned_discovery(svc, record)
    hosts = found.hosts.all()
    token = exchange_code(
        svc.http,
        found.config.token_endpoint,
        code,
        session.redirect_uri,
        session.code_verifier,
        client_auth_for(record, svc.keys),
        allowed_hosts=hosts,
    )
    if not token.id_token:
        raise AppError("TOKEN-ID-TOKEN-INVALID", "The EHR returned no id_token.")
    claims = svc.id_tokens.verify(
        token.id_token,
        client_id=record.client_id,
        nonce=session.nonce,
        issuer=found.config.issuer,
        jwks_uri=found.config.jwks_uri,
        pinned_hosts=hosts,
    )
    return token, claims


def _pending_visit(
    svc: Services, record: EndpointRecord, token: TokenResponse, context: LaunchContext
) -> dict[str, Any]:
    """What the visit needs, without identifiers in clear: the visit key, times, department."""
    if context.appointment_id:
        subject = ("Appointment", context.appointment_id)
    elif context.encounter_id:
        subject = ("Encounter", context.encounter_id)
    else:
        raise AppError("LAUNCH-NO-APPOINTMENT")
    appointment = _read(svc, record, token, *subject) if subject[0] == "Appointment" else {}
    return {
        "visit_key": keyed_hash(record.id, *subject),
        "start": appointment.get("start"),
        "end": appointment.get("end"),
        "department": context.department,
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
    refs = [p.get("actor", {}).get("reference", "") for p in appointment.get("participant", [])]
    return [r.split("/", 1)[1] for r in refs if r.startswith("Practitioner/")]


def user_hash(record: EndpointRecord, ehr_user_id: str) -> str:
    return keyed_hash(record.id, ehr_user_id, purpose="ehr-user")


def _provider(
    svc: Services, record: EndpointRecord, context: LaunchContext, pending: dict[str, Any]
) -> Response:
    from lib.launch import signin

    if not context.user_id:
        raise AppError("LAUNCH-NO-USER")
    hashed = user_hash(record, context.user_id)
    organizer = svc.visits.mapping(record.id, hashed)
    if organizer is None:  # first launch of this clinician: one Microsoft sign-in, once
        return signin.begin(svc, record, {**_jsonable(pending), "user_hash": hashed})
    return open_visit(svc, record, "provider", pending, organizer)


def _patient(
    svc: Services,
    record: EndpointRecord,
    token: TokenResponse,
    context: LaunchContext,
    pending: dict[str, Any],
) -> Response:
    visit = svc.visits.get(pending["visit_key"])
    if visit is not None:
        return open_visit(svc, record, "patient", pending, visit.organizer_oid)
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
