"""Graph's change notifications over real HTTPS, end to end: the sandbox's Graph validates the
app's webhook when the app subscribes (from the visit-events queue, after the first arrival),
the meeting page's roster changes reach the visit's state as encrypted meeting call events, a
call record becomes the visit's quality row, lifecycle notifications renew, recreate and
reconcile, a rich collection without Graph's validationToken is refused, and a dropped
notification is made good by the attendance report."""

from __future__ import annotations

import html
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from dev.browser import Browser
from tests.e2e.test_launch import launch_url, register, visit_data, visit_status

ENDPOINT = "cerner-graph-test"
CLINICIAN = {"reyes-0900": "reyes", "reyes-0930": "reyes", "lindqvist-1400": "lindqvist",
             "okafor-1000": "okafor"}  # fmt: skip


@pytest.fixture(scope="module")
def endpoint(app):
    return register(
        app,
        {
            "id": ENDPOINT,
            "fhir_base_url": app.sandbox.ehr_base("cerner"),
            "vendor": "cerner",
            "environment": "test",
            "organization": "Graph Test Org",
            "client_id": "evc-cerner-jwt",
            "client_auth": {"method": "private_key_jwt", "alg": "ES384"},
        },
        approve=False,
    )["id"]


@pytest.fixture
def graph(app):
    app.sandbox.reset()
    yield app.sandbox.graph
    app.sandbox.reset()


def wait_until(check, timeout: float = 30.0, what: str = "") -> object:
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what or check}"
        time.sleep(0.2)
    return found


def services(app):
    from lib.bootstrap import build
    from lib.settings import load_settings

    return build(load_settings(app.env))


def open_visit(app, endpoint: str, slot: str):
    """A clinician's launch of `slot`: the visit page, its join URL and its meeting (sandbox)."""
    browser = Browser(app.sandbox, entra_user=CLINICIAN[slot])
    page = browser.go(launch_url(app, endpoint, "provider", "cerner", clinician=CLINICIAN[slot],
                                 appointment=slot))  # fmt: skip
    assert page.response.status_code == 200, page.response.text[:300]
    join = html.unescape(visit_data(app, page)["join_url"])
    meeting = next(m for m in app.sandbox.graph.meetings.values() if m.join_web_url == join)
    wait_until(lambda: app.sandbox.graph.subscriptions_for(join), what="the meeting subscription")
    return page, join, meeting


def becomes(app, page, role: str, status: str) -> None:
    wait_until(lambda: visit_status(app, page)[role] == status, what=f"{role} {status!r}")


def test_the_meeting_page_drives_the_visit_state(app, endpoint, graph):
    page, join, meeting = open_visit(app, endpoint, "lindqvist-1400")
    (sub,) = graph.subscriptions_for(join)
    assert sub.version == "beta" and sub.certificate is not None  # with resource data
    assert sub.notification_url == app.api("graph/notifications") == sub.lifecycle_url

    organizer = graph.join(meeting.id, "organizer", "Dr. Lindqvist")
    becomes(app, page, "provider", "in the visit")
    name = f"Patient {uuid.uuid4().hex[:8]}"
    patient = graph.join(meeting.id, "guest", name)
    becomes(app, page, "patient", "waiting in lobby")
    graph.admit(meeting.id, patient.id, by=organizer.id)
    becomes(app, page, "patient", "in the visit")
    graph.leave(meeting.id, patient.id)
    becomes(app, page, "patient", "left")

    # The call ends: its record becomes the visit's quality row and a `measured` event, and
    # the meeting's subscription goes.
    graph.leave(meeting.id, organizer.id)
    svc = services(app)
    key = visit_key(svc, join)
    quality = wait_until(lambda: svc_quality(svc, key), what="the quality row")
    assert quality.streams and all(s.avg_packet_loss is not None for s in quality.streams)
    wait_until(lambda: any(e.kind == "measured" for e in svc.visits.messages(key)))
    wait_until(lambda: not graph.subscriptions_for(join), what="the subscription deleted")
    state = svc.visits.state(key)
    assert state.ended_at and state.admitted_at and state.both_in_at
    assert state.lobby_wait_seconds > 0

    # Nothing that names the patient was stored or logged.
    rows = [str(e.model_dump()) for e in svc.visits.events(key)]
    assert not any(name in row for row in rows)
    log = app.host.log()
    assert log and name not in log and patient.id not in log


def visit_key(svc, join_url: str) -> str:
    """The visit of a meeting, as the app recorded it when it subscribed (by join URL)."""
    return wait_until(lambda: svc.subscriptions().visit_of_join_url(join_url))


def svc_quality(svc, key):
    from lib.visits.quality import CallQualityStore

    return CallQualityStore(svc.store).get(key)


def test_redelivered_notifications_count_once(app, endpoint, graph):
    """Graph's retry of a notification it thinks failed: the same events, one each."""
    page, join, meeting = open_visit(app, endpoint, "reyes-0930")
    svc = services(app)
    key = visit_key(svc, join)
    before = len(svc.visits.events(key))
    patient = graph.join(meeting.id, "guest", "Pat")
    becomes(app, page, "patient", "waiting in lobby")
    graph.subscriptions.wait_idle()
    (delivery,) = [d for d in graph.subscriptions.deliveries if d.kind == "change"][-1:]
    # The very same notification the app accepted, again (Graph's retry after a lost answer).
    again = app.session().post(app.api("graph/notifications"), json=delivery.body, timeout=10)
    assert again.status_code == 202
    time.sleep(1.0)
    lobby = [e for e in svc.visits.messages(key) if e.kind == "lobby"]
    assert len(lobby) == 1 and len(svc.visits.events(key)) == before + 1
    graph.leave(meeting.id, patient.id)


def test_a_collection_graph_did_not_sign_is_refused(app, endpoint, graph):
    """Its validationToken forged (a key the tenant never published, under its kid): every
    delivery and Graph's retries answered 401, the visit unmoved. A v1.0 token of Graph's
    (iss sts.windows.net, appid) is as good as the v2.0 ones of the other tests."""
    page, join, meeting = open_visit(app, endpoint, "reyes-0900")
    (sub,) = graph.subscriptions_for(join)
    assert graph.subscriptions.wait_idle()
    graph.subscriptions.validation_token = "forged"
    patient = graph.join(meeting.id, "guest", "Pat")
    assert graph.subscriptions.wait_idle(timeout=60)
    statuses = {d.status for d in graph.subscriptions.deliveries if d.subscription_id == sub.id}
    assert statuses == {401}, statuses
    assert visit_status(app, page)["patient"] != "waiting in lobby"
    (token,) = graph.subscriptions.deliveries[-1].body["validationTokens"]
    assert token.split(".")[2] not in app.host.log()  # refused, and never logged
    graph.subscriptions.validation_token = "good-v1"
    graph.leave(meeting.id, patient.id)
    becomes(app, page, "patient", "left")


def test_handshake_and_refusals(app):
    s = app.session()
    token = "Validation: Token+/= 9f"
    answer = s.post(app.api("graph/notifications"), params={"validationToken": token}, timeout=10)
    assert answer.status_code == 200 and answer.text == token
    assert answer.headers["Content-Type"].startswith("text/plain")

    svc = services(app)
    call_records = wait_until(lambda: svc.subscriptions().ensure_call_records())
    for state in ("wrong", None):
        item = {
            "subscriptionId": call_records,
            "changeType": "created",
            "resource": "communications/callRecords/1",
            "resourceData": {"id": "1"},
        }
        if state:
            item["clientState"] = state
        refused = s.post(app.api("graph/notifications"), json={"value": [item]}, timeout=10)
        assert refused.status_code == 401, refused.text
        assert refused.json()["code"] == "GRAPH-NOTIFICATION-REFUSED"
    for bad in ({"value": "x"}, {"nothing": 1}, [1, 2]):
        answer = s.post(app.api("graph/notifications"), json=bad, timeout=10)
        assert answer.status_code == 400 and answer.json()["code"] == "GRAPH-NOTIFICATION-INVALID"
    unknown = {"value": [{"subscriptionId": str(uuid.uuid4()), "clientState": "x"}]}
    assert s.post(app.api("graph/notifications"), json=unknown, timeout=10).status_code == 202


def test_lifecycle_notifications_renew_recreate_and_reconcile(app, endpoint, graph):
    _, join, _ = open_visit(app, endpoint, "reyes-0900")
    (sub,) = graph.subscriptions_for(join)
    expires = sub.expires
    graph.lifecycle(sub.id, "reauthorizationRequired")
    wait_until(lambda: app.sandbox.journal.count(method="PATCH", path=f"*/subscriptions/{sub.id}"))
    assert graph.subscriptions_for(join)[0].expires >= expires

    graph.lifecycle(sub.id, "subscriptionRemoved")  # Graph removed it: the app subscribes again
    (again,) = wait_until(lambda: graph.subscriptions_for(join), what="a new subscription")
    assert again.id != sub.id

    graph.lifecycle(again.id, "missed")  # the app reads the attendance report
    wait_until(lambda: app.sandbox.journal.count(path="*/attendanceReports"), what="a report read")


def test_a_dropped_notification_is_made_good_by_reconciliation(app, endpoint, graph):
    page, join, meeting = open_visit(app, endpoint, "okafor-1000")
    organizer = graph.join(meeting.id, "organizer", "Dr. Okafor")
    patient = graph.join(meeting.id, "guest", "Pat")
    becomes(app, page, "patient", "waiting in lobby")
    graph.subscriptions.wait_idle()
    app.sandbox.inject(family="graph-notifications", count=1)  # the admission never arrives
    graph.admit(meeting.id, patient.id, by=organizer.id)
    graph.subscriptions.wait_idle()
    time.sleep(1.0)
    assert visit_status(app, page)["patient"] == "waiting in lobby"
    graph.leave(meeting.id, patient.id)
    graph.leave(meeting.id, organizer.id)  # the call ends: the attendance report is read
    svc = services(app)
    key = visit_key(svc, join)
    wait_until(
        lambda: any(e.source == "reconcile" for e in svc.visits.messages(key)), what="reconcile"
    )
    state = wait_until(lambda: (s := svc.visits.state(key)) and s.admitted_at and s)
    assert state.both_in_at is not None and state.patient == "left"


def test_the_timer_renews_what_expires_soon_a_bounded_number_a_run(
    app, endpoint, graph, sandbox_trust
):
    _, join, _ = open_visit(app, endpoint, "reyes-0930")
    (sub,) = graph.subscriptions_for(join)
    subscriptions = services(app).subscriptions()
    assert sub.id not in set(subscriptions.due())  # 70 hours to go: not yet
    later = datetime.now(UTC) + timedelta(hours=60)
    assert sub.id in set(subscriptions.due(later, limit=10_000))
    since = time.time()
    assert subscriptions.renew_due(later, limit=1) == 1
    patches = app.sandbox.journal.entries(method="PATCH", path="*/subscriptions/*", since=since)
    assert len(patches) == 1 and patches[0].status == 200
    before = graph.subscriptions_for(join)[0].expires
    time.sleep(1.1)  # expiry times are whole seconds: a renewal within the same one moves nothing
    subscriptions.renew(sub.id)
    assert graph.subscriptions_for(join)[0].expires > before
