"""The bounded wait for a claimant's meeting (lib/visits/opening.py), on a fake clock.

Pure logic: a fake store and a fake meeting service stand in for Azurite and Graph (the real
ones are exercised in tests/e2e/test_launch_concurrency.py). No real time passes.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

from lib.endpoints.models import Endpoint
from lib.teams.meetings import Meeting
from lib.visits.opening import MEETING_WAIT, POLL_FIRST, POLL_MAX, PendingVisit, VisitOpener
from lib.visits.store import Visit

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
JOIN = "https://teams.microsoft.com/l/meetup-join/abc"


class Clock:
    def __init__(self) -> None:
        self.now = T0
        self.slept: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += timedelta(seconds=seconds)


class FakeVisits:
    """A visit row another launch claimed; `attach_after` polls later its meeting shows up."""

    def __init__(self, row: Visit, attach_after: int | None = None) -> None:
        self.row, self.attach_after, self.reads = row, attach_after, 0

    def get(self, key: str) -> Visit:
        self.reads += 1
        if self.attach_after is not None and self.reads >= self.attach_after:
            self.row = self.row.model_copy(update={"join_url": JOIN, "opening_since": None})
        return self.row

    def attach_meeting(self, visit: Visit, meeting_id: str, join_url: str, times=None) -> Visit:
        self.row = visit.model_copy(update={"meeting_id": meeting_id, "join_url": join_url})
        return self.row


class FakeEvents:
    def __init__(self) -> None:
        self.sent: list[tuple] = []

    def emit(self, *args: object) -> None:
        self.sent.append(args)


class FakeMeetings:
    def __init__(self) -> None:
        self.calls = 0

    def create_or_get(self, organizer, key, subject, start, end, **kw) -> Meeting:
        self.calls += 1
        return Meeting(
            id="m1", join_url=JOIN, organizer_oid=organizer, external_id=key, start=start, end=end
        )

    def join_url_allowed(self, url: str) -> bool:
        return url == JOIN


def endpoint() -> Endpoint:
    """What the opener reads of an endpoint: its organization and launch options."""
    launch = SimpleNamespace(default_organizer=None, allowed_presenters="organizer")
    return SimpleNamespace(id="epic-x", organization="Org", launch=launch)  # type: ignore[return-value]


def claimed(since: datetime | None) -> Visit:
    return Visit(
        partition_key="k",
        row_key="visit",
        endpoint_id="epic-x",
        organizer_oid="o",
        created_at=T0,
        created_by_role="provider",
        opening_since=since,
        etag="e",
    )


def open_existing(row: Visit, visits: FakeVisits, clock: Clock, meetings: FakeMeetings) -> Visit:
    events = FakeEvents()
    opener = VisitOpener(
        visits,  # type: ignore[arg-type]
        lambda: meetings,  # type: ignore[arg-type]
        events,  # type: ignore[arg-type]
        sleep=clock.sleep,
        now=lambda: clock.now,
    )
    visit = opener.open(endpoint(), "provider", PendingVisit(visit_key="k"), "o", row)
    assert events.sent == [("k", "arrived", "provider", "launch")]  # once, whichever way
    return visit


def test_a_waiter_gets_the_claimants_meeting_without_asking_graph():
    clock, meetings = Clock(), FakeMeetings()
    visits = FakeVisits(claimed(T0), attach_after=3)
    visit = open_existing(visits.row, visits, clock, meetings)
    assert visit.join_url == JOIN and meetings.calls == 0
    assert clock.slept == [POLL_FIRST, POLL_FIRST * 2, POLL_FIRST * 4]


def test_a_claimant_that_never_attaches_is_waited_for_up_to_the_bound_then_graph_is_asked():
    clock, meetings = Clock(), FakeMeetings()
    visits = FakeVisits(claimed(T0))
    visit = open_existing(visits.row, visits, clock, meetings)
    assert visit.join_url == JOIN and meetings.calls == 1  # the fallback: createOrGet itself
    assert clock.now - T0 == MEETING_WAIT  # exactly the bound, not a poll past it
    assert max(clock.slept) == POLL_MAX and clock.slept[:4] == [0.05, 0.1, 0.2, 0.4]


def test_the_bound_counts_from_the_claim():
    clock, meetings = Clock(), FakeMeetings()
    visits = FakeVisits(claimed(T0 - MEETING_WAIT + timedelta(seconds=1)))
    open_existing(visits.row, visits, clock, meetings)
    assert sum(clock.slept) == 1.0 and meetings.calls == 1


def test_no_wait_for_a_stale_claim_nor_one_given_up():
    for since in (T0 - MEETING_WAIT - timedelta(seconds=1), None):
        clock, meetings = Clock(), FakeMeetings()
        visits = FakeVisits(claimed(since))
        assert open_existing(visits.row, visits, clock, meetings).join_url == JOIN
        assert clock.slept == [] and meetings.calls == 1


def test_a_wait_never_passes_its_own_bound_whatever_the_claims_clock_says():
    clock, meetings = Clock(), FakeMeetings()
    visits = FakeVisits(claimed(T0 + timedelta(minutes=5)))  # a claimant's clock far ahead
    open_existing(visits.row, visits, clock, meetings)
    assert clock.now - T0 == MEETING_WAIT and meetings.calls == 1
