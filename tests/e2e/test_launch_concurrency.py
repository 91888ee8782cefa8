"""Many launches of one new visit at once: one Graph createOrGet, one lobby PATCH, one meeting.

The launch that claims the visit makes the meeting; the others wait for it (bounded) and fall
back to createOrGet themselves only when the claimant gave up or is past the bound
(lib/visits/opening.py). Counted from the sandbox's journal; no timed assertions.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from azure.data.tables import TableServiceClient

from dev.browser import Browser, Outcome
from lib.storage import TableStore
from lib.visits.opening import DEFAULT_LENGTH, MEETING_WAIT
from lib.visits.store import Visit, VisitStore
from tests.e2e.test_launch import endpoints, launch_url, quiet_sandbox, visit_data

__all__ = ["endpoints", "quiet_sandbox"]  # fixtures, shared with test_launch.py

ENDPOINT, APPOINTMENT, CLINICIAN = "epic-launch-test", "reyes-0930", "reyes"
CREATE = "/graph/v1.0/users/*/onlineMeetings/createOrGet"


@pytest.fixture
def visits(app) -> VisitStore:
    service = TableServiceClient.from_connection_string(app.storage)
    return VisitStore(TableStore(service, prefix="e2e"))


@pytest.fixture
def new_visit(app, endpoints, quiet_sandbox, visits) -> Visit:
    """The appointment launched once (clinician mapped, everything warm), then made new again:
    no visit row, no meeting. Returns the visit as that launch stored it."""
    url = launch_url(
        app, ENDPOINT, "provider", "epic", clinician=CLINICIAN, appointment=APPOINTMENT
    )
    first = Browser(app.sandbox, entra_user=CLINICIAN).go(url)
    assert first.response.status_code == 200, first.response.text[:300]
    meeting_id = visit_data(app, first)["join_url"].split("/graph/meet/")[1].split("?")[0]
    key = app.sandbox.graph.meetings[meeting_id].external_id
    visit = visits.get(key)
    assert visit is not None and visit.meeting_id == meeting_id
    forget(app, visits, key)
    return visit


def forget(app, visits: VisitStore, key: str) -> None:
    service = TableServiceClient.from_connection_string(app.storage)
    service.get_table_client("e2eVisits").delete_entity(partition_key=key, row_key="visit")
    for meeting in app.sandbox.graph.meetings.matching(lambda m: m.external_id == key):
        app.sandbox.graph.meetings.delete(meeting.id)
    assert visits.get(key) is None


def launch_together(app, n: int) -> list[Outcome]:
    """`n` launches of the appointment released at once, each in its own browser."""
    urls = [
        launch_url(app, ENDPOINT, "provider", "epic", clinician=CLINICIAN, appointment=APPOINTMENT)
        for _ in range(n)
    ]
    browsers = [Browser(app.sandbox, entra_user=CLINICIAN) for _ in range(n)]
    outcomes: list[Outcome | None] = [None] * n
    gate = threading.Barrier(n)

    def one(i: int) -> None:
        gate.wait()
        outcomes[i] = browsers[i].go(urls[i])

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert all(o is not None for o in outcomes)
    return outcomes  # type: ignore[return-value]


def graph_calls(app, since: float) -> tuple[list, list]:
    journal = app.sandbox.journal
    creates = journal.entries(stand_in="graph", path="*/createOrGet", since=since)
    patches = journal.entries(stand_in="graph", method="PATCH", since=since)
    return creates, patches


def test_concurrent_launches_of_a_new_visit_call_graph_once(app, new_visit, visits):
    since = time.time()
    outcomes = launch_together(app, 10)
    assert all(o.response.status_code == 200 for o in outcomes), [
        (o.response.status_code, o.error_code) for o in outcomes
    ]
    assert not any(o.signed_in for o in outcomes)
    joins = {visit_data(app, o)["join_url"] for o in outcomes}
    creates, patches = graph_calls(app, since)
    assert len(creates) == 1 and creates[0].status == 201
    assert len(patches) <= 1
    assert len(joins) == 1
    stored = visits.get(new_visit.key)
    assert stored is not None and stored.join_url == joins.pop()
    assert stored.opening_since is None  # the claim is done with


def test_a_claimant_that_never_attaches_is_waited_for_only_up_to_the_bound(app, new_visit, visits):
    # A launch claimed the visit almost MEETING_WAIT ago and vanished (crashed, or stuck):
    # the row has its organizer and no meeting. The next launches wait out the rest of the
    # bound, then ask Graph themselves; createOrGet is idempotent: one meeting for all.
    almost = datetime.now(UTC) - MEETING_WAIT + timedelta(milliseconds=500)
    claimed = visits.claim(
        new_visit.model_copy(
            update={"meeting_id": None, "join_url": None, "opening_since": almost, "etag": None}
        )
    )
    assert claimed.created
    since = time.time()
    outcomes = launch_together(app, 5)
    assert all(o.response.status_code == 200 for o in outcomes)
    joins = {visit_data(app, o)["join_url"] for o in outcomes}
    creates, _ = graph_calls(app, since)
    assert len(joins) == 1
    assert sum(1 for c in creates if c.status == 201) == 1  # one meeting made
    assert len(app.sandbox.graph.meetings.matching(lambda m: m.external_id == new_visit.key)) == 1
    stored = visits.get(new_visit.key)
    assert stored is not None and stored.join_url == joins.pop()


def test_a_claimant_whose_graph_call_fails_lets_the_others_ask_at_once(app, new_visit, visits):
    # The first createOrGet (the claimant's: nobody else asks while it holds the claim) fails
    # without a retry; the claimant says so on the visit, and the waiters ask Graph themselves.
    app.sandbox.inject(CREATE, status=500, count=1)
    since = time.time()
    outcomes = launch_together(app, 6)
    failed = [o for o in outcomes if o.response.status_code != 200]
    assert [o.error_code for o in failed] == ["GRAPH-FAILED"]
    joins = {visit_data(app, o)["join_url"] for o in outcomes if o not in failed}
    creates, _ = graph_calls(app, since)
    assert len(joins) == 1
    assert creates[0].faulted and sum(1 for c in creates if c.status == 201) == 1
    stored = visits.get(new_visit.key)
    assert stored is not None and stored.join_url == joins.pop()
    # The claimant read the times alongside createOrGet and never stored them: whoever made
    # the meeting instead read them too.
    assert (stored.start, stored.end) == (new_visit.start, new_visit.end)
    assert stored.start is not None


def test_a_new_visit_reads_the_appointment_while_graph_makes_the_meeting(app, new_visit, visits):
    # The EHR answers slowly: Graph is asked before the appointment read has answered, and the
    # appointment's times still reach the meeting (in the lobby PATCH) and the visit.
    app.sandbox.set_latency(0.0, per_stand_in={"epic": 0.2})
    since = time.time()
    url = launch_url(
        app, ENDPOINT, "provider", "epic", clinician=CLINICIAN, appointment=APPOINTMENT
    )
    out = Browser(app.sandbox, entra_user=CLINICIAN).go(url)
    app.sandbox.set_latency(0.0, per_stand_in={})
    assert out.response.status_code == 200 and not out.signed_in
    journal = app.sandbox.journal
    (read,) = journal.entries(stand_in="epic", path="*/Appointment/*", since=since)
    (create,) = journal.entries(stand_in="graph", path="*/createOrGet", since=since)
    (patch,) = journal.entries(stand_in="graph", method="PATCH", since=since)
    assert create.time - create.duration_ms / 1000 < read.time  # asked while the read ran
    assert patch.time - patch.duration_ms / 1000 >= read.time  # the times known by the PATCH
    stored = visits.get(new_visit.key)
    assert stored is not None and stored.start is not None
    assert (stored.start, stored.end) == (new_visit.start, new_visit.end)
    meeting = app.sandbox.graph.meetings[stored.meeting_id]
    assert meeting.start == stored.start
    assert meeting.end == (stored.end or stored.start + DEFAULT_LENGTH)
    assert visit_data(app, out)["join_url"] == stored.join_url


def test_a_stale_claim_without_times_gets_them_from_whoever_makes_the_meeting(
    app, new_visit, visits
):
    # Its claimant read the times alongside createOrGet and crashed before storing them; the
    # next launch finds the visit (no waiting: the claim is past the bound) and makes the
    # meeting: it reads the appointment for the times.
    assert new_visit.start is not None
    stale = datetime.now(UTC) - MEETING_WAIT - timedelta(seconds=1)
    bare = {"meeting_id": None, "join_url": None, "start": None, "end": None}
    assert visits.claim(new_visit.model_copy(update={**bare, "opening_since": stale, "etag": None}))
    since = time.time()
    url = launch_url(
        app, ENDPOINT, "provider", "epic", clinician=CLINICIAN, appointment=APPOINTMENT
    )
    out = Browser(app.sandbox, entra_user=CLINICIAN).go(url)
    assert out.response.status_code == 200
    assert len(app.sandbox.journal.entries(stand_in="epic", path="*/Appointment/*", since=since))
    stored = visits.get(new_visit.key)
    assert stored is not None and (stored.start, stored.end) == (new_visit.start, new_visit.end)
    assert app.sandbox.graph.meetings[stored.meeting_id].start == new_visit.start
