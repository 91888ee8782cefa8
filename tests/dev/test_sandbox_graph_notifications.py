"""The Graph stand-in's subscriptions and notifications against a small HTTPS webhook of the
test's own: the handshake Graph makes before it accepts a subscription, Graph's limits, the
meeting page's roster changes as encrypted call events (decrypted here with the connector's
own code: two independent implementations of Graph's scheme checked against each other),
renewal and deletion, call records with quality a control makes poor, attendance reports, the
validationTokens on rich deliveries (checked with the connector's own validator, and each bad
kind the control makes refused by it), and the fault family that drops a delivery."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from urllib.parse import quote

import pytest
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from dev.sandbox.directory import (
    CONNECTOR_CLIENT_ID,
    GRAPH_AUDIENCE,
    GRAPH_PUBLISHER_APP_ID,
    TENANT_ID,
    USERS,
)
from dev.stack import APP_ADDRESS, app_certificate
from lib.notifications.certificate import NotificationCertificate, generate_pem

OIDS = {u.key: u.object_id for u in USERS}
ROLES = ["OnlineMeetings.ReadWrite.All", "CallRecords.Read.All", "OnlineMeetingArtifact.Read.All"]
CERT = NotificationCertificate.from_pem(generate_pem())


class Webhook:
    """An HTTPS notification URL that answers the handshake (unless told not to)."""

    def __init__(self, tls) -> None:
        self.echo = True
        self.received: list[dict] = []
        self.tokens: list[str] = []
        import ssl

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(tls[0]), str(tls[1]))
        self.server = make_server(APP_ADDRESS, 0, self._app, threaded=True, ssl_context=context)
        self.url = f"https://{APP_ADDRESS}:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @Request.application
    def _app(self, request: Request) -> Response:
        token = request.args.get("validationToken")
        if token is not None:
            self.tokens.append(token)
            return Response(token if self.echo else "no", 200, content_type="text/plain")
        self.received.append(json.loads(request.get_data()))
        return Response(status=202)

    def wait(self, count: int, timeout: float = 15.0, subscription: str | None = None) -> list:
        """The first notifications (of one subscription), once `count` of them came."""
        deadline = time.monotonic() + timeout
        while len(found := self.of(subscription)) < count:
            assert time.monotonic() < deadline, f"{len(found)} notifications, not {count}"
            time.sleep(0.05)
        return found

    def of(self, subscription: str | None) -> list[dict]:
        return [b["value"][0] for b in self.bodies(subscription)]

    def bodies(self, subscription: str | None) -> list[dict]:
        """Whole deliveries (the collection: `value` and any `validationTokens`)."""
        found = list(self.received)
        return [b for b in found if subscription in (None, b["value"][0]["subscriptionId"])]


@pytest.fixture(scope="module")
def webhook(sandbox, tmp_path_factory):
    hook = Webhook(app_certificate(sandbox.ca_file, tmp_path_factory.mktemp("hook")))
    yield hook
    hook.server.shutdown()


@pytest.fixture
def hook(webhook):
    webhook.echo, webhook.received[:], webhook.tokens[:] = True, [], []
    return webhook


def call(sandbox, http, method: str, path: str, version: str = "v1.0", roles=ROLES, **kw):
    token = sandbox.entra.mint(roles=roles, audience=GRAPH_AUDIENCE)
    url = f"{sandbox.graph.base}/{version}{path}"
    return http.request(method, url, headers={"Authorization": f"Bearer {token}"}, timeout=20, **kw)


def meeting(sandbox, http):
    made = call(sandbox, http, "POST", f"/users/{OIDS['reyes']}/onlineMeetings/createOrGet",
                json={"externalId": f"n-{time.time_ns()}"})  # fmt: skip
    assert made.status_code == 201, made.text
    return made.json()


def expiry(minutes: int) -> str:
    return (dt.datetime.now(dt.UTC) + dt.timedelta(minutes=minutes)).isoformat()


def subscribe(sandbox, http, hook, join_url: str, **over):
    body = {
        "changeType": "updated",
        "notificationUrl": hook.url,
        "lifecycleNotificationUrl": hook.url,
        "resource": f"communications/onlineMeetings(joinWebUrl='{quote(join_url, safe='')}')"
        "/meetingCallEvents",
        "expirationDateTime": expiry(60),
        "clientState": "s3cret",
        "includeResourceData": True,
        "encryptionCertificate": CERT.certificate_base64,
        "encryptionCertificateId": CERT.certificate_id,
        **over,
    }
    return call(sandbox, http, "POST", "/subscriptions", version="beta", json=body)


def test_the_handshake_comes_first_and_must_be_echoed(clean_sandbox, sandbox_http, hook):
    m = meeting(clean_sandbox, sandbox_http)
    made = subscribe(clean_sandbox, sandbox_http, hook, m["joinWebUrl"])
    assert made.status_code == 201, made.text
    assert len(hook.tokens) == 1 and made.json()["expirationDateTime"]
    hook.echo = False
    refused = subscribe(clean_sandbox, sandbox_http, hook, m["joinWebUrl"])
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "ValidationError"


@pytest.mark.parametrize(
    ("change", "version", "status"),
    [
        ({"expirationDateTime": 4321}, "beta", 400),  # minutes: past Graph's 3 days
        ({}, "v1.0", 400),  # meetingCallEvents is beta only
        ({"notificationUrl": "http://127.0.0.1/hook"}, "beta", 400),
        ({"encryptionCertificate": "bm90IGEgY2VydA=="}, "beta", 400),
    ],
)
def test_graphs_limits(clean_sandbox, sandbox_http, hook, change, version, status):
    m = meeting(clean_sandbox, sandbox_http)
    if isinstance(change.get("expirationDateTime"), int):  # from now, not from collection
        change = {"expirationDateTime": expiry(change["expirationDateTime"])}
    body = {"resource": f"communications/onlineMeetings(joinWebUrl='{quote(m['joinWebUrl'], safe='')}')/meetingCallEvents",  # noqa: E501
            "changeType": "updated", "notificationUrl": hook.url, "expirationDateTime": expiry(60),
            "includeResourceData": True, "encryptionCertificate": CERT.certificate_base64,
            "encryptionCertificateId": CERT.certificate_id, **change}  # fmt: skip
    answer = call(clean_sandbox, sandbox_http, "POST", "/subscriptions", version=version, json=body)
    assert answer.status_code == status, answer.text


def test_call_records_take_their_own_permission_and_no_resource_data(
    clean_sandbox, sandbox_http, hook
):
    body = {"resource": "communications/callRecords", "changeType": "created",
            "notificationUrl": hook.url, "expirationDateTime": expiry(4230)}  # fmt: skip
    denied = call(clean_sandbox, sandbox_http, "POST", "/subscriptions", json=body,
                  roles=["OnlineMeetings.ReadWrite.All"])  # fmt: skip
    assert denied.status_code == 403
    rich = {**body, "includeResourceData": True, "encryptionCertificate": CERT.certificate_base64}
    assert call(clean_sandbox, sandbox_http, "POST", "/subscriptions", json=rich).status_code == 400
    assert call(clean_sandbox, sandbox_http, "POST", "/subscriptions", json=body).status_code == 201


def test_roster_changes_arrive_encrypted_then_the_record_and_the_report(
    clean_sandbox, sandbox_http, hook
):
    graph = clean_sandbox.graph
    m = meeting(clean_sandbox, sandbox_http)
    sub = subscribe(clean_sandbox, sandbox_http, hook, m["joinWebUrl"]).json()
    records = {"resource": "communications/callRecords", "changeType": "created",
               "notificationUrl": hook.url, "expirationDateTime": expiry(600)}  # fmt: skip
    records_id = call(clean_sandbox, sandbox_http, "POST", "/subscriptions", json=records).json()[
        "id"
    ]
    graph.calls.call_quality = "poor"

    organizer = graph.join(m["id"], "organizer", "Dr. Reyes")
    patient = graph.join(m["id"], "guest", "Pat Guest")
    graph.admit(m["id"], patient.id, by=organizer.id)
    graph.leave(m["id"], patient.id)
    graph.leave(m["id"], organizer.id)
    # callStarted, 5 roster updates, callEnded; then the call record's notification.
    mine = hook.wait(7, subscription=sub["id"])
    events = [CERT.decrypt(n["encryptedContent"]) for n in mine]
    assert all(n["clientState"] == "s3cret" for n in mine)
    assert [e["callEventType"] for e in events] == ["callStarted"] + ["rosterUpdated"] * 5 + [
        "callEnded"
    ]
    lobby = events[2]["participants"][0]
    assert lobby["isInLobby"] and "guest" in lobby["info"]["identity"]
    assert "removedState" in events[4]["participants"][0]
    # The call-records subscription is the tenant's: a call another test's meeting ended may
    # notify it too. Ours is the record of this meeting.
    got, deadline = None, time.monotonic() + 15
    while got is None:
        assert time.monotonic() < deadline, "no call record of this meeting"
        for record_note in hook.of(records_id):
            assert "encryptedContent" not in record_note
            assert not any("validationTokens" in b for b in hook.bodies(records_id))
            record_id = record_note["resourceData"]["id"]
            found = call(clean_sandbox, sandbox_http, "GET",
                         f"/communications/callRecords/{record_id}",
                         params={"$expand": "sessions($expand=segments)"}).json()  # fmt: skip
            if found.get("joinWebUrl") == m["joinWebUrl"]:
                got = found
        time.sleep(0.05)
    assert len(got["sessions"]) == 2
    stream = got["sessions"][0]["segments"][0]["media"][0]["streams"][0]
    assert stream["averagePacketLossRate"] > 0.05  # the control made it poor

    base = f"/users/{OIDS['reyes']}/onlineMeetings/{quote(m['id'], safe='')}/attendanceReports"
    (summary,) = call(clean_sandbox, sandbox_http, "GET", base).json()["value"]
    report = call(clean_sandbox, sandbox_http, "GET", f"{base}/{summary['id']}",
                  params={"$expand": "attendanceRecords"}).json()  # fmt: skip
    roles = sorted(r["role"] for r in report["attendanceRecords"])
    assert roles == ["Attendee", "Organizer"] and report["meetingEndDateTime"]

    renewed = call(clean_sandbox, sandbox_http, "PATCH", f"/subscriptions/{sub['id']}",
                   version="beta", json={"expirationDateTime": expiry(120)})  # fmt: skip
    assert renewed.status_code == 200, renewed.text
    path = f"/subscriptions/{sub['id']}"
    assert call(clean_sandbox, sandbox_http, "DELETE", path, version="beta").status_code == 204
    assert call(clean_sandbox, sandbox_http, "GET", path, version="beta").status_code == 404


def test_a_fault_drops_one_delivery(clean_sandbox, sandbox_http, hook):
    graph = clean_sandbox.graph
    m = meeting(clean_sandbox, sandbox_http)
    sub = subscribe(clean_sandbox, sandbox_http, hook, m["joinWebUrl"]).json()["id"]
    clean_sandbox.inject(family="graph-notifications", path="", count=1)
    organizer = graph.join(m["id"], "organizer", "Dr. Reyes")  # callStarted dropped
    assert graph.subscriptions.wait_idle()
    (only,) = hook.wait(1, subscription=sub)
    assert CERT.decrypt(only["encryptedContent"])["callEventType"] == "rosterUpdated"
    statuses = [d.status for d in graph.subscriptions.deliveries if d.subscription_id == sub]
    assert statuses == [-1, 202]
    graph.leave(m["id"], organizer.id)


def validator(sandbox):
    from lib.net.http import OutboundHttp
    from lib.net.jwks import JwksCache
    from lib.notifications.validation import ValidationTokens

    jwks = JwksCache(OutboundHttp(local_mode=True))
    return ValidationTokens(jwks, issuer=sandbox.entra.issuer, tenant_id=TENANT_ID,
                            client_id=CONNECTOR_CLIENT_ID)  # fmt: skip


def test_rich_deliveries_carry_graphs_validation_token(
    clean_sandbox, sandbox_http, hook, sandbox_trust
):
    import jwt

    graph = clean_sandbox.graph
    m = meeting(clean_sandbox, sandbox_http)
    sub = subscribe(clean_sandbox, sandbox_http, hook, m["joinWebUrl"]).json()["id"]
    organizer = graph.join(m["id"], "organizer", "Dr. Reyes")  # callStarted, rosterUpdated
    first, second = hook.wait(2, subscription=sub) and hook.bodies(sub)[:2]
    assert first["validationTokens"] == second["validationTokens"]  # reused while fresh, as Graph
    (token,) = first["validationTokens"]
    claims = jwt.decode(token, options={"verify_signature": False})
    assert (claims["aud"], claims["azp"], claims["iss"], claims["tid"], claims["ver"]) == (
        CONNECTOR_CLIENT_ID, GRAPH_PUBLISHER_APP_ID, clean_sandbox.entra.issuer, TENANT_ID, "2.0"
    )  # fmt: skip
    assert validator(clean_sandbox).trusted(first["validationTokens"])
    graph.leave(m["id"], organizer.id)


@pytest.mark.parametrize(
    "mode, trusted",
    [("good-v1", True), ("missing", False), ("expired", False), ("wrong-audience", False),
     ("wrong-publisher", False), ("forged", False)],
)  # fmt: skip
def test_the_control_makes_the_tokens_bad(
    clean_sandbox, sandbox_http, hook, sandbox_trust, mode, trusted
):
    graph = clean_sandbox.graph
    settings = f"{graph.control_url}/settings"
    answer = sandbox_http.post(settings, json={"validation_token": mode}, timeout=10)
    assert answer.status_code == 200 and answer.json()["validation_token"] == mode
    m = meeting(clean_sandbox, sandbox_http)
    sub = subscribe(clean_sandbox, sandbox_http, hook, m["joinWebUrl"]).json()["id"]
    organizer = graph.join(m["id"], "organizer", "Dr. Reyes")
    (body,) = hook.wait(1, subscription=sub) and hook.bodies(sub)[:1]
    assert ("validationTokens" in body) == (mode != "missing")
    assert validator(clean_sandbox).trusted(body.get("validationTokens")) is trusted
    graph.leave(m["id"], organizer.id)


def test_the_token_control_takes_known_kinds_only(clean_sandbox, sandbox_http):
    settings = f"{clean_sandbox.graph.control_url}/settings"
    assert (
        sandbox_http.post(settings, json={"validation_token": "x"}, timeout=10).status_code == 400
    )
    clean_sandbox.graph.subscriptions.validation_token = "forged"
    clean_sandbox.reset()
    assert clean_sandbox.graph.subscriptions.validation_token == "good"


def test_entras_keys_not_answering_is_a_503_not_a_verdict(
    clean_sandbox, sandbox_http, hook, sandbox_trust
):
    """A validator that never had the keys, Entra's keys answering 503: Graph is asked to come
    back (SRV-MICROSOFT-UNAVAILABLE, Retry-After), nothing is taken unverified."""
    from lib.web.errors import AppError

    graph = clean_sandbox.graph
    m = meeting(clean_sandbox, sandbox_http)
    sub = subscribe(clean_sandbox, sandbox_http, hook, m["joinWebUrl"]).json()["id"]
    organizer = graph.join(m["id"], "organizer", "Dr. Reyes")
    (body,) = hook.wait(1, subscription=sub) and hook.bodies(sub)[:1]
    fresh = validator(clean_sandbox)
    clean_sandbox.inject(family="entra-keys", status=503, count=None)
    with pytest.raises(AppError) as err:
        fresh.trusted(body["validationTokens"])
    assert err.value.code == "SRV-MICROSOFT-UNAVAILABLE" and "Retry-After" in err.value.headers
    clean_sandbox.faults.reset()
    assert fresh.trusted(body["validationTokens"])
    graph.leave(m["id"], organizer.id)
