"""One meeting per appointment, and where each person goes next.

Graph's createOrGet is idempotent per organizer, so the visit is claimed in storage first
(create-if-absent): whoever arrives first fixes the organizer, and every later launch, however
concurrent, asks Graph for the meeting under that same organizer and external id, so all of them
get the same meeting without waiting for each other.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from lib.admin.models import EndpointRecord
from lib.privacy import sign, verify
from lib.services import Services
from lib.visits.store import Role, Visit
from lib.web.errors import AppError
from lib.web.http import Response
from lib.web.render import page

SUBJECT = "Virtual visit"  # never patient data: the subject is visible to every participant
PAGE_PURPOSE = "visit-page"
PAGE_TTL = 12 * 3600
DEFAULT_LENGTH = timedelta(hours=1)


def open_visit(
    svc: Services,
    record: EndpointRecord,
    role: Role,
    pending: dict[str, Any],
    organizer: str,
    existing: Visit | None = None,
) -> Response:
    """`existing`: the visit already read (nothing is claimed again)."""
    visit = existing if existing is not None else _claim(svc, record, role, pending, organizer)
    if visit.join_url is None:
        visit = _with_meeting(svc, record, visit, organizer)
    if not visit.join_url or not svc.meetings.join_url_allowed(visit.join_url):
        # Only join URLs that Graph returned, on Teams' hosts: never an open redirect.
        raise AppError("LAUNCH-REDIRECT-REFUSED")
    svc.visits.record(visit.key, f"{role}.connected", role, "launch")
    if role == "patient" or record.launch.open_teams_directly:
        return Response.redirect(visit.join_url)
    token = sign({"v": visit.key, "e": record.id}, purpose=PAGE_PURPOSE, ttl_seconds=PAGE_TTL)
    # In the fragment: browsers never send it to a server, so no request log, proxy or
    # telemetry ever records it; the page hands it to the status call in a header.
    return Response.redirect(f"{svc.settings.public_url}/api/visit#{token}")


def _claim(
    svc: Services, record: EndpointRecord, role: Role, pending: dict[str, Any], organizer: str
) -> Visit:
    """Create-if-absent: the first launch fixes the organizer; later ones get that visit."""
    return svc.visits.claim(
        Visit(
            partition_key=pending["visit_key"],
            row_key="visit",
            endpoint_id=record.id,
            organizer_oid=organizer,
            start=pending.get("start"),
            end=pending.get("end"),
            department=pending.get("department") or record.organization,
            created_at=datetime.now(UTC),
            created_by_role=role,
        )
    ).entity


def _create_meeting(svc: Services, record: EndpointRecord, visit: Visit) -> Visit:
    # Graph needs times; an encounter launch (or a failed appointment read) has none.
    start = visit.start or datetime.now(UTC)
    end = visit.end or start + DEFAULT_LENGTH
    meeting = svc.meetings.create_or_get(
        visit.organizer_oid, visit.key, SUBJECT, start, end,
        allowed_presenters=presenters_for(record, visit.organizer_oid),
    )  # fmt: skip
    return svc.visits.attach_meeting(visit, meeting.id, meeting.join_url)


def _with_meeting(svc: Services, record: EndpointRecord, visit: Visit, organizer: str) -> Visit:
    """The visit's meeting; a claim whose organizer Microsoft does not know is taken over.

    Without this, a visit claimed under an organizer that cannot organize (a default organizer
    without a licence, a clinician who has left) would fail for every later launch too. The
    launcher, whose account is known, takes it over under the visit's ETag: one takeover wins,
    and everyone then gets that organizer's meeting.
    """
    try:
        return _create_meeting(svc, record, visit)
    except AppError as err:
        if err.code != "GRAPH-ORGANIZER-UNKNOWN" or organizer == visit.organizer_oid:
            raise
    taken = svc.visits.reassign(visit, organizer)
    if taken.join_url:  # another launch took it over and finished first
        return taken
    return _create_meeting(svc, record, taken)


def presenters_for(record: EndpointRecord, organizer: str) -> str:
    """A service-account organizer never joins to admit the patient: the clinicians must."""
    if organizer == record.launch.default_organizer:
        return "organization"
    return record.launch.allowed_presenters


def _visit_from(svc: Services, token: str | None) -> tuple[Visit, EndpointRecord]:
    claims = verify(token, purpose=PAGE_PURPOSE) if token else None
    visit = svc.visits.get(claims["v"]) if claims else None
    record = svc.endpoints.find(claims["e"]) if claims else None
    if visit is None or record is None:
        raise AppError("VISIT-LINK-INVALID")
    return visit, record


def visit_page(svc: Services) -> Response:
    """The page shell: its script reads the token from the fragment and asks `visit_status`.

    It may be framed by any EHR: it shows nothing until the token (which only the launch hands
    out, in the fragment) is presented, and what it then shows comes from `visit_status`.
    """
    resp = page("visit.html", status_url=f"{svc.settings.public_url}/api/visit/status")
    resp.frame_ancestors = svc.endpoints.ehr_origins()
    return resp


def visit_status(svc: Services, token: str | None) -> Response:
    visit, record = _visit_from(svc, token)
    return Response.json(
        {
            "start": visit.start.isoformat() if visit.start else None,
            "end": visit.end.isoformat() if visit.end else None,
            "organization": record.organization,
            "join_url": visit.join_url,
            "presence": svc.visits.presence(visit.key),
        }
    )
