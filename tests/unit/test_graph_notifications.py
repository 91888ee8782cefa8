"""lib/notifications as pure logic: decrypting Graph's rich notifications (and refusing what was
tampered with), call events and attendance reports as visit events with deterministic ids, the
timeline listener's tasks, and the webhook's handshake and refusals."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest

from dev.sandbox.graph.notify import encrypt
from lib.notifications.certificate import NotificationCertificate, generate_pem
from lib.notifications.reconcile import Reconciler
from lib.notifications.roster import call_event_messages, graph_time
from lib.notifications.tasks import GraphFollower
from lib.notifications.webhook import NotificationReceiver
from lib.privacy import PrivacyKeys
from lib.storage import Rows
from lib.visits.events import VisitEventMessage, VisitState, fold
from lib.visits.store import VisitRows
from lib.visits.timeline import Applied
from lib.web.errors import AppError
from lib.web.http import Headers, Request

TENANT = "7d3a1c2e-0000-4000-8000-00000000e11a"
PRIVACY = PrivacyKeys("unit-test-hash-key-0123456789abcdef012345")
KEY = "a" * 32


@pytest.fixture(scope="module")
def cert() -> NotificationCertificate:
    return NotificationCertificate.from_pem(generate_pem())


def sealed(cert, data) -> dict:
    return encrypt(data, cert.certificate_der, cert.certificate_id)


def test_decrypts_what_graph_encrypts(cert):
    assert cert.decrypt(sealed(cert, {"id": "x", "n": 1})) == {"id": "x", "n": 1}
    assert "PRIVATE" not in repr(cert)


@pytest.mark.parametrize("field", ["data", "dataSignature"])
def test_a_tampered_notification_is_refused_before_it_is_read(cert, field):
    content = sealed(cert, {"id": "x"})
    raw = bytearray(base64.b64decode(content[field]))
    raw[0] ^= 1
    content[field] = base64.b64encode(bytes(raw)).decode()
    with pytest.raises(AppError) as err:
        cert.decrypt(content)
    assert err.value.code == "GRAPH-NOTIFICATION-INVALID" and "dataSignature" in err.value.detail


def test_content_for_another_certificate_is_refused(cert):
    other = NotificationCertificate.from_pem(generate_pem())
    for content in (
        sealed(other, {"id": "x"}),
        {**sealed(cert, {}), "encryptionCertificateId": "z"},
    ):
        with pytest.raises(AppError):
            cert.decrypt(content)
    with pytest.raises(AppError):
        cert.decrypt({"data": "!!", "dataKey": "", "dataSignature": ""})


def test_a_certificate_setting_needs_its_key():
    pem = generate_pem()
    with pytest.raises(ValueError):
        NotificationCertificate.from_pem(pem.split("-----END PRIVATE KEY-----")[1])
    NotificationCertificate.from_pem(pem.replace("\n", "\\n"))  # as app settings carry it


def roster(*people, kind="rosterUpdated", call_id="call-1"):
    return {"id": call_id, "callEventType": kind, "eventDateTime": "2026-12-01T09:00:10.1234567Z",
            "participants": list(people)}  # fmt: skip


def guest(pid="g1", **state):
    return {
        "id": pid,
        "info": {"identity": {"guest": {"id": pid, "displayName": "Pat Q"}}},
        **state,
    }


def member(pid="m1", tenant=TENANT, **state):
    user = {"id": "oid-1", "displayName": "Dr. R", "tenantId": tenant}
    return {"id": pid, "info": {"identity": {"user": user}}, **state}


def test_roster_updates_become_the_event_model():
    events = call_event_messages(
        roster(guest(isInLobby=True), member(), guest("g2", removedState={"reason": "left"})),
        KEY, TENANT, PRIVACY,
    )  # fmt: skip
    assert [(e.kind, e.role, e.source) for e in events] == [
        ("lobby", "patient", "graph"),
        ("joined", "provider", "graph"),
        ("left", "patient", "graph"),
    ]
    assert events[0].at == datetime(2026, 12, 1, 9, 0, 10, 123456, tzinfo=UTC)
    text = " ".join(e.to_text() for e in events)
    assert "Pat" not in text and "oid-1" not in text and "g1" not in text  # nothing of them


def test_a_user_of_another_tenant_is_not_a_clinician():
    (event,) = call_event_messages(roster(member(tenant="other")), KEY, TENANT, PRIVACY)
    assert event.role == "patient"


def test_redelivery_makes_the_same_events():
    first = call_event_messages(roster(guest(isInLobby=True)), KEY, TENANT, PRIVACY)
    again = call_event_messages(roster(guest(isInLobby=True)), KEY, TENANT, PRIVACY)
    assert first == again
    admitted = call_event_messages(roster(guest(), call_id="call-2"), KEY, TENANT, PRIVACY)
    assert admitted[0].event_id != first[0].event_id
    assert fold([*first, *again, *admitted]).events == 2


def test_call_started_and_ended():
    assert call_event_messages(roster(kind="callStarted"), KEY, TENANT, PRIVACY) == []
    (ended,) = call_event_messages(roster(kind="callEnded"), KEY, TENANT, PRIVACY)
    assert (ended.kind, ended.role) == ("ended", "visit")


@pytest.mark.parametrize("bad", [None, "", "yesterday", 5])
def test_times_graph_does_not_write_are_refused(bad):
    with pytest.raises(AppError):
        graph_time(bad)


def report():
    return {
        "id": "r1",
        "meetingStartDateTime": "2026-12-01T09:00:00Z",
        "meetingEndDateTime": "2026-12-01T09:30:00Z",
        "attendanceRecords": [
            {"id": "oid-1", "role": "Organizer", "identity": {"tenantId": TENANT},
             "attendanceIntervals": [{"joinDateTime": "2026-12-01T09:00:00Z",
                                      "leaveDateTime": "2026-12-01T09:30:00Z"}]},
            {"id": "p", "role": "Attendee", "identity": {"displayName": "Pat Q"},
             "attendanceIntervals": [
                 {"joinDateTime": "2026-12-01T09:05:00Z", "leaveDateTime": "2026-12-01T09:10:00Z"},
                 {"joinDateTime": "2026-12-01T09:12:00Z", "leaveDateTime": "2026-12-01T09:29:00Z"},
             ]},
        ],
    }  # fmt: skip


def test_the_attendance_report_as_events():
    reconciler = Reconciler(None, None, None, PRIVACY, TENANT)  # type: ignore[arg-type]
    events = reconciler.events_of(report(), KEY)
    assert [(e.kind, e.role) for e in events] == [
        ("joined", "provider"), ("left", "provider"),
        ("joined", "patient"), ("left", "patient"), ("joined", "patient"), ("left", "patient"),
        ("ended", "visit"),
    ]  # fmt: skip
    assert {e.source for e in events} == {"reconcile"}
    assert reconciler.events_of(report(), KEY) == events  # run again: the same ids
    state = fold(events)
    assert state.both_in_at == datetime(2026, 12, 1, 9, 5, tzinfo=UTC)
    assert state.patient == "left" and state.ended_at is not None
    assert "Pat" not in " ".join(e.to_text() for e in events)


class Tasks:
    def __init__(self) -> None:
        self.sent: list[tuple[str, int | None]] = []

    def send(self, task, delay_seconds=None) -> None:
        self.sent.append((task.task, delay_seconds))


def event(kind, source="launch", role="patient"):
    return VisitEventMessage(event_id="e" * 16, visit_key=KEY, kind=kind, role=role,
                             at=datetime.now(UTC), source=source)  # fmt: skip


def test_the_timeline_listener_subscribes_on_arrival_and_cleans_up_after_the_call():
    tasks = Tasks()
    follower = GraphFollower(tasks, reconcile_delay=300)  # type: ignore[arg-type]

    def applied(e: VisitEventMessage) -> Applied:
        return Applied(e, VisitState(), None, VisitRows(KEY, Rows({})))

    follower(applied(event("arrived")))
    follower(applied(event("lobby", "graph")))
    follower(applied(event("ended", "reconcile", "visit")))  # reconcile's own: no loop
    assert tasks.sent == [("subscribe", None)]
    follower(applied(event("ended", "graph", "visit")))
    assert tasks.sent[1:] == [("unsubscribe", None), ("reconcile", 300)]


def request(query=None, body=b"", ctype="application/json") -> Request:
    return Request(method="POST", url="https://x/api/graph/notifications",
                   headers=Headers({"content-type": ctype}), query=query or {}, route={},
                   body=body)  # fmt: skip


def receiver() -> NotificationReceiver:
    return NotificationReceiver(None, None, None, PRIVACY, TENANT, PROVEN)  # type: ignore[arg-type]


def test_the_handshake_echoes_the_token_as_text():
    answer = receiver().receive(request({"validationToken": "a+b/c= d"}))
    assert (answer.status, answer.body, answer.content_type) == (
        200, b"a+b/c= d", "text/plain; charset=utf-8",
    )  # fmt: skip
    with pytest.raises(AppError):
        receiver().receive(request({"validationToken": "x" * 5000}))


@pytest.mark.parametrize("body", [b"[]", b'{"value": []}', b'{"value": 3}', b"not json"])
def test_what_is_not_a_notification_is_a_400(body):
    with pytest.raises(AppError) as err:
        receiver().receive(request(body=body))
    assert err.value.status == 400


def test_too_many_at_once_is_refused():
    body = json.dumps({"value": [{}] * 101}).encode()
    with pytest.raises(AppError):
        receiver().receive(request(body=body))


class Proven:
    """Validation tokens taken as good (tests/unit/test_graph_validation_tokens.py checks them)."""

    def trusted(self, tokens) -> bool:
        return True


PROVEN = Proven()


class Subscriptions:
    """What the webhook reads of its subscriptions: one meeting subscription, secret `s3cret`."""

    def __init__(self, cert) -> None:
        from lib.notifications.subscriptions import GraphSubscription

        self.certificate = cert
        now = datetime.now(UTC)
        self.row = GraphSubscription(
            partition_key="sub-1",
            row_key="subscription",
            kind="meeting",
            visit_key=KEY,
            client_state_hash="h",
            expires_at=now,
            created_at=now,
        )

    def get(self, subscription_id):
        return self.row if subscription_id == "sub-1" else None

    def client_state_matches(self, row, given):
        return given == "s3cret"


class Published(list):
    def publish(self, event) -> None:
        self.append(event)


def notification(cert, **over) -> dict:
    data = roster(guest(isInLobby=True))
    item = {"subscriptionId": "sub-1", "clientState": "s3cret", "tenantId": TENANT,
            "changeType": "updated", "encryptedContent": sealed(cert, data)}  # fmt: skip
    return {**item, **over}


def post(receiver, *items):
    return receiver.receive(request(body=json.dumps({"value": list(items)}).encode()))


def test_a_meeting_notification_becomes_events_on_the_queue(cert):
    published = Published()
    webhook = NotificationReceiver(Subscriptions(cert), published, None, PRIVACY, TENANT, PROVEN)  # type: ignore[arg-type]
    assert post(webhook, notification(cert)).status == 202
    assert [(e.kind, e.role) for e in published] == [("lobby", "patient")]


@pytest.mark.parametrize(
    "over",
    [{"clientState": "wrong"}, {"clientState": None}, {"tenantId": "another-tenant"}],
)
def test_refused_unless_it_is_ours(cert, over):
    published = Published()
    webhook = NotificationReceiver(Subscriptions(cert), published, None, PRIVACY, TENANT, PROVEN)  # type: ignore[arg-type]
    with pytest.raises(AppError) as err:
        post(webhook, notification(cert, **over))
    assert err.value.code == "GRAPH-NOTIFICATION-REFUSED" and not published


def test_one_unreadable_notification_does_not_stop_the_others(cert):
    published = Published()
    webhook = NotificationReceiver(Subscriptions(cert), published, None, PRIVACY, TENANT, PROVEN)  # type: ignore[arg-type]
    broken = notification(cert, encryptedContent={"data": "AAAA"})
    assert post(webhook, broken, notification(cert)).status == 202
    assert len(published) == 1
    with pytest.raises(AppError) as err:
        post(webhook, broken)
    assert err.value.code == "GRAPH-NOTIFICATION-INVALID"
