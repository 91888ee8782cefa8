"""Opening a visit: one meeting per appointment, whoever arrives first and however they came.

Graph's createOrGet is idempotent per organizer, so the visit is claimed in storage first
(create-if-absent): whoever arrives first fixes the organizer, and every later opening, however
concurrent, asks Graph for the meeting under that same organizer and external id, so all of them
get the same meeting without waiting for each other. The launch opens visits today; SMS join
links will open them the same way, without an EHR launch.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel, ConfigDict

from lib.ehr.profiles import Persona
from lib.endpoints.models import Endpoint
from lib.teams.meetings import MeetingService
from lib.visits.store import Visit, VisitStore
from lib.web.errors import AppError

SUBJECT = "Virtual visit"  # never patient data: the subject is visible to every participant
DEFAULT_LENGTH = timedelta(hours=1)


class PendingVisit(BaseModel):
    """What a new visit is made of (no identifiers in clear): its key, times, department.

    It crosses the clinician's one-time Microsoft sign-in inside the sign-in session, as JSON.
    """

    model_config = ConfigDict(frozen=True)

    visit_key: str
    start: datetime | None = None
    end: datetime | None = None
    department: str | None = None


def presenters_for(endpoint: Endpoint, organizer: str) -> str:
    """A service-account organizer never joins to admit the patient: the clinicians must."""
    if organizer == endpoint.launch.default_organizer:
        return "organization"
    return endpoint.launch.allowed_presenters


class VisitOpener:
    def __init__(self, visits: VisitStore, meetings: Callable[[], MeetingService]) -> None:
        self._visits = visits
        self._meetings = meetings  # built on first use: msal is not needed by the config API

    def open(
        self,
        endpoint: Endpoint,
        persona: Persona,
        pending: PendingVisit,
        organizer: str,
        existing: Visit | None = None,
        *,
        source: str = "launch",
    ) -> Visit:
        """The visit with its meeting, and `persona` recorded as connected.

        `existing`: the visit already read (nothing is claimed again).
        """
        visit = (
            existing if existing is not None else self._claim(endpoint, persona, pending, organizer)
        )
        if visit.join_url is None:
            visit = self._with_meeting(endpoint, visit, organizer)
        if not visit.join_url or not self._meetings().join_url_allowed(visit.join_url):
            # Only join URLs that Graph returned, on Teams' hosts: never an open redirect.
            raise AppError("LAUNCH-REDIRECT-REFUSED")
        self._visits.add_event(visit.key, f"{persona}.connected", persona, source)
        return visit

    def _claim(
        self, endpoint: Endpoint, persona: Persona, pending: PendingVisit, organizer: str
    ) -> Visit:
        """Create-if-absent: the first opening fixes the organizer; later ones get that visit."""
        return self._visits.claim(
            Visit(
                partition_key=pending.visit_key,
                row_key="visit",
                endpoint_id=endpoint.id,
                organizer_oid=organizer,
                start=pending.start,
                end=pending.end,
                department=pending.department or endpoint.organization,
                created_at=datetime.now(UTC),
                created_by_role=persona,
            )
        ).entity

    def _create_meeting(self, endpoint: Endpoint, visit: Visit) -> Visit:
        # Graph needs times; an encounter launch (or a failed appointment read) has none.
        start = visit.start or datetime.now(UTC)
        end = visit.end or start + DEFAULT_LENGTH
        meeting = self._meetings().create_or_get(
            visit.organizer_oid, visit.key, SUBJECT, start, end,
            allowed_presenters=presenters_for(endpoint, visit.organizer_oid),
        )  # fmt: skip
        return self._visits.attach_meeting(visit, meeting.id, meeting.join_url)

    def _with_meeting(self, endpoint: Endpoint, visit: Visit, organizer: str) -> Visit:
        """The visit's meeting; a claim whose organizer Microsoft does not know is taken over.

        Without this, a visit claimed under an organizer that cannot organize (a default
        organizer without a licence, a clinician who has left) would fail for every later
        launch too. The launcher, whose account is known, takes it over under the visit's ETag:
        one takeover wins, and everyone then gets that organizer's meeting.
        """
        try:
            return self._create_meeting(endpoint, visit)
        except AppError as err:
            if err.code != "GRAPH-ORGANIZER-UNKNOWN" or organizer == visit.organizer_oid:
                raise
        taken = self._visits.reassign(visit, organizer)
        if taken.join_url:  # another launch took it over and finished first
            return taken
        return self._create_meeting(endpoint, taken)
