"""Opening a visit: one meeting per appointment, whoever arrives first and however they came.

The visit is claimed in storage first (create-if-absent): whoever arrives first fixes the
organizer and is the one launch that asks Graph for the meeting (createOrGet, then the lobby
PATCH) and attaches it to the visit. Every other opening of a visit without a meeting waits for
that one (it polls the visit row with a short backoff, for at most MEETING_WAIT from the claim):
so however many launch at once, Graph sees one createOrGet and one PATCH. If the claimant gives
up (its Graph call failed) or has not attached a meeting within the bound (it crashed, or is very
slow), the others ask Graph themselves: createOrGet is idempotent per organizer and external id,
so that fallback finds the same meeting. The launch opens visits today; SMS join links will open
them the same way, without an EHR launch.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel, ConfigDict

from lib.ehr.profiles import Persona
from lib.endpoints.models import Endpoint
from lib.net.budget import current, leaving
from lib.net.overlap import together
from lib.storage import CreateResult
from lib.teams.meetings import MeetingService
from lib.visits.store import Visit, VisitStore
from lib.visits.timeline import VisitEvents
from lib.web.errors import AppError

SUBJECT = "Virtual visit"  # never patient data: the subject is visible to every participant
DEFAULT_LENGTH = timedelta(hours=1)

# How long a launch waits for the meeting of a visit another launch claimed, counted from that
# claim (`Visit.opening_since`), never longer from the start of the wait. A person is waiting on
# each side: the claimant needs two Graph calls (createOrGet, PATCH), well under a second even
# with Graph's retries on a 429 / 5xx; past the bound the claimant is taken for dead or stuck and
# the waiter asks Graph itself (idempotent, the same meeting).
MEETING_WAIT = timedelta(seconds=8)
# Polls of the visit row while waiting: 50 ms, doubling up to 400 ms (about 20 reads in 8 s).
POLL_FIRST, POLL_MAX = 0.05, 0.4
# Under a request's budget the wait also ends this long before the budget does, so a waiter
# whose claimant never delivers still has time to ask Graph itself.
OWN_ASK = timedelta(seconds=2)
# And Graph's calls end this long before it, so a claimant whose Graph call failed can still
# say so on the visit (the others then ask at once instead of waiting for it).
BOOKKEEPING = 1.0

# A new visit's start / end, still being read when its meeting is asked for (see `open`).
Times = Callable[[], tuple[datetime | None, datetime | None]] | None
# Sends the person's "arrived" event on (to the visit-events queue), once they can be sent on.
Connected = Callable[[], None]
# Writes that go alongside the "arrived" event (the launch seals the appointment's id with it).
Alongside = Callable[[Visit], None] | None


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
    def __init__(
        self,
        visits: VisitStore,
        meetings: Callable[[], MeetingService],
        events: VisitEvents,
        *,
        sleep: Callable[[float], None] = time.sleep,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._visits = visits
        self._meetings = meetings  # built on first use: msal is not needed by the config API
        self._events = events
        self._sleep, self._now = sleep, now  # the tests' clock

    def open(
        self,
        endpoint: Endpoint,
        persona: Persona,
        pending: PendingVisit,
        organizer: str,
        existing: Visit | None = None,
        *,
        source: str = "launch",
        times: Times = None,
        alongside: Alongside = None,
    ) -> Visit:
        """The visit with its meeting, and `persona`'s "arrived" event sent on.

        `existing`: the visit already read (nothing is claimed again). `times`: the new visit's
        start / end, still being read (`pending` has none): called once Graph's createOrGet has
        answered, so the read and createOrGet overlap; the times ride in the lobby PATCH.
        `alongside`: a write of the caller's, run at the same time as the event's enqueueing
        (so it adds no round trip of its own), with the visit as it is then.
        """
        if existing is not None:
            visit, mine = existing, False
            if not visit.organizer_oid and visit.join_url is None:
                # Scheduling intake made it before anyone was known to organize it: the first
                # opener who brings an organizer takes it (ETag: one wins, the rest wait).
                if not organizer:
                    raise AppError("LAUNCH-NO-ORGANIZER")
                visit, mine = self._visits.reassign(visit, organizer)
        else:
            claimed = self._claim(endpoint, persona, pending, organizer)
            visit, mine = claimed.entity, claimed.created
        recorded: list[bool] = []

        def connected() -> None:
            def arrived() -> None:
                self._events.emit(visit.key, "arrived", persona, source)  # type: ignore[arg-type]

            together(arrived, *([lambda: alongside(visit)] if alongside else []))
            recorded.append(True)

        if visit.join_url is None:
            visit = self._with_meeting(endpoint, visit, organizer, mine, times, connected)
        if not self._sendable(visit.join_url):
            # Only join URLs that Graph returned, on Teams' hosts: never an open redirect.
            raise AppError("LAUNCH-REDIRECT-REFUSED")
        if not recorded:  # not written alongside the meeting's attachment
            connected()
        return visit

    def _sendable(self, join_url: str | None) -> bool:
        return bool(join_url) and self._meetings().join_url_allowed(join_url or "")

    def _claim(
        self, endpoint: Endpoint, persona: Persona, pending: PendingVisit, organizer: str
    ) -> CreateResult[Visit]:
        """Create-if-absent: the first opening fixes the organizer and makes the meeting; later
        ones get that visit (`created` False) and wait for its meeting."""
        now = self._now()
        return self._visits.claim(
            Visit(
                partition_key=pending.visit_key,
                row_key="visit",
                endpoint_id=endpoint.id,
                organizer_oid=organizer,
                start=pending.start,
                end=pending.end,
                department=pending.department or endpoint.organization,
                created_at=now,
                created_by_role=persona,
                opening_since=now,
            )
        )

    def _create_meeting(
        self, endpoint: Endpoint, visit: Visit, mine: bool, times: Times, connected: Connected
    ) -> Visit:
        """Ask Graph (createOrGet, lobby PATCH) and attach. `mine`: this launch holds the claim,
        so when it fails, it says so on the visit and the waiters stop waiting for it. The
        person's "arrived" event is enqueued alongside the attachment (independent writes), once
        the join URL is known to be one we may send them to."""
        # Graph needs times; an encounter launch (or a failed appointment read) has none, and a
        # visit whose appointment is still being read has provisional ones until the PATCH.
        start = visit.start or datetime.now(UTC)
        end = visit.end or start + DEFAULT_LENGTH
        read: list[tuple[datetime | None, datetime | None]] = []

        def settled() -> tuple[datetime, datetime] | None:
            read.append(times() if times is not None else (None, None))
            got_start, got_end = read[0]
            return (got_start, got_end or got_start + DEFAULT_LENGTH) if got_start else None

        late = times is not None and visit.start is None
        try:
            with leaving(BOOKKEEPING):
                meeting = self._meetings().create_or_get(
                    visit.organizer_oid, visit.key, SUBJECT, start, end,
                    allowed_presenters=presenters_for(endpoint, visit.organizer_oid),
                    times=settled if late else None,
                )  # fmt: skip
        except Exception:
            if mine:
                self._visits.give_up_opening(visit)
            raise
        known = read[0] if read and read[0][0] is not None else None
        attached, _ = together(
            lambda: self._visits.attach_meeting(visit, meeting.id, meeting.join_url, known),
            connected if self._sendable(meeting.join_url) else lambda: None,
        )
        return attached

    def _wait_for_meeting(self, visit: Visit) -> Visit:
        """The visit once its claimant attached the meeting, or as it is when the claimant gave
        up or the bound passed (MEETING_WAIT from the claim, and from now)."""
        started = self._now()
        delay = POLL_FIRST
        budget = current()
        limit = started + timedelta(seconds=budget.remaining()) - OWN_ASK if budget else None
        while visit.join_url is None and visit.opening_since is not None:
            now = self._now()
            deadline = min(visit.opening_since, started) + MEETING_WAIT
            deadline = min(deadline, limit) if limit is not None else deadline
            if now >= deadline:
                break
            self._sleep(min(delay, (deadline - now).total_seconds()))
            delay = min(delay * 2, POLL_MAX)
            visit = self._visits.get(visit.key) or visit
        return visit

    def _with_meeting(
        self,
        endpoint: Endpoint,
        visit: Visit,
        organizer: str,
        mine: bool,
        times: Times,
        connected: Connected,
    ) -> Visit:
        """The visit's meeting: made by the claimant, waited for by the others (bounded).

        A claim whose organizer Microsoft does not know is taken over. Without this, a visit
        claimed under an organizer that cannot organize (a default organizer without a licence,
        a clinician who has left) would fail for every later launch too. The launcher, whose
        account is known, takes it over under the visit's ETag: one takeover wins and makes the
        meeting, and everyone then gets that organizer's meeting.
        """
        if not mine:
            visit = self._wait_for_meeting(visit)
            if visit.join_url:
                return visit
        try:
            return self._create_meeting(endpoint, visit, mine, times, connected)
        except AppError as err:
            if err.code != "GRAPH-ORGANIZER-UNKNOWN" or organizer == visit.organizer_oid:
                raise
        taken, mine = self._visits.reassign(visit, organizer)
        if not mine:  # another launch took it over first: its meeting, once it is there
            taken = self._wait_for_meeting(taken)
        if taken.join_url:
            return taken
        return self._create_meeting(endpoint, taken, mine, times, connected)
