"""The Microsoft Graph stand-in over HTTPS, driven with plain requests: bearer tokens and
permissions, onlineMeetings createOrGet (idempotency, concurrency), PATCH / GET / DELETE, users,
the meeting page (lobby, admit, leave), the roster JSON and the listener hook."""

from __future__ import annotations

import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote, urlsplit

import msal
import pytest
import requests

from dev.sandbox.directory import CONNECTOR_API_AUDIENCE, CONNECTOR_CLIENT_ID, GRAPH_AUDIENCE, USERS
from dev.sandbox.graph import RosterChange
from dev.sandbox.graph.meetings import RosterError

OIDS = {u.key: u.object_id for u in USERS}
UPNS = {u.key: u.upn for u in USERS}
CONNECTOR_GRAPH_ROLES = ["OnlineMeetings.ReadWrite.All", "User.Read.All"]


# -- helpers ------------------------------------------------------------------------------------
class Graph:
    """A tiny Graph caller over the sandbox's TLS (what our adapter does, minus the retries)."""

    def __init__(self, sandbox, http: requests.Session, token: str | None) -> None:
        self.sandbox = sandbox
        self.http = http
        self.token = token

    def call(self, method: str, path: str, token: str | None = "default", **kw):
        token = self.token if token == "default" else token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return self.http.request(
            method, f"{self.sandbox.graph.base}/v1.0{path}", headers=headers, timeout=10, **kw
        )

    def create(self, organizer: str, external_id: str, **body):
        body = {"externalId": external_id, "subject": "Virtual visit", **body}
        return self.call("POST", f"/users/{OIDS[organizer]}/onlineMeetings/createOrGet", json=body)

    def meeting_path(self, organizer: str, meeting_id: str) -> str:
        return f"/users/{OIDS[organizer]}/onlineMeetings/{quote(meeting_id, safe='')}"


def app_token(sandbox, roles=CONNECTOR_GRAPH_ROLES, **kw) -> str:
    return sandbox.entra.mint(roles=roles, audience=GRAPH_AUDIENCE, **kw)


def unique(prefix: str = "visit") -> str:
    return f"{prefix}-{time.time_ns()}"


def graph_error(response: requests.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code and error["message"]
    assert response.headers["request-id"] and error["innerError"]["request-id"]
    return error


@pytest.fixture
def graph(clean_sandbox, sandbox_http) -> Graph:
    return Graph(clean_sandbox, sandbox_http, app_token(clean_sandbox))


# -- tokens and permissions ---------------------------------------------------------------------
def test_every_call_needs_a_graph_token_for_this_tenant(graph, sandbox):
    path = f"/users/{OIDS['reyes']}/onlineMeetings/createOrGet"
    body = {"json": {"externalId": unique()}}
    no_token = graph.call("POST", path, token=None, **body)
    assert graph_error(no_token, 401, "InvalidAuthenticationToken")["message"] == (
        "Access token is empty."
    )
    assert no_token.headers["WWW-Authenticate"].startswith("Bearer")
    graph_error(
        graph.call("POST", path, token="not.a.jwt", **body), 401, "InvalidAuthenticationToken"
    )
    other_api = sandbox.entra.mint(roles=["Connector.Admin"], audience=CONNECTOR_API_AUDIENCE)
    wrong_aud = graph_error(
        graph.call("POST", path, token=other_api, **body), 401, "InvalidAuthenticationToken"
    )
    assert "audience" in wrong_aud["message"]
    expired = app_token(sandbox, expires_in=-120)
    assert (
        "expired"
        in graph_error(
            graph.call("GET", f"/users/{OIDS['reyes']}", token=expired),
            401,
            "InvalidAuthenticationToken",
        )["message"]
    )
    assert not sandbox.graph.meetings or all(
        m.external_id != body["json"]["externalId"] for m in sandbox.graph.meetings.values()
    )


def test_each_call_needs_its_application_permission(graph, sandbox):
    users_only = app_token(sandbox, roles=["User.Read.All"])
    denied = graph.call(
        "POST",
        f"/users/{OIDS['reyes']}/onlineMeetings/createOrGet",
        token=users_only,
        json={"externalId": unique()},
    )
    graph_error(denied, 403, "Forbidden")
    meetings_only = app_token(sandbox, roles=["OnlineMeetings.ReadWrite.All"])
    graph_error(
        graph.call("GET", f"/users/{OIDS['reyes']}", token=meetings_only),
        403,
        "Authorization_RequestDenied",
    )
    no_roles = app_token(sandbox, roles=[])
    graph_error(
        graph.call("GET", f"/users/{OIDS['reyes']}", token=no_roles),
        403,
        "Authorization_RequestDenied",
    )


def test_msal_client_credentials_token_is_accepted(graph, sandbox, sandbox_trust):
    app = msal.ConfidentialClientApplication(
        CONNECTOR_CLIENT_ID,
        client_credential=sandbox.entra.clients.secrets[CONNECTOR_CLIENT_ID],
        authority=sandbox.entra.authority,
        instance_discovery=False,
    )
    result = app.acquire_token_for_client(scopes=[f"{GRAPH_AUDIENCE}/.default"])
    assert "access_token" in result, result
    graph.token = result["access_token"]
    assert graph.create("reyes", unique()).status_code == 201
    assert graph.call("GET", f"/users/{OIDS['okafor']}").json()["displayName"] == "Dr. Chidi Okafor"


def test_application_access_policy_limits_app_only_organizers(graph, sandbox):
    sandbox.graph.set_access_policy(["reyes"])
    assert graph.create("reyes", unique()).status_code == 201
    refused = graph_error(graph.create("okafor", unique()), 403, "Forbidden")
    assert "application access policy" in refused["message"]


def test_delegated_token_acts_only_for_the_signed_in_user(graph, sandbox):
    token = sandbox.entra.mint(
        user="reyes", audience=GRAPH_AUDIENCE, scp="OnlineMeetings.ReadWrite User.Read"
    )
    mine = graph.call(
        "POST", "/me/onlineMeetings/createOrGet", token=token, json={"externalId": unique()}
    )
    assert mine.status_code == 201
    assert mine.json()["participants"]["organizer"]["identity"]["user"]["id"] == OIDS["reyes"]
    other = graph.call(
        "POST",
        f"/users/{OIDS['okafor']}/onlineMeetings/createOrGet",
        token=token,
        json={"externalId": unique()},
    )
    graph_error(other, 403, "Forbidden")
    me = graph.call("GET", "/me", token=token).json()
    assert me["id"] == OIDS["reyes"] and me["userPrincipalName"] == UPNS["reyes"]
    graph_error(graph.call("GET", "/me"), 400, "BadRequest")  # /me with an app-only token
    # Entra's discovery names this stand-in's userinfo endpoint.
    info = graph.http.get(
        f"{sandbox.graph.base}/oidc/userinfo", headers={"Authorization": f"Bearer {token}"}
    ).json()
    assert (info["name"], info["email"]) == ("Dr. Ada Reyes", UPNS["reyes"]) and info["sub"]


# -- createOrGet -----------------------------------------------------------------------------------
def test_create_or_get_returns_the_same_meeting_for_the_same_external_id(graph, sandbox):
    external_id = unique()
    first = graph.create(
        "reyes",
        external_id,
        startDateTime="2030-05-01T14:00:00Z",
        endDateTime="2030-05-01T14:30:00-00:00",
    )
    assert first.status_code == 201, first.text
    meeting = first.json()
    assert meeting["externalId"] == external_id and meeting["subject"] == "Virtual visit"
    assert meeting["startDateTime"] == "2030-05-01T14:00:00.0000000Z"
    assert meeting["endDateTime"] == "2030-05-01T14:30:00.0000000Z"
    assert meeting["participants"]["organizer"]["identity"]["user"]["id"] == OIDS["reyes"]
    assert meeting["participants"]["organizer"]["upn"] == UPNS["reyes"]
    assert meeting["joinWebUrl"].startswith(f"{sandbox.graph.base}/meet/{meeting['id']}?")
    settings = meeting["joinMeetingIdSettings"]
    assert re.fullmatch(r"\d{12}", settings["joinMeetingId"]) and settings["passcode"]
    # A tenant's default policy: org people bypass the lobby, everyone presents.
    assert meeting["lobbyBypassSettings"] == {
        "scope": "organizationExcludingGuests",
        "isDialInBypassEnabled": False,
    }
    assert meeting["allowedPresenters"] == "everyone" and meeting["isEntryExitAnnounced"] is True
    assert meeting["chatInfo"]["threadId"].startswith("19:meeting_")

    again = graph.create("reyes", external_id, subject="Something else")
    assert again.status_code == 200
    assert (
        again.json()["id"] == meeting["id"] and again.json()["joinWebUrl"] == meeting["joinWebUrl"]
    )
    assert again.json()["subject"] == "Virtual visit"  # the existing meeting, unchanged
    assert sandbox.graph.meeting_for("reyes", external_id).id == meeting["id"]


def test_same_external_id_under_two_organizers_is_two_meetings(graph):
    external_id = unique()
    a = graph.create("reyes", external_id)
    b = graph.create("okafor", external_id)
    assert (a.status_code, b.status_code) == (201, 201)
    assert a.json()["id"] != b.json()["id"]
    assert graph.create("reyes", unique()).json()["id"] != a.json()["id"]


def test_thirty_concurrent_create_or_get_make_one_meeting(graph, sandbox):
    external_id = unique("race")
    gate = threading.Barrier(30)

    def call(_: int) -> tuple[int, str]:
        with requests.Session() as s:  # one connection per caller, like 30 app instances
            s.trust_env = False
            s.verify = str(sandbox.ca_file)
            gate.wait(timeout=10)
            r = Graph(sandbox, s, graph.token).create("lindqvist", external_id)
            return r.status_code, r.json()["id"]

    with ThreadPoolExecutor(30) as pool:
        results = list(pool.map(call, range(30)))
    statuses = sorted(status for status, _ in results)
    assert statuses == [200] * 29 + [201]
    assert len({meeting_id for _, meeting_id in results}) == 1
    assert sum(1 for m in sandbox.graph.meetings.values() if m.external_id == external_id) == 1


def test_create_or_get_body_is_checked(graph):
    path = f"/users/{OIDS['reyes']}/onlineMeetings/createOrGet"
    graph_error(graph.call("POST", path, json={"subject": "x"}), 400, "BadRequest")
    graph_error(graph.call("POST", path, data="{not json"), 400, "BadRequest")
    settings_in_body = graph.call(
        "POST",
        path,
        json={"externalId": unique(), "lobbyBypassSettings": {"scope": "organization"}},
    )
    assert "PATCH" in graph_error(settings_in_body, 400, "BadRequest")["message"]
    graph_error(
        graph.call("POST", path, json={"externalId": unique(), "startDateTime": "tomorrow"}),
        400,
        "BadRequest",
    )
    graph_error(
        graph.call(
            "POST", "/users/nobody@example.org/onlineMeetings/createOrGet", json={"externalId": "x"}
        ),
        404,
        "Request_ResourceNotFound",
    )
    graph_error(graph.call("GET", "/nothingHere"), 400, "BadRequest")


def test_injected_throttling_answers_429_with_retry_after(graph, sandbox):
    sandbox.inject("/graph/v1.0/users/*/onlineMeetings/createOrGet", status=429, retry_after=3)
    throttled = graph.create("reyes", unique())
    assert throttled.status_code == 429 and throttled.headers["Retry-After"] == "3"
    assert "error" in throttled.json()
    assert graph.create("reyes", unique()).status_code == 201
    entries = sandbox.journal.entries(stand_in="graph", path="*/createOrGet")
    assert [e.faulted for e in entries] == [True, False]


# -- PATCH, GET, DELETE, $filter ----------------------------------------------------------------
def test_patch_changes_lobby_and_presenters_and_get_reads_them(graph, sandbox):
    meeting = graph.create("reyes", unique()).json()
    path = graph.meeting_path("reyes", meeting["id"])
    patched = graph.call(
        "PATCH",
        path,
        json={
            "lobbyBypassSettings": {"scope": "organization", "isDialInBypassEnabled": False},
            "allowedPresenters": "organizer",
            "isEntryExitAnnounced": False,
        },
    )
    assert patched.status_code == 200, patched.text
    for body in (patched.json(), graph.call("GET", path).json()):
        assert body["lobbyBypassSettings"]["scope"] == "organization"
        assert body["allowedPresenters"] == "organizer" and body["isEntryExitAnnounced"] is False
        assert body["id"] == meeting["id"] and body["joinWebUrl"] == meeting["joinWebUrl"]
    assert sandbox.graph.meetings[meeting["id"]].lobby_scope == "organization"

    # Invalid values change nothing (validated before applying).
    bad = graph.call(
        "PATCH", path, json={"allowedPresenters": "everyone", "lobbyBypassSettings": {"scope": "x"}}
    )
    graph_error(bad, 400, "BadRequest")
    graph_error(graph.call("PATCH", path, json={"externalId": "new"}), 400, "BadRequest")
    assert graph.call("GET", path).json()["allowedPresenters"] == "organizer"
    # A meeting is only reachable through its organizer.
    graph_error(graph.call("GET", graph.meeting_path("okafor", meeting["id"])), 404, "NotFound")
    graph_error(graph.call("PATCH", graph.meeting_path("reyes", "nope"), json={}), 404, "NotFound")


def test_filter_by_join_url_and_delete(graph):
    meeting = graph.create("okafor", unique()).json()
    join = meeting["joinWebUrl"].replace("'", "''")
    listed = graph.call(
        "GET",
        f"/users/{OIDS['okafor']}/onlineMeetings",
        params={"$filter": f"JoinWebUrl eq '{join}'"},
    )
    assert [m["id"] for m in listed.json()["value"]] == [meeting["id"]]
    path = graph.meeting_path("okafor", meeting["id"])
    deleted = graph.call("DELETE", path)
    assert deleted.status_code == 204
    graph_error(graph.call("GET", path), 404, "NotFound")
    # The external id is free again: createOrGet makes a new meeting.
    assert graph.create("okafor", meeting["externalId"]).status_code == 201


# -- users -----------------------------------------------------------------------------------------
def test_users_by_object_id_or_upn_with_select(graph):
    full = graph.call("GET", f"/users/{OIDS['reyes']}")
    assert full.status_code == 200
    user = full.json()
    assert (user["id"], user["displayName"], user["userPrincipalName"]) == (
        OIDS["reyes"],
        "Dr. Ada Reyes",
        UPNS["reyes"],
    )
    by_upn = graph.call("GET", f"/users/{UPNS['okafor']}").json()
    assert by_upn["id"] == OIDS["okafor"]
    selected = graph.call(
        "GET", f"/users/{OIDS['reyes']}", params={"$select": "displayName,id"}
    ).json()
    assert set(selected) == {"@odata.context", "displayName", "id"}
    graph_error(
        graph.call("GET", f"/users/{OIDS['reyes']}", params={"$select": "password"}),
        400,
        "BadRequest",
    )
    graph_error(
        graph.call("GET", "/users/00000000-0000-0000-0000-000000000000"),
        404,
        "Request_ResourceNotFound",
    )
    graph_error(graph.call("GET", "/users/reyes"), 404, "Request_ResourceNotFound")  # no demo keys
    everyone = graph.call("GET", "/users", params={"$select": "id"}).json()["value"]
    assert {u["id"] for u in everyone} == set(OIDS.values())


# -- the meeting page -----------------------------------------------------------------------------
def open_page(http: requests.Session, url: str) -> tuple[str, str]:
    """Follow the join redirect; (participant page URL, its HTML)."""
    joined = http.get(url, allow_redirects=False)
    assert joined.status_code == 303, joined.text[:300]
    page = http.get(joined.headers["Location"])
    assert page.status_code == 200
    return joined.headers["Location"], page.text


def state_of(html: str) -> str:
    match = re.search(r"data-testid='state' data-state='([a-z-]+)'", html)
    assert match
    return match.group(1)


def test_guest_waits_in_lobby_organizer_admits_guest_leaves(graph, sandbox, sandbox_http):
    meeting = graph.create("reyes", unique()).json()
    graph.call(
        "PATCH",
        graph.meeting_path("reyes", meeting["id"]),
        json={"lobbyBypassSettings": {"scope": "organization"}, "allowedPresenters": "organizer"},
    )
    changes: list[RosterChange] = []
    sandbox.graph.add_listener(changes.append)
    try:
        guest_url, guest_html = open_page(
            sandbox_http, meeting["joinWebUrl"] + "&role=guest&name=Pat%20Rivera"
        )
        assert state_of(guest_html) == "lobby"
        assert "should let you in soon" in guest_html
        roster = sandbox_http.get(f"{sandbox.graph.base}/_meetings/{meeting['id']}").json()
        (guest,) = roster["participants"]
        assert (guest["name"], guest["role"], guest["state"]) == ("Pat Rivera", "guest", "lobby")
        assert guest["joinedAt"].endswith("Z") and guest["admittedAt"] is None
        assert roster["startedAt"] is None

        org_url, org_html = open_page(
            sandbox_http, meeting["joinWebUrl"] + "&role=organizer&name=Dr.%20Reyes"
        )
        assert state_of(org_html) == "in-meeting"
        assert f"data-testid='admit-{guest['id']}'" in org_html
        admitted = sandbox_http.post(
            f"{org_url}/admit", data={"participant": guest["id"]}, allow_redirects=False
        )
        assert admitted.status_code == 303 and admitted.headers["Location"] == org_url
        assert state_of(sandbox_http.get(guest_url).text) == "in-meeting"
        assert "lobby-empty" in sandbox_http.get(org_url).text

        # A guest cannot admit anyone; leaving is final for that participant (rejoin = new one).
        org_id = sandbox.graph.roster(meeting["id"])["participants"][1]["id"]
        refused = sandbox_http.post(f"{guest_url}/admit", data={"participant": org_id})
        assert refused.status_code == 403
        left = sandbox_http.post(f"{guest_url}/leave", allow_redirects=False)
        assert left.status_code == 303
        guest_page = sandbox_http.get(guest_url).text
        assert state_of(guest_page) == "left" and "data-testid='rejoin'" in guest_page

        roster = sandbox.graph.roster(meeting["id"])
        by_role = {p["role"]: p for p in roster["participants"]}
        g, o = by_role["guest"], by_role["organizer"]
        assert g["state"] == "left" and g["admittedBy"] == o["id"]
        assert g["joinedAt"] <= g["admittedAt"] <= g["leftAt"]
        assert o["state"] == "in-meeting" and o["userId"] == OIDS["reyes"]
        assert roster["startedAt"] and roster["endedAt"] is None
    finally:
        sandbox.graph.remove_listener(changes.append)
    assert [(c.participant.role, c.kind) for c in changes] == [
        ("guest", "joined-lobby"),
        ("organizer", "joined"),
        ("guest", "admitted"),
        ("guest", "left"),
    ]
    assert [c.version for c in changes] == [1, 2, 3, 4]
    assert all(c.meeting_id == meeting["id"] for c in changes)


def test_lobby_rules_follow_the_bypass_scope(graph, sandbox):
    meeting = graph.create("okafor", unique()).json()
    path = graph.meeting_path("okafor", meeting["id"])
    g = sandbox.graph

    def scope(value: str) -> None:
        graph.call("PATCH", path, json={"lobbyBypassSettings": {"scope": value}})

    scope("organization")
    assert g.join(meeting["id"], "member", "Nurse", user="lindqvist").state == "in-meeting"
    assert g.join(meeting["id"], "guest", "Patient").state == "lobby"
    scope("organizer")
    assert g.join(meeting["id"], "member", "Colleague").state == "lobby"
    assert g.join(meeting["id"], "organizer", "Dr. Okafor").state == "in-meeting"
    scope("everyone")
    assert g.join(meeting["id"], "patient", "Second patient").state == "in-meeting"
    with pytest.raises(RosterError, match="role must be"):
        g.join(meeting["id"], "boss", "x")


def test_admitting_needs_an_organizer_or_presenter_in_the_meeting(graph, sandbox):
    meeting = graph.create("reyes", unique()).json()
    graph.call(
        "PATCH",
        graph.meeting_path("reyes", meeting["id"]),
        json={"lobbyBypassSettings": {"scope": "organization"}, "allowedPresenters": "organizer"},
    )
    g = sandbox.graph
    guest = g.join(meeting["id"], "guest", "Pat")
    member = g.join(meeting["id"], "member", "Nurse")
    with pytest.raises(RosterError, match="organizers and presenters"):
        g.admit(meeting["id"], guest.id, by=member.id)
    assert g.admit(meeting["id"], guest.id).state == "in-meeting"  # the Python API acts as host
    with pytest.raises(RosterError, match="not waiting"):
        g.admit(meeting["id"], guest.id)
    assert g.leave(meeting["id"], member.id).state == "left"
    assert g.leave(meeting["id"], member.id).state == "left"  # twice: no new change
    assert g.roster(meeting["id"])["version"] == 4


def test_join_form_and_page_carry_no_external_resources(graph, sandbox, sandbox_http):
    meeting = graph.create("reyes", unique()).json()
    form = sandbox_http.get(meeting["joinWebUrl"])
    assert form.status_code == 200 and "data-testid='join'" in form.text
    assert "name='context'" in form.text  # the join URL's context survives the form
    assert form.headers["Cache-Control"] == "no-store"
    assert "default-src 'none'" in form.headers["Content-Security-Policy"]
    _, page = open_page(sandbox_http, meeting["joinWebUrl"] + "&role=guest&name=<b>Pat</b>")
    assert "<b>Pat</b>" not in page and "&lt;b&gt;Pat&lt;/b&gt;" in page
    for html in (form.text, page):
        assert not re.search(r"(src|href)=['\"]?(https?:)?//", html)
    assert "/_sandbox/graph/meetings/" in page  # polls the roster through a control route
    missing = sandbox_http.get(f"{sandbox.graph.base}/meet/nope")
    assert missing.status_code == 404


def test_roster_json_and_controls(graph, sandbox, sandbox_http):
    meeting = graph.create("reyes", unique()).json()
    controls = f"{sandbox.url}/_sandbox/graph/meetings/{meeting['id']}"
    before = len(sandbox.journal)
    joined = sandbox_http.post(f"{controls}/join", json={"role": "guest", "name": "Pat"}).json()
    assert joined["state"] == "lobby"
    admitted = sandbox_http.post(f"{controls}/admit", json={"participant": joined["id"]})
    assert admitted.json()["state"] == "in-meeting"
    assert sandbox_http.post(f"{controls}/leave", json={"participant": joined["id"]}).ok
    assert len(sandbox.journal) == before  # controls are never journaled
    roster = sandbox_http.get(controls).json()
    assert roster["participants"][0]["state"] == "left" and roster["version"] == 3
    assert sandbox_http.get(f"{sandbox.graph.base}/_meetings/{meeting['id']}").json() == roster
    listed = sandbox_http.get(f"{sandbox.graph.base}/_meetings").json()["meetings"]
    assert meeting["id"] in {m["id"] for m in listed}
    assert sandbox_http.get(f"{sandbox.graph.base}/_meetings/nope").status_code == 404
    assert sandbox_http.post(f"{controls}/admit", json={"participant": "nope"}).status_code == 404


def test_settings_control_and_reset(graph, sandbox, sandbox_http):
    url = f"{sandbox.url}/_sandbox/graph/settings"
    changed = sandbox_http.post(url, json={"default_lobby_scope": "everyone"}).json()
    assert changed["default_lobby_scope"] == "everyone"
    assert graph.create("reyes", unique()).json()["lobbyBypassSettings"]["scope"] == "everyone"
    assert sandbox_http.post(url, json={"default_lobby_scope": "nobody"}).status_code == 400
    sandbox.reset()
    assert sandbox.graph.default_lobby_scope == "organizationExcludingGuests"


def test_describe_lines_for_the_cli(sandbox):
    lines = sandbox.graph.describe()
    assert lines["GRAPH_BASE_URL"] == f"{sandbox.origins['graph']}/graph"
    assert "/meet/" in lines["meeting page"] and "createOrGet" in lines["createOrGet"]
    assert urlsplit(lines["meeting rosters (JSON)"]).path == "/graph/_meetings"
