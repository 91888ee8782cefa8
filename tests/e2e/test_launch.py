"""SMART EHR launch into a Teams visit, end to end over real HTTP.

Local host + sandbox (Epic-like and Cerner-like EHRs, Entra ID, Graph) + Azurite, with the real
requests, msal and our SMART client. A small "browser" follows redirects and auto-POST forms.
"""

from __future__ import annotations

import base64
import fnmatch
import html
import json
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest

from dev.browser import FORM_ACTION, FORM_INPUT, Browser, Outcome


def register(app, body: dict, approve: bool) -> dict:
    """Register (and for Epic approve) an endpoint, replacing any on the same base URL."""
    admin = app.session("admin")
    for item in admin.get(app.api("config/endpoints")).json()["items"]:
        if item["fhir_base_url"] == body["fhir_base_url"] or item["id"] == body["id"]:
            etag = admin.get(app.api(f"config/endpoints/{item['id']}")).headers["ETag"]
            admin.delete(app.api(f"config/endpoints/{item['id']}"), headers={"If-Match": etag})
    made = admin.post(app.api("config/endpoints"), json=body)
    assert made.status_code == 201, made.text
    if approve:
        start = app.session("approver").post(app.api(f"config/endpoints/{body['id']}/approval"))
        page = app.sandbox.ehr_standalone_sign_in(start.json()["authorize_url"])
        assert page.status_code == 200, page.text
    got = admin.get(app.api(f"config/endpoints/{body['id']}")).json()
    assert got["status"] == "active", got
    return got


APPROVER = {"oid": "1c1a00a9-0000-4000-8000-00000000a901", "display_name": "Priya Analyst"}


@pytest.fixture(scope="module")
def endpoints(app):
    epic = register(
        app,
        {
            "id": "epic-launch-test",
            "fhir_base_url": app.sandbox.ehr_base("epic"),
            "vendor": "epic",
            "environment": "test",
            "organization": "Launch Test Org",
            "client_id": "evc-epic-test",
            "client_auth": {
                "method": "client_secret_basic",
                "secret_setting": "EHR_SECRET_EPIC",
            },
            "approver": APPROVER,
        },
        approve=True,
    )
    cerner = register(
        app,
        {
            "id": "cerner-launch-test",
            "fhir_base_url": app.sandbox.ehr_base("cerner"),
            "vendor": "cerner",
            "environment": "test",
            "organization": "Launch Test Org",
            "client_id": "evc-cerner-jwt",
            "client_auth": {"method": "private_key_jwt", "alg": "ES384"},
        },
        approve=False,
    )
    return {"epic": epic, "cerner": cerner}


@pytest.fixture
def quiet_sandbox(app):
    """Quirks and faults back to normal around each test (the connector settings survive)."""
    app.sandbox.reset()
    yield app.sandbox
    app.sandbox.reset()


def launch_url(app, endpoint_id: str, kind: str, vendor: str, **mint) -> str:
    ehr = getattr(app.sandbox, vendor)
    minted = ehr.mint_launch(kind, **mint)
    return (
        app.api(f"launch/{endpoint_id}/{kind}")
        + "?"
        + urlencode({"iss": minted.iss, "launch": minted.token})
    )


def visit_data(app, outcome: Outcome) -> dict:
    """What the visit page shows, fetched as its script does (token from the URL fragment)."""
    token = urlsplit(outcome.url).fragment
    resp = app.session().get(app.api("visit/status"), headers={"X-Visit-Token": token}, timeout=10)
    assert resp.status_code == 200, resp.text
    return resp.json()


def visit_status(app, outcome: Outcome) -> dict:
    return visit_data(app, outcome)["presence"]


def patient_status_becomes(app, outcome: Outcome, status: str, timeout: float = 30.0) -> None:
    """The launch's event reaches the visit through the visit-events queue: within seconds."""
    deadline = time.monotonic() + timeout
    while (seen := visit_status(app, outcome)["patient"]) != status:
        assert time.monotonic() < deadline, f"patient still {seen!r}, not {status!r}"
        time.sleep(0.2)


# --- the journeys --------------------------------------------------------------------------------
@pytest.mark.parametrize("vendor", ["epic", "cerner"])
def test_provider_and_patient_journey(app, endpoints, quiet_sandbox, vendor):
    endpoint = endpoints[vendor]["id"]
    user, slot = ("okafor", "okafor-1000") if vendor == "epic" else ("lindqvist", "lindqvist-1400")
    mint = {"appointment": slot}
    clinician = {"clinician": user}
    browser = Browser(app.sandbox, entra_user=user)

    first = browser.go(launch_url(app, endpoint, "provider", vendor, **clinician, **mint))
    assert first.response.status_code == 200, first.response.text[:500]
    assert "/api/visit#" in first.url and "Join in Teams" in first.response.text
    assert urlsplit(first.url).fragment not in first.response.text  # the page never holds it
    assert visit_status(app, first)["patient"] == "not joined"
    headers = first.response.headers
    assert headers["Cache-Control"] == "no-store" and headers["Referrer-Policy"] == "no-referrer"
    assert "default-src 'none'" in headers["Content-Security-Policy"]

    again = browser.go(launch_url(app, endpoint, "provider", vendor, **clinician, **mint))
    assert again.response.status_code == 200 and not again.signed_in  # mapping remembered
    join = visit_data(app, first)["join_url"]
    assert join == visit_data(app, again)["join_url"]

    patient = Browser(app.sandbox).go(launch_url(app, endpoint, "patient", vendor, **mint))
    assert patient.response.url.split("?")[0] == html.unescape(join).split("?")[0]
    assert not patient.signed_in
    patient_status_becomes(app, first, "joining")  # on the way to the lobby
    assert_appointment_sealed(app, first, vendor, slot)


def assert_appointment_sealed(app, outcome: Outcome, vendor: str, slot: str) -> None:
    """The launch kept the appointment's FHIR reference for write-back: sealed, bound to the
    visit, with a purge time; not in clear anywhere in the row."""
    from azure.data.tables import TableServiceClient

    from lib.bootstrap import build
    from lib.settings import load_settings
    from lib.visits.sealed import APPOINTMENT_ID, WRITEBACK_WINDOW

    fhir_id = getattr(app.sandbox, vendor).chart.slot(slot).ids[vendor]
    settings = load_settings(app.env)
    page_token = urlsplit(outcome.url).fragment
    key = _visit_key_of(page_token)
    assert build(settings).sealed.open(key, APPOINTMENT_ID) == f"Appointment/{fhir_id}"
    tables = TableServiceClient.from_connection_string(app.storage)
    row = tables.get_table_client(settings.table_prefix + "Sealed").get_entity(key, APPOINTMENT_ID)
    assert fhir_id not in str(dict(row))
    assert row["purge_after"] > datetime.now(UTC) + WRITEBACK_WINDOW - timedelta(minutes=5)


def _visit_key_of(page_token: str) -> str:
    payload = page_token.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["v"]


def test_first_launch_needs_microsoft_sign_in_exactly_once(app, endpoints, quiet_sandbox):
    browser = Browser(app.sandbox, entra_user="reyes")
    first = browser.go(launch_url(app, "epic-launch-test", "provider", "epic", clinician="reyes"))
    second = browser.go(launch_url(app, "epic-launch-test", "provider", "epic", clinician="reyes"))
    assert first.response.status_code == 200 and second.response.status_code == 200
    assert second.signed_in is False
    # a new browser (another workstation): still no sign-in, the mapping lives server-side
    third = Browser(app.sandbox, entra_user="reyes").go(
        launch_url(app, "epic-launch-test", "provider", "epic", clinician="reyes")
    )
    assert third.response.status_code == 200 and third.signed_in is False


def test_concurrent_launches_share_one_meeting(app, endpoints, quiet_sandbox):
    warm = Browser(app.sandbox, entra_user="reyes")
    first = warm.go(launch_url(app, "epic-launch-test", "provider", "epic", clinician="reyes"))
    assert first.response.status_code == 200
    appointment = "reyes-0930"  # launched by nobody before: the meeting is created here
    results: list[Outcome] = []

    def one() -> None:
        url = launch_url(
            app, "epic-launch-test", "provider", "epic", clinician="reyes", appointment=appointment
        )
        results.append(Browser(app.sandbox, entra_user="reyes").go(url))

    threads = [threading.Thread(target=one) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    joins = {visit_data(app, r)["join_url"] for r in results}
    assert all(r.response.status_code == 200 for r in results)
    assert len(joins) == 1


# --- refusals before anything leaves the server -----------------------------------------------
# Graph's subscriptions, call records and attendance reports: the graph-tasks queue's background
# work for earlier visits, which no launch sends (and which may run while a test looks).
BACKGROUND = (
    "/graph/*/subscriptions*",
    "/graph/v1.0/communications/*",
    "/graph/v1.0/users/*/onlineMeetings/*/attendanceReports*",
)


def sent(app) -> int:
    """How many requests reached the sandbox, the Graph background work left out."""
    entries = app.sandbox.journal.entries()
    return sum(1 for e in entries if not any(fnmatch.fnmatchcase(e.path, g) for g in BACKGROUND))


def nothing_sent(app, before: int) -> bool:
    return sent(app) == before


def test_unknown_endpoint(app, endpoints, quiet_sandbox):
    before = sent(app)
    out = Browser(app.sandbox).go(
        app.api("launch/no-such-endpoint/provider")
        + f"?iss={app.sandbox.ehr_base('epic')}&launch=x"
    )
    assert out.response.status_code == 404 and out.error_code == "LAUNCH-UNKNOWN-ENDPOINT"
    assert nothing_sent(app, before)


@pytest.mark.parametrize(
    "iss",
    ["https://evil.example/fhir", "{epic}x", "{cerner}"],
)
def test_iss_must_be_the_endpoints_base(app, endpoints, quiet_sandbox, iss):
    iss = iss.format(epic=app.sandbox.ehr_base("epic"), cerner=app.sandbox.ehr_base("cerner"))
    before = sent(app)
    query = urlencode({"iss": iss, "launch": "abc"})
    out = Browser(app.sandbox).go(app.api("launch/epic-launch-test/provider") + "?" + query)
    assert out.response.status_code == 400 and out.error_code == "LAUNCH-ISS-MISMATCH"
    assert nothing_sent(app, before)


def test_iss_with_a_trailing_slash_is_the_same_base(app, endpoints, quiet_sandbox):
    """Accepted, and `aud` goes to the EHR exactly as the EHR sent `iss` (slash included)."""
    iss = app.sandbox.ehr_base("epic") + "/"
    query = urlencode({"iss": iss, "launch": "abc"})
    page = app.session().get(
        app.api("launch/epic-launch-test/provider") + "?" + query,
        headers={"Accept": "text/html"},
        allow_redirects=False,
        timeout=30,
    )
    assert page.status_code == 200, page.text[:300]  # Epic: the auto-submitting authorize form
    action = FORM_ACTION.search(page.text)
    assert action and html.unescape(action.group(1)) == app.sandbox.epic.authorize_url
    fields = {html.unescape(k): html.unescape(v) for k, v in FORM_INPUT.findall(page.text)}
    assert fields["aud"] == iss and fields["launch"] == "abc"


def test_missing_parameters(app, endpoints, quiet_sandbox):
    before = sent(app)
    base = app.sandbox.ehr_base("epic")
    no_launch = Browser(app.sandbox).go(
        app.api("launch/epic-launch-test/provider") + f"?iss={base}"
    )
    no_iss = Browser(app.sandbox).go(app.api("launch/epic-launch-test/provider") + "?launch=x")
    assert no_launch.error_code == no_iss.error_code == "LAUNCH-MISSING-PARAM"
    assert nothing_sent(app, before)


def test_test_ehr_on_a_production_launch_url(app, endpoints, quiet_sandbox):
    register(
        app,
        {
            "id": "cerner-launch-prod",
            "fhir_base_url": app.sandbox.variant_base("moved-hosts", vendor="cerner"),
            "vendor": "cerner",
            "environment": "production",
            "organization": "Launch Test Org",
            "client_id": "evc-cerner-jwt",
            "client_auth": {"method": "private_key_jwt", "alg": "ES384"},
        },
        approve=False,
    )
    before = sent(app)
    query = urlencode({"iss": app.sandbox.ehr_base("cerner"), "launch": "abc"})
    out = Browser(app.sandbox).go(app.api("launch/cerner-launch-prod/provider") + "?" + query)
    assert out.response.status_code == 400 and out.error_code == "LAUNCH-ENV-MISMATCH"
    assert nothing_sent(app, before)


# --- the callback -----------------------------------------------------------------------------
def test_callback_state_missing_forged_reused(app, endpoints, quiet_sandbox):
    b = Browser(app.sandbox)
    assert b.go(app.api("launch/callback?code=x")).error_code == "LAUNCH-STATE-MISSING"
    forged = app.api("launch/callback?code=x&state=" + uuid.uuid4().hex + uuid.uuid4().hex)
    assert b.go(forged).error_code == "LAUNCH-STATE-MISSING"
    # complete one launch, then replay its callback
    b2 = Browser(app.sandbox, entra_user="reyes")
    b2.go(launch_url(app, "epic-launch-test", "provider", "epic", clinician="reyes"))
    callbacks = [u for u in b2.visited if "/api/launch/callback" in u]
    for callback in callbacks:  # the EHR's answer, and (first launch) Microsoft's
        replay = b2.go(callback)  # the same browser, its sign-in cookie still there
        assert replay.response.status_code == 400 and replay.error_code == "LAUNCH-STATE-REUSED"
    ehr_answer = next(u for u in callbacks if "state=l." in u)  # the browser held the session
    elsewhere = Browser(app.sandbox).go(ehr_answer)  # no cookie: not this browser's sign-in
    assert elsewhere.response.status_code == 400
    assert elsewhere.error_code == "LAUNCH-BROWSER-MISMATCH"
    tampered = ehr_answer.replace("state=l.", "state=l.A")
    assert Browser(app.sandbox).go(tampered).error_code == "LAUNCH-BROWSER-MISMATCH"


def test_a_launch_start_writes_nothing_to_storage(app, endpoints, quiet_sandbox):
    """The launch URL is open to anyone: starting a launch costs no storage write."""
    from azure.data.tables import TableServiceClient

    service = TableServiceClient.from_connection_string(app.storage)

    def rows() -> int:
        # Not what the visit-events queue function writes meanwhile (earlier tests' events
        # arrive in their own time): the event rows, and the state row beside each visit.
        names = [t.name for t in service.list_tables() if t.name.startswith("e2e")]
        names = [n for n in names if n != "e2eVisitEvents"]
        return sum(
            1
            for n in names
            for row in service.get_table_client(n).list_entities()
            if row["RowKey"] != "state"
        )

    before = rows()
    for _ in range(5):
        started = Browser(app.sandbox)._get(
            launch_url(app, "epic-launch-test", "provider", "epic", clinician="reyes")
        )
        assert started.status_code == 200 and "Set-Cookie" in started.headers
    assert rows() == before


def test_expired_state(app, endpoints, quiet_sandbox):
    from datetime import UTC, datetime, timedelta

    from azure.data.tables import TableServiceClient

    from lib.signin.sessions import SessionStore
    from lib.storage import TableStore

    store = TableStore(TableServiceClient.from_connection_string(app.storage), "e2e")  # app's
    old = SessionStore(store).start(
        "provider",
        redirect_uri=app.api("launch/callback"),
        endpoint_id="epic-launch-test",
        now=datetime.now(UTC) - timedelta(minutes=30),
    )
    out = Browser(app.sandbox).go(app.api(f"launch/callback?code=x&state={old.row_key}"))
    assert out.response.status_code == 400 and out.error_code == "LAUNCH-STATE-EXPIRED"


def test_ehr_error_callback(app, endpoints, quiet_sandbox):
    app.sandbox.epic.set_quirks(authorize_error="access_denied")
    out = Browser(app.sandbox).go(
        launch_url(app, "epic-launch-test", "provider", "epic", clinician="reyes")
    )
    assert out.response.status_code == 400 and out.error_code == "LAUNCH-EHR-ERROR"
    assert "access_denied" in out.response.text


def test_callback_iss_must_be_the_issuer(app, endpoints, quiet_sandbox):
    """A mix-up attack: the callback claims another issuer. Refused before the code is used."""
    app.sandbox.cerner.set_quirks(rfc9207_iss=True)
    b = Browser(app.sandbox)
    back = b.to_callback(launch_url(app, "cerner-launch-test", "provider", "cerner"))
    parts = urlsplit(back)
    params = dict(parse_qsl(parts.query))
    assert params["iss"] and params["code"]  # the EHR sent RFC 9207 iss
    params["iss"] = "https://evil.example/"
    before = len(app.sandbox.journal.entries(stand_in="cerner", path="*/token"))
    out = b.go(app.api("launch/callback") + "?" + urlencode(params))
    assert out.response.status_code == 400 and out.error_code == "LAUNCH-CALLBACK-ISS"
    assert len(app.sandbox.journal.entries(stand_in="cerner", path="*/token")) == before


def test_callback_with_the_right_iss_is_accepted(app, endpoints, quiet_sandbox):
    app.sandbox.cerner.set_quirks(rfc9207_iss=True)
    out = Browser(app.sandbox, entra_user="lindqvist").go(
        launch_url(app, "cerner-launch-test", "provider", "cerner", clinician="lindqvist")
    )
    assert out.response.status_code == 200 and "/api/visit#" in out.url


@pytest.mark.parametrize(
    "bad", ["wrong_aud", "expired", "bad_signature", "wrong_nonce", "wrong_iss"]
)
def test_bad_id_tokens(app, endpoints, quiet_sandbox, bad):
    app.sandbox.epic.set_quirks(bad_id_token=bad)
    out = Browser(app.sandbox, entra_user="reyes").go(
        launch_url(app, "epic-launch-test", "provider", "epic", clinician="reyes")
    )
    assert out.response.status_code == 502 and out.error_code == "TOKEN-ID-TOKEN-INVALID"


def test_id_token_without_kid_is_accepted(app, endpoints, quiet_sandbox):
    app.sandbox.epic.set_quirks(bad_id_token="missing_kid")
    out = Browser(app.sandbox, entra_user="reyes").go(
        launch_url(app, "epic-launch-test", "provider", "epic", clinician="reyes")
    )
    assert out.response.status_code == 200 and "/api/visit#" in out.url


def test_no_appointment_context(app, endpoints, quiet_sandbox):
    app.sandbox.epic.set_quirks(omit_context=["appointment", "encounter", "fhirContext"])
    out = Browser(app.sandbox, entra_user="reyes").go(
        launch_url(app, "epic-launch-test", "provider", "epic", clinician="reyes")
    )
    assert out.response.status_code == 422 and out.error_code == "LAUNCH-NO-APPOINTMENT"


def test_scope_not_granted(app, endpoints, quiet_sandbox):
    app.sandbox.epic.update_client("evc-epic-test", grant_less=["user/Appointment.read"])
    out = Browser(app.sandbox, entra_user="reyes").go(
        launch_url(app, "epic-launch-test", "provider", "epic", clinician="reyes")
    )
    assert out.response.status_code == 403 and out.error_code == "LAUNCH-SCOPE-NOT-GRANTED"
    assert "user/Appointment.read" in out.response.text


def test_graph_throttling_is_retried(app, endpoints, quiet_sandbox):
    Browser(app.sandbox, entra_user="reyes").go(
        launch_url(app, "epic-launch-test", "provider", "epic", clinician="reyes")
    )  # mapping in place
    target = "lindqvist-1400"  # no visit yet on the Epic endpoint: Graph will be asked
    app.sandbox.inject(
        "/graph/v1.0/users/*/onlineMeetings/createOrGet", status=429, retry_after=1, count=1
    )
    out = Browser(app.sandbox, entra_user="reyes").go(
        launch_url(
            app, "epic-launch-test", "provider", "epic", clinician="reyes", appointment=target
        )
    )
    assert out.response.status_code == 200, out.response.text[:300]
    calls = app.sandbox.journal.entries(stand_in="graph", path="*/createOrGet")
    assert len(calls) >= 2 and calls[0].faulted


def test_join_url_not_from_teams_is_refused(app, endpoints, quiet_sandbox):
    body = {"id": "m-evil", "joinWebUrl": "https://evil.example/meet", "externalId": "x"}
    app.sandbox.inject(
        "/graph/v1.0/users/*/onlineMeetings/createOrGet", status=200, body=body, count=5
    )
    # the Cerner endpoint has no visit for this slot yet: Graph is asked and answers "evil"
    out = Browser(app.sandbox, entra_user="reyes").go(
        launch_url(
            app,
            "cerner-launch-test",
            "provider",
            "cerner",
            clinician="reyes",
            appointment="okafor-1000",
        )
    )
    assert out.response.status_code == 502 and out.error_code == "LAUNCH-REDIRECT-REFUSED"
    assert "evil.example" not in out.response.headers.get("Location", "")


# --- the browser that started a sign-in is the one that finishes it ------------------------------
def test_ehr_callback_in_another_browser_is_refused(app, endpoints, quiet_sandbox):
    starter = Browser(app.sandbox, entra_user="reyes")
    callback = starter.to_callback(
        launch_url(app, "epic-launch-test", "provider", "epic", clinician="reyes")
    )
    stranger = Browser(app.sandbox, entra_user="okafor").go(callback)
    assert stranger.response.status_code == 400
    assert stranger.error_code == "LAUNCH-BROWSER-MISMATCH"


def test_a_stranger_can_neither_show_an_error_nor_burn_the_sign_in(app, endpoints, quiet_sandbox):
    """The binding is checked before the state is used and before an EHR `error=` is shown."""
    starter = Browser(app.sandbox, entra_user="reyes")
    callback = starter.to_callback(
        launch_url(app, "epic-launch-test", "provider", "epic", clinician="reyes")
    )
    state = dict(parse_qsl(urlsplit(callback).query))["state"]
    forged = (
        app.api("launch/callback")
        + "?"
        + urlencode(
            {"state": state, "error": "access_denied", "error_description": "Call 555-0100 now"}
        )
    )
    stranger = Browser(app.sandbox, entra_user="okafor").go(forged)
    assert stranger.error_code == "LAUNCH-BROWSER-MISMATCH"
    assert "555-0100" not in stranger.response.text
    again = Browser(app.sandbox, entra_user="okafor").go(callback)  # the real one, elsewhere
    assert again.error_code == "LAUNCH-BROWSER-MISMATCH"
    finished = starter.go(callback)  # the sign-in is still the starter's to finish
    assert finished.response.status_code == 200 and "/api/visit#" in finished.url


def test_microsoft_sign_in_link_in_another_browser_maps_nobody(app, endpoints, quiet_sandbox):
    """A first launch's Microsoft sign-in page, sent to a colleague: refused, nothing mapped."""
    from dev.browser import entra_sign_in

    starter = Browser(app.sandbox)
    url = launch_url(app, "cerner-launch-test", "provider", "cerner", clinician="okafor")
    to_microsoft = starter._get(starter.to_callback(url))  # the EHR's answer, in its browser
    assert to_microsoft.is_redirect and "/entra/" in to_microsoft.headers["Location"]
    colleague = Browser(app.sandbox, entra_user="lindqvist")
    done = entra_sign_in(colleague.s, to_microsoft.headers["Location"], "lindqvist")
    refused = colleague.go(f"{done.target}?{urlencode(done.params)}")
    assert refused.error_code == "LAUNCH-BROWSER-MISMATCH"
    # okafor is still unmapped on this endpoint: the next launch asks for the sign-in again
    again = Browser(app.sandbox, entra_user="okafor").go(
        launch_url(app, "cerner-launch-test", "provider", "cerner", clinician="okafor")
    )
    assert again.signed_in and again.response.status_code == 200


def test_a_patient_on_the_provider_url_is_not_a_clinician(app, endpoints, quiet_sandbox):
    minted = app.sandbox.cerner.mint_launch("patient", appointment="reyes-0900")
    url = (
        app.api("launch/cerner-launch-test/provider")
        + "?"
        + urlencode({"iss": minted.iss, "launch": minted.token})
    )
    out = Browser(app.sandbox).go(url)
    assert out.response.status_code == 422 and out.error_code == "LAUNCH-NO-USER"
    assert "Patient" in out.response.text  # the page says what kind of user it was


def test_endpoint_disabled_during_sign_in(app, endpoints, quiet_sandbox):
    b = Browser(app.sandbox, entra_user="reyes")
    callback = b.to_callback(
        launch_url(app, "epic-launch-test", "provider", "epic", clinician="reyes")
    )
    admin = app.session("admin")
    admin.post(app.api("config/endpoints/epic-launch-test/disable"))
    try:
        out = b.go(callback)
        assert out.response.status_code == 403 and out.error_code == "LAUNCH-ENDPOINT-DISABLED"
        token_calls = app.sandbox.journal.entries(stand_in="epic", path="*/token")
        assert token_calls == []  # the code was never redeemed
    finally:
        admin.post(app.api("config/endpoints/epic-launch-test/enable"))


def test_launch_error_pages_may_be_framed_by_the_ehr(app, endpoints, quiet_sandbox):
    admin = app.session("admin")
    url = app.api("config/endpoints/cerner-launch-test")
    etag = admin.get(url).headers["ETag"]
    origins = {"ehr_origins": ["https://powerchart.example.org"]}
    patched = admin.patch(url, json={"launch": origins}, headers={"If-Match": etag})
    assert patched.status_code == 200, patched.text
    try:
        out = Browser(app.sandbox).go(app.api("launch/cerner-launch-test/provider?launch=x"))
        assert out.error_code == "LAUNCH-MISSING-PARAM"
        csp = out.response.headers["Content-Security-Policy"]
        assert "frame-ancestors https://powerchart.example.org" in csp
        assert "X-Frame-Options" not in out.response.headers
    finally:
        etag = admin.get(url).headers["ETag"]
        admin.patch(url, json={"launch": {"ehr_origins": []}}, headers={"If-Match": etag})


def test_cerner_patients_sign_in_at_the_patient_persona(app, endpoints, quiet_sandbox):
    out = Browser(app.sandbox).go(
        launch_url(app, "cerner-launch-test", "patient", "cerner", appointment="lindqvist-1400")
    )
    assert "/graph/meet/" in out.response.url
    calls = app.sandbox.journal.entries(stand_in="cerner", path="*/authorize")
    assert {e.path.split("/personas/")[1].split("/")[0] for e in calls} == {"patient"}


def test_admins_can_see_and_remove_a_clinicians_mapping(app, endpoints, quiet_sandbox):
    from dev.sandbox import directory

    reyes = next(u for u in directory.USERS if u.key == "reyes").object_id
    Browser(app.sandbox, entra_user="reyes").go(
        launch_url(app, "epic-launch-test", "provider", "epic", clinician="reyes")
    )
    base = app.api("config/endpoints/epic-launch-test/mappings")
    listed = app.session("reader").get(base, params={"entra_oid": reyes}).json()
    assert listed["count"] == 1 and listed["items"][0]["entra_oid"] == reyes
    key = listed["items"][0]["mapping"]
    assert "reyes" not in key.lower()  # a keyed hash, never the EHR user id
    assert app.session("reader").delete(f"{base}/{key}").status_code == 403
    assert app.session("admin").delete(f"{base}/{key}").status_code == 204
    again = app.session("admin").delete(f"{base}/{key}")
    assert again.status_code == 404 and again.json()["code"] == "CFG-MAPPING-NOT-FOUND"
    trail = (
        app.session("reader")
        .get(
            app.api("config/audit"),
            params={"endpoint": "epic-launch-test", "action": "mapping.delete"},
        )
        .json()["items"]
    )
    assert trail and trail[0]["before"]["entra_oid"] == reyes
    relaunch = Browser(app.sandbox, entra_user="reyes").go(
        launch_url(app, "epic-launch-test", "provider", "epic", clinician="reyes")
    )
    assert relaunch.signed_in and relaunch.response.status_code == 200


# --- the patient arrives first ---------------------------------------------------------
UNKNOWN_ORGANIZER = "00000000-0000-4000-8000-00000000dead"


@pytest.fixture(scope="module")
def fresh_endpoint(app, endpoints):
    """An endpoint no other test launched on (its own FHIR base, so its own visit keys), whose
    default organizer is an account Microsoft does not know."""
    return register(
        app,
        {
            "id": "epic-patient-first",
            "fhir_base_url": app.sandbox.variant_base("second-base", vendor="epic"),
            "vendor": "epic",
            "environment": "test",
            "organization": "Patient First Org",
            "client_id": "evc-epic-test",
            "client_auth": {
                "method": "client_secret_basic",
                "secret_setting": "EHR_SECRET_EPIC",
            },
            "approver": APPROVER,
            "launch": {"default_organizer": UNKNOWN_ORGANIZER},
        },
        approve=True,
    )["id"]


def fresh_launch(app, endpoint: str, kind: str, **mint) -> str:
    minted = app.sandbox.epic.mint_launch(
        kind, iss=app.sandbox.variant_base("second-base", vendor="epic"), **mint
    )
    return (
        app.api(f"launch/{endpoint}/{kind}")
        + "?"
        + urlencode({"iss": minted.iss, "launch": minted.token})
    )


def test_patient_first_then_the_clinician_takes_over_an_unusable_organizer(
    app, fresh_endpoint, quiet_sandbox
):
    # 1. the patient is first; the clinician has no mapping here, so the default organizer is
    #    tried, and Microsoft does not know that account
    early = Browser(app.sandbox).go(
        fresh_launch(app, fresh_endpoint, "patient", appointment="reyes-0930")
    )
    assert early.response.status_code == 409 and early.error_code == "GRAPH-ORGANIZER-UNKNOWN"
    # 2. the clinician launches (first time: Microsoft sign-in) and takes the visit over
    clinician = Browser(app.sandbox, entra_user="reyes").go(
        fresh_launch(app, fresh_endpoint, "provider", clinician="reyes", appointment="reyes-0930")
    )
    assert clinician.signed_in and clinician.response.status_code == 200
    join = visit_data(app, clinician)["join_url"]
    # 3. the patient tries again and lands in that meeting's lobby
    later = Browser(app.sandbox).go(
        fresh_launch(app, fresh_endpoint, "patient", appointment="reyes-0930")
    )
    assert later.response.url.split("?")[0] == join.split("?")[0]
    patient_status_becomes(app, clinician, "joining")


def test_patient_first_with_a_known_clinician_opens_the_clinicians_meeting(
    app, fresh_endpoint, quiet_sandbox
):
    # reyes is mapped on this endpoint by now (previous test); the patient of reyes-0900 is first
    patient = Browser(app.sandbox).go(
        fresh_launch(app, fresh_endpoint, "patient", appointment="reyes-0900")
    )
    assert "/graph/meet/" in patient.response.url
    meeting_id = patient.response.url.split("/graph/meet/")[1].split("?")[0]
    assert app.sandbox.graph.meetings[meeting_id].organizer_oid != UNKNOWN_ORGANIZER
    clinician = Browser(app.sandbox, entra_user="reyes").go(
        fresh_launch(app, fresh_endpoint, "provider", clinician="reyes", appointment="reyes-0900")
    )
    assert not clinician.signed_in
    assert (
        visit_data(app, clinician)["join_url"].split("?")[0] == patient.response.url.split("?")[0]
    )
    patient_status_becomes(app, clinician, "joining")


def test_endpoint_disabled_during_the_microsoft_sign_in(app, endpoints, quiet_sandbox):
    """Disabled while a clinician was at Microsoft: no mapping is made and no meeting."""
    from dev.browser import entra_sign_in
    from dev.sandbox.directory import user

    admin = app.session("admin")
    mappings_url = app.api("config/endpoints/cerner-launch-test/mappings")
    lindqvist = user("lindqvist").object_id
    for m in admin.get(mappings_url, params={"entra_oid": lindqvist}).json()["items"]:
        admin.delete(f"{mappings_url}/{m['mapping']}")  # an earlier test may have mapped her
    b = Browser(app.sandbox, entra_user="lindqvist")
    url = launch_url(app, "cerner-launch-test", "provider", "cerner", clinician="lindqvist")
    to_microsoft = b._get(b.to_callback(url))
    assert to_microsoft.is_redirect and "/entra/" in to_microsoft.headers["Location"]
    done = entra_sign_in(b.s, to_microsoft.headers["Location"], "lindqvist")
    admin.post(app.api("config/endpoints/cerner-launch-test/disable"))
    try:
        meetings_before = app.sandbox.journal.entries(stand_in="graph", path="*/createOrGet")
        out = b.go(f"{done.target}?{urlencode(done.params)}")
        assert out.response.status_code == 403 and out.error_code == "LAUNCH-ENDPOINT-DISABLED"
        after = app.sandbox.journal.entries(stand_in="graph", path="*/createOrGet")
        assert len(after) == len(meetings_before)
        mappings = admin.get(mappings_url).json()
        assert lindqvist not in {m["entra_oid"] for m in mappings["items"]}
    finally:
        admin.post(app.api("config/endpoints/cerner-launch-test/enable"))


def test_a_clinician_on_the_patient_url_is_not_the_patient(app, endpoints, quiet_sandbox):
    minted = app.sandbox.cerner.mint_launch("provider", clinician="reyes", appointment="reyes-0900")
    url = (
        app.api("launch/cerner-launch-test/patient")
        + "?"
        + urlencode({"iss": minted.iss, "launch": minted.token})
    )
    out = Browser(app.sandbox).go(url)
    assert out.response.status_code == 422 and out.error_code == "LAUNCH-NO-USER"
    assert "Practitioner" in out.response.text
    assert app.sandbox.journal.entries(stand_in="graph", path="*/createOrGet") == []


def test_the_auto_post_lets_the_redirects_after_it_through(app, endpoints, quiet_sandbox):
    """form-action governs the whole redirect chain after the POST (EHR -> our callback ->
    Microsoft's sign-in or the meeting): each of those origins is allowed, nothing more."""
    page = Browser(app.sandbox)._get(
        launch_url(app, "epic-launch-test", "provider", "epic", clinician="reyes")
    )
    csp = page.headers["Content-Security-Policy"]
    actions = next(d for d in csp.split(";") if d.strip().startswith("form-action")).split()[1:]
    entra = urlsplit(app.sandbox.entra.authority)
    graph = urlsplit(app.sandbox.graph.base)
    assert "'self'" in actions
    assert f"{entra.scheme}://{entra.netloc}" in actions  # the first launch's Microsoft sign-in
    assert f"{graph.scheme}://{graph.netloc}" in actions  # the sandbox's meeting pages
    assert "https://teams.microsoft.com" in actions
    assert "*" not in actions and all(a.startswith(("'self'", "https://")) for a in actions)


# --- any conformant SMART server (vendor "smart": no vendor quirks) ----------------------------
def test_a_generic_smart_server_launches_both_journeys(app, endpoints, quiet_sandbox):
    """Plain SMART: context from `encounter` / `fhirContext`, the user from `fhirUser`."""
    base = app.sandbox.variant_base("second-base", "cerner")
    register(
        app,
        {
            "id": "smart-launch-test", "fhir_base_url": base, "vendor": "smart",
            "environment": "test", "organization": "Generic SMART Org",
            "client_id": "evc-cerner-jwt",
            "client_auth": {"method": "private_key_jwt", "alg": "ES384"},
        },
        approve=False,
    )  # fmt: skip
    records = app.session("reader").get(
        app.api("config/endpoints/smart-launch-test/integration-records")
    )
    assert records.json()["vendor"] == "smart" and records.json()["notes"]

    def url(kind: str, **who) -> str:
        minted = app.sandbox.cerner.mint_launch(kind, appointment="okafor-1000", iss=base, **who)
        query = urlencode({"iss": minted.iss, "launch": minted.token})
        return app.api(f"launch/smart-launch-test/{kind}") + "?" + query

    clinician = Browser(app.sandbox, entra_user="okafor").go(url("provider", clinician="okafor"))
    assert clinician.response.status_code == 200 and "/api/visit#" in clinician.url
    shown = visit_data(app, clinician)
    assert shown["start"] and shown["end"]  # read from the Encounter the launch named
    patient = Browser(app.sandbox).go(url("patient"))
    assert "/graph/meet/" in patient.response.url
    assert shown["join_url"].split("?")[0] == patient.response.url.split("?")[0]


def test_a_server_that_promises_rfc9207_iss_must_send_it(app, endpoints, quiet_sandbox):
    """Cerner-like declares authorization_response_iss_parameter_supported: an answer without
    `iss` (what a mix-up attacker's relay would send) is refused before the code is used."""
    got = app.session("reader").get(app.api("config/endpoints/cerner-launch-test")).json()
    assert got["validation"]["iss_parameter"] is True
    b = Browser(app.sandbox)
    back = b.to_callback(launch_url(app, "cerner-launch-test", "provider", "cerner"))
    params = dict(parse_qsl(urlsplit(back).query))
    assert params.pop("iss")
    before = len(app.sandbox.journal.entries(stand_in="cerner", path="*/token"))
    out = b.go(app.api("launch/callback") + "?" + urlencode(params))
    assert out.response.status_code == 400 and out.error_code == "LAUNCH-CALLBACK-ISS"
    assert len(app.sandbox.journal.entries(stand_in="cerner", path="*/token")) == before


# --- the first-use Microsoft sign-in is confirmed, and can be undone ---------------------------
def _forget(app, endpoint: str, person: str) -> str:
    from dev.sandbox.directory import user

    admin = app.session("admin")
    url = app.api(f"config/endpoints/{endpoint}/mappings")
    oid = user(person).object_id
    for m in admin.get(url, params={"entra_oid": oid}).json()["items"]:
        admin.delete(f"{url}/{m['mapping']}")
    return oid


def _mapped(app, endpoint: str, oid: str) -> bool:
    url = app.api(f"config/endpoints/{endpoint}/mappings")
    return bool(app.session("reader").get(url, params={"entra_oid": oid}).json()["items"])


def test_nothing_is_mapped_until_the_clinician_confirms_the_account(app, endpoints, quiet_sandbox):
    oid = _forget(app, "cerner-launch-test", "okafor")
    url = launch_url(app, "cerner-launch-test", "provider", "cerner", clinician="okafor")
    b = Browser(app.sandbox, entra_user="okafor")
    asked = b.go(url, link=None)  # stop on the question
    assert asked.response.status_code == 200 and "data-account" in asked.response.text
    assert "okafor" in asked.response.text.lower()  # the Microsoft account picked, by name
    assert not _mapped(app, "cerner-launch-test", oid)
    cancelled = b.answer_link(asked.response, "cancel")
    assert cancelled.status_code == 200 and "Nothing was linked" in cancelled.text
    assert not _mapped(app, "cerner-launch-test", oid)
    assert b.answer_link(asked.response, "confirm").status_code == 400  # used up: no replay
    assert not _mapped(app, "cerner-launch-test", oid)

    url = launch_url(app, "cerner-launch-test", "provider", "cerner", clinician="okafor")
    done = Browser(app.sandbox, entra_user="okafor").go(url)  # asked again; this time: yes
    assert done.signed_in and "/api/visit#" in done.url
    assert _mapped(app, "cerner-launch-test", oid)


def test_a_stranger_cannot_confirm_someone_elses_account(app, endpoints, quiet_sandbox):
    oid = _forget(app, "cerner-launch-test", "okafor")
    url = launch_url(app, "cerner-launch-test", "provider", "cerner", clinician="okafor")
    asked = Browser(app.sandbox, entra_user="okafor").go(url, link=None)
    stranger = Browser(app.sandbox).answer_link(asked.response, "confirm")
    assert stranger.status_code == 400 and "LAUNCH-BROWSER-MISMATCH" in stranger.text
    assert not _mapped(app, "cerner-launch-test", oid)


def test_the_clinician_can_unlink_from_the_visit_page(app, endpoints, quiet_sandbox):
    oid = _forget(app, "cerner-launch-test", "okafor")
    url = launch_url(app, "cerner-launch-test", "provider", "cerner", clinician="okafor")
    visit = Browser(app.sandbox, entra_user="okafor").go(url)
    assert _mapped(app, "cerner-launch-test", oid)
    token = urlsplit(visit.url).fragment
    done = app.session().post(app.api("visit/unlink"), headers={"X-Visit-Token": token}, timeout=10)
    assert done.status_code == 200 and done.json() == {"unlinked": True}
    assert not _mapped(app, "cerner-launch-test", oid)
    audit = app.session("reader").get(app.api("config/audit"), params={"action": "mapping.unlink"})
    assert audit.json()["items"][0]["before"]["entra_oid"] == oid
    url = launch_url(app, "cerner-launch-test", "provider", "cerner", clinician="okafor")
    again = Browser(app.sandbox, entra_user="okafor").go(url)
    assert again.signed_in  # the next launch asks for the Microsoft sign-in again
    forged = app.session().post(
        app.api("visit/unlink"), headers={"X-Visit-Token": "x.y"}, timeout=10
    )
    assert forged.status_code == 404 and forged.json()["code"] == "VISIT-LINK-INVALID"


@pytest.mark.parametrize(
    ("body", "ctype", "status", "code"),
    [
        (b"state=x&decision=confirm", "application/x-www-form-urlencoded", 400,
         "LAUNCH-STATE-MISSING"),
        (b"", "application/x-www-form-urlencoded", 400, "LAUNCH-STATE-MISSING"),
        (b'{"state": "x"}', "application/json", 415, "REQ-UNSUPPORTED-MEDIA"),
        (b"state=" + b"a" * 70_000, "application/x-www-form-urlencoded", 413, "REQ-TOO-LARGE"),
        (b"\xff\xfe=\x00", "application/x-www-form-urlencoded", 400, "REQ-BAD-JSON"),
    ],
)  # fmt: skip
def test_the_confirmation_form_refuses_what_it_cannot_use(app, body, ctype, status, code):
    resp = app.session().post(
        app.api("launch/confirm"), data=body, headers={"Content-Type": ctype}, timeout=10
    )
    assert resp.status_code == status and f">{code}<" in resp.text  # a page, never a 500
