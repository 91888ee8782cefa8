"""GET /api/launch/{endpoint}/{provider|patient}?iss&launch: the EHR opens us; on to authorize.

Everything that can refuse a launch without talking to anyone happens first (unknown or disabled
endpoint, missing parameters, an `iss` that is not this endpoint's FHIR base): no request leaves
the server for a launch we would refuse. Then discovery (cached, and pinned to the hosts recorded
at validation), a server-side launch session keyed by `state`, and the authorize request, as an
auto-submitting form POST (Epic's preference: long launch tokens overflow URLs) or a redirect.
"""

from __future__ import annotations

from urllib.parse import urlencode, urlsplit

from lib.admin.models import EndpointRecord, EndpointStatus, Vendor
from lib.admin.records import callback_url
from lib.launch import binding
from lib.services import Services
from lib.smart.discovery import Discovery, discover
from lib.smart.pkce import challenge_s256
from lib.smart.scopes import join, patient_launch_scopes, provider_launch_scopes
from lib.web.errors import AppError
from lib.web.http import Response
from lib.web.render import page

ROLES = ("provider", "patient")
MAX_LAUNCH_LENGTH = 4096


def requested_scopes(record: EndpointRecord, role: str) -> list[str]:
    v2 = bool(record.validation and record.validation.permission_v2)
    return provider_launch_scopes(v2=v2) if role == "provider" else patient_launch_scopes(v2=v2)


def launchable(svc: Services, endpoint_id: str, iss: str | None) -> EndpointRecord:
    """The endpoint, if this launch may use it; the precise refusal otherwise. No network."""
    record = svc.endpoints.find(endpoint_id)
    if record is None:
        raise AppError("LAUNCH-UNKNOWN-ENDPOINT")
    if not iss:
        raise AppError("LAUNCH-MISSING-PARAM", "The iss parameter is missing.")
    if iss.rstrip("/") != record.fhir_base_url:
        other = next((e for e in svc.endpoints.list() if e.fhir_base_url == iss.rstrip("/")), None)
        if other is not None and other.environment != record.environment:
            raise AppError(
                "LAUNCH-ENV-MISMATCH",
                f"A {other.environment.value} EHR opened a {record.environment.value} launch URL.",
            )
        raise AppError("LAUNCH-ISS-MISMATCH")
    check_usable(record)
    return record


def check_usable(record: EndpointRecord) -> None:
    if not record.enabled:
        raise AppError("LAUNCH-ENDPOINT-DISABLED")
    if record.status != EndpointStatus.ACTIVE:
        raise AppError("LAUNCH-ENDPOINT-NOT-ACTIVE", f"Status is {record.status.value}.")


def pinned_discovery(svc: Services, record: EndpointRecord) -> Discovery:
    """Cached discovery that still names the hosts recorded when the endpoint was validated."""
    found = discover(svc.http, record.fhir_base_url)
    pinned = record.validation.pinned_hosts if record.validation else None
    if pinned is not None and found.hosts != pinned:
        found = discover(svc.http, record.fhir_base_url, use_cache=False)  # a stale cache?
        if found.hosts != pinned:
            raise AppError("DISC-HOSTS-MOVED")
    return found


def start(svc: Services, endpoint_id: str, role: str, query: dict[str, str]) -> Response:
    if role not in ROLES:
        raise AppError("REQ-NOT-FOUND")
    iss, launch = query.get("iss"), query.get("launch")
    record = launchable(svc, endpoint_id, iss)
    if not launch or len(launch) > MAX_LAUNCH_LENGTH:
        raise AppError("LAUNCH-MISSING-PARAM", "The launch parameter is missing or too long.")
    found = pinned_discovery(svc, record)
    authorize = _authorize_url(record, role, found.config.authorization_endpoint)
    session = svc.sessions.start(role, redirect_uri=callback_url(), endpoint_id=record.id)
    params = {
        "response_type": "code",
        "client_id": record.client_id,
        "redirect_uri": session.redirect_uri,
        "launch": launch,
        "scope": join(requested_scopes(record, role)),
        "state": session.row_key,
        "aud": iss,  # exactly what the EHR sent: SMART servers compare it byte for byte
        "code_challenge": challenge_s256(session.code_verifier),
        "code_challenge_method": "S256",
        "nonce": session.nonce,
    }
    if record.vendor == Vendor.EPIC or "authorize-post" in found.capabilities:
        resp = _auto_post(record, authorize, params)
    else:
        resp = Response.redirect(f"{authorize}?{urlencode(params)}")
    return binding.bind(resp, session.row_key, svc.settings)


def _authorize_url(record: EndpointRecord, role: str, advertised: str) -> str:
    """Oracle Health publishes the provider persona's authorize URL; patients sign in at the
    patient persona's (same tenant, same host, so the pinned hosts still hold)."""
    if record.vendor == Vendor.CERNER and role == "patient":
        return advertised.replace("/personas/provider/", "/personas/patient/")
    return advertised


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _auto_post(record: EndpointRecord, authorize: str, params: dict[str, str]) -> Response:
    resp = page("launch_post.html", action=authorize, fields=params)
    # form-action also governs the redirects after the POST: allow every host the EHR's sign-in
    # was pinned to, not only the authorize URL's.
    pinned = (
        record.validation.pinned_hosts.all()
        if record.validation and record.validation.pinned_hosts
        else set()
    )
    resp.form_action = tuple(sorted({_origin(authorize), *(f"https://{h}" for h in pinned)}))
    resp.frame_ancestors = tuple(record.launch.ehr_origins)
    return resp
