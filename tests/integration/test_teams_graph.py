"""lib/teams against the sandbox's Entra and Graph over real HTTPS: msal client credentials
(one token for many calls), createOrGet + the one-time lobby PATCH, Retry-After handling,
the GRAPH-* error codes, and the join URL allow-list."""

from __future__ import annotations

import datetime as dt
import email.utils
import subprocess
import sys
import time

import pytest

from dev.procs import ROOT, free_port
from dev.sandbox.directory import CONNECTOR_CLIENT_ID, USERS
from lib.teams import GraphClient, MeetingService, join_url_allowed
from lib.teams import graph as graph_module
from lib.web.errors import AppError

OIDS = {u.key: u.object_id for u in USERS}
TOKEN_PATH = "/entra/*/oauth2/v2.0/token"
CREATE_PATH = "/graph/v1.0/users/*/onlineMeetings/createOrGet"
START = dt.datetime(2030, 5, 1, 14, 0, tzinfo=dt.UTC)
END = START + dt.timedelta(minutes=30)


class Sleeps(list):
    """An injectable sleep that records instead of waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def teams(clean_sandbox, sandbox_trust):
    """A fresh process-wide token cache, and a factory of clients against the sandbox."""
    graph_module.forget_tokens()
    made: list[GraphClient] = []

    def make(**kw) -> GraphClient:
        sandbox = clean_sandbox
        defaults = dict(
            authority=sandbox.entra.authority,
            client_id=CONNECTOR_CLIENT_ID,
            client_secret=sandbox.entra.clients.secrets[CONNECTOR_CLIENT_ID],
            graph_base=sandbox.graph.base,
            sleep=Sleeps(),
        )
        client = GraphClient(**{**defaults, **kw})
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()
    graph_module.forget_tokens()


def unique() -> str:
    return f"visit-{time.time_ns()}"


def count(sandbox, path: str, method: str | None = None) -> int:
    return sandbox.journal.count(path=path, method=method)


# -- tokens ---------------------------------------------------------------------------------------
def test_one_token_serves_many_calls_and_clients(teams, clean_sandbox):
    graph = teams()
    meetings = MeetingService(graph)
    for _ in range(3):
        meetings.create_or_get(OIDS["reyes"], unique(), "Virtual visit", START, END)
    assert graph.get_user(OIDS["okafor"])["displayName"] == "Dr. Chidi Okafor"
    # A second client in the same process (same app registration) reuses msal's app and token.
    other = teams()
    assert other.get_user(OIDS["reyes"])["userPrincipalName"].startswith("ada.reyes@")
    assert count(clean_sandbox, TOKEN_PATH, "POST") == 1
    assert count(clean_sandbox, "/graph/v1.0/*") == 3 + 3 + 2  # createOrGet, PATCH, users
    assert graph._source() is other._source()


def test_a_refused_cached_token_is_replaced_once(teams, clean_sandbox):
    graph = teams()
    assert graph.get_user(OIDS["reyes"]) is not None
    clean_sandbox.entra.rotate_key(keep_previous=False)  # the cached token no longer validates
    assert graph.get_user(OIDS["okafor"]) is not None
    assert count(clean_sandbox, TOKEN_PATH, "POST") == 2
    statuses = [e.status for e in clean_sandbox.journal.entries(stand_in="graph")]
    assert statuses == [200, 401, 200]


def test_wrong_secret_is_graph_failed_with_the_oauth_error(teams, clean_sandbox):
    graph = teams(client_secret="not-the-secret")
    with pytest.raises(AppError) as caught:
        graph.get_user(OIDS["reyes"])
    assert (caught.value.code, caught.value.detail) == ("GRAPH-FAILED", "invalid_client")
    assert "not-the-secret" not in repr(graph)
    assert count(clean_sandbox, "/graph/*") == 0


# -- meetings --------------------------------------------------------------------------------------
def test_create_or_get_applies_lobby_settings_once(teams, clean_sandbox):
    meetings = MeetingService(teams())
    external_id = unique()
    first = meetings.create_or_get(OIDS["reyes"], external_id, "Virtual visit", START, END)
    assert first.organizer_oid == OIDS["reyes"] and first.external_id == external_id
    assert (first.start, first.end) == (START, END)
    assert meetings.join_url_allowed(first.join_url)
    stored = clean_sandbox.graph.meetings[first.id]
    assert (stored.lobby_scope, stored.allowed_presenters) == ("organization", "organizer")
    assert stored.dial_in_bypass is False and stored.subject == "Virtual visit"
    assert count(clean_sandbox, "/graph/*/onlineMeetings/*", "PATCH") == 1

    again = meetings.create_or_get(OIDS["reyes"], external_id, "Virtual visit", START, END)
    assert again == first
    assert count(clean_sandbox, CREATE_PATH) == 2
    assert count(clean_sandbox, "/graph/*/onlineMeetings/*", "PATCH") == 1  # not again

    assert meetings.get(OIDS["reyes"], first.id) == first
    assert meetings.get(OIDS["reyes"], "no-such-meeting") is None
    assert meetings.get(OIDS["okafor"], first.id) is None  # only through its organizer


def test_configured_presenters_and_two_organizers(teams, clean_sandbox):
    meetings = MeetingService(teams(), allowed_presenters="roleIsPresenter")
    external_id = unique()
    a = meetings.create_or_get(OIDS["reyes"], external_id, "Virtual visit", START, END)
    b = meetings.create_or_get(OIDS["okafor"], external_id, "Virtual visit", START, END)
    assert a.id != b.id and b.organizer_oid == OIDS["okafor"]
    assert clean_sandbox.graph.meetings[b.id].allowed_presenters == "roleIsPresenter"
    with pytest.raises(ValueError):
        MeetingService(teams(), lobby_scope="nobody")
    with pytest.raises(ValueError, match="timezone"):
        meetings.create_or_get(
            OIDS["reyes"], unique(), "Virtual visit", START.replace(tzinfo=None), END
        )


def test_unknown_organizer(teams):
    meetings = MeetingService(teams())
    with pytest.raises(AppError) as caught:
        meetings.create_or_get(
            "00000000-0000-0000-0000-000000000000", unique(), "Virtual visit", START, END
        )
    assert caught.value.code == "GRAPH-ORGANIZER-UNKNOWN" and caught.value.status == 409
    assert teams().get_user("00000000-0000-0000-0000-000000000000") is None


def test_other_graph_errors_carry_only_the_graph_code(teams, clean_sandbox):
    clean_sandbox.graph.set_access_policy(["okafor"])
    with pytest.raises(AppError) as caught:
        MeetingService(teams()).create_or_get(OIDS["reyes"], unique(), "Virtual visit", START, END)
    assert (caught.value.code, caught.value.detail) == ("GRAPH-FAILED", "Forbidden")
    assert caught.value.status == 502


def test_a_meeting_with_a_join_url_off_the_list_is_refused(teams, clean_sandbox):
    evil = {"id": "m-evil", "joinWebUrl": "https://evil.example/meet", "externalId": "x"}
    clean_sandbox.inject(CREATE_PATH, status=200, body=evil)
    with pytest.raises(AppError) as caught:
        MeetingService(teams()).create_or_get(OIDS["reyes"], unique(), "Virtual visit", START, END)
    assert caught.value.code == "LAUNCH-REDIRECT-REFUSED" and "evil.example" in caught.value.detail
    assert count(clean_sandbox, "/graph/*", "PATCH") == 0  # nothing done with that meeting


# -- throttling and transport -------------------------------------------------------------------
def test_429_with_retry_after_then_success(teams, clean_sandbox):
    graph = teams()
    clean_sandbox.inject(CREATE_PATH, status=429, retry_after=2, count=2)
    meeting = MeetingService(graph).create_or_get(
        OIDS["reyes"], unique(), "Virtual visit", START, END
    )
    assert meeting.id in clean_sandbox.graph.meetings
    assert graph._sleep == [2.0, 2.0]
    attempts = clean_sandbox.journal.entries(path=CREATE_PATH)
    assert [(e.status, e.faulted) for e in attempts] == [(429, True), (429, True), (201, False)]


def test_retry_after_as_an_http_date(teams, clean_sandbox):
    graph = teams()
    when = email.utils.formatdate(time.time() + 3, usegmt=True)
    clean_sandbox.inject("/graph/v1.0/users/*", status=503, headers={"Retry-After": when})
    assert graph.get_user(OIDS["reyes"]) is not None
    (waited,) = graph._sleep
    assert 1.0 <= waited <= 3.0


def test_still_throttled_after_three_attempts(teams, clean_sandbox):
    graph = teams()
    clean_sandbox.inject(CREATE_PATH, status=429, retry_after=1, count=None)
    with pytest.raises(AppError) as caught:
        MeetingService(graph).create_or_get(OIDS["reyes"], unique(), "Virtual visit", START, END)
    assert caught.value.code == "GRAPH-THROTTLED" and caught.value.status == 503
    assert caught.value.headers == {"Retry-After": "1"}
    assert count(clean_sandbox, CREATE_PATH) == 3 and graph._sleep == [1.0, 1.0]


def test_a_retry_after_beyond_the_budget_is_not_waited_for(teams, clean_sandbox):
    graph = teams()
    clean_sandbox.inject(CREATE_PATH, status=429, retry_after=30)
    with pytest.raises(AppError) as caught:
        MeetingService(graph).create_or_get(OIDS["reyes"], unique(), "Virtual visit", START, END)
    assert caught.value.code == "GRAPH-THROTTLED"
    assert count(clean_sandbox, CREATE_PATH) == 1 and graph._sleep == []


def test_gateway_errors_back_off_and_a_lost_answer_is_safe_to_retry(teams, clean_sandbox):
    graph = teams()
    external_id = unique()
    # 504 without Retry-After: back off 1 s; then the answer to a createOrGet that did happen is
    # lost (503 after the side effect): the retry finds the same meeting, not a second one.
    clean_sandbox.inject(CREATE_PATH, status=504)
    clean_sandbox.inject(CREATE_PATH, status=503, after=True)
    meeting = MeetingService(graph).create_or_get(
        OIDS["lindqvist"], external_id, "Virtual visit", START, END
    )
    assert graph._sleep == [1.0, 2.0]
    assert clean_sandbox.graph.meeting_for("lindqvist", external_id).id == meeting.id
    assert [e.status for e in clean_sandbox.journal.entries(path=CREATE_PATH)] == [504, 503, 200]


def test_timeouts_and_unreachable_graph(teams, clean_sandbox):
    graph = teams(read_timeout=0.3)
    clean_sandbox.inject("/graph/v1.0/users/*", status=200, delay=1.0)
    assert graph.get_user(OIDS["reyes"]) is not None  # the slow first attempt is retried
    assert graph._sleep == [1.0]

    nowhere = teams(graph_base=f"https://127.0.0.1:{free_port()}", connect_timeout=0.5)
    with pytest.raises(AppError) as caught:
        nowhere.get_user(OIDS["reyes"])
    assert (caught.value.code, caught.value.detail) == ("SRV-MICROSOFT-UNAVAILABLE", "unreachable")
    assert caught.value.status == 503 and caught.value.headers["Retry-After"]
    assert nowhere._sleep == [1.0, 2.0]


# -- join URLs ----------------------------------------------------------------------------------
def test_join_url_allow_list(clean_sandbox):
    base = clean_sandbox.graph.base
    port = clean_sandbox.port
    teams_url = (
        "https://teams.microsoft.com/l/meetup-join/19%3ameeting_abc%40thread.v2/0?context=%7b%7d"
    )
    allowed = [
        (f"{base}/meet/MSoxYz?context=%7B%7D", base),
        (teams_url, base),
        (teams_url, "https://graph.microsoft.com"),
        ("https://teams.microsoft.com/meet/2591?p=abc", "https://graph.microsoft.com"),
    ]
    refused = [
        (f"{base}/meet/x", "https://graph.microsoft.com"),  # sandbox link, production settings
        (f"https://127.0.0.1:{port}/entra/x", base),  # the sandbox host, not a meeting page
        (f"http://127.0.0.1:{port}/graph/meet/x", base),
        ("https://evil.example/l/meetup-join/x", base),
        ("https://teams.microsoft.com.evil.example/x", base),
        ("https://evil.teams.microsoft.com/x", base),
        ("https://teams.microsoft.com@evil.example/x", base),
        ("https://user@teams.microsoft.com/x", base),
        ("https://teams.microsoft.com:8443/x", base),
        ("https://teams.microsoft.com\\@evil.example/", base),
        ("https://teams.microsoft.com/x\ny", base),
        ("javascript:alert(1)", base),
        ("//teams.microsoft.com/x", base),
        ("", base),
    ]
    for url, graph_base in allowed:
        assert join_url_allowed(url, graph_base), url
    for url, graph_base in refused:
        assert not join_url_allowed(url, graph_base), url
    gov = "https://gov.teams.microsoft.us/l/meetup-join/x"
    assert not join_url_allowed(gov, "https://graph.microsoft.us")
    assert join_url_allowed(gov, "https://graph.microsoft.us", ["gov.teams.microsoft.us"])


def test_importing_lib_teams_loads_neither_msal_nor_requests():
    code = (
        "import sys, lib.teams; print(sorted(m for m in ('msal', 'requests') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


def test_the_clinicians_sign_in_asks_for_no_refresh_token(clean_sandbox, sandbox_trust):
    """The one msal builder excludes offline_access: we only need who signed in."""
    from urllib.parse import parse_qs, urlsplit

    from lib.teams.entra import confidential_client

    app = confidential_client(
        clean_sandbox.entra.authority,
        CONNECTOR_CLIENT_ID,
        clean_sandbox.entra.clients.secrets[CONNECTOR_CLIENT_ID],
    )
    flow = app.initiate_auth_code_flow(["User.Read"], redirect_uri="https://app.example/cb")
    scopes = parse_qs(urlsplit(flow["auth_uri"]).query)["scope"][0].split()
    assert "User.Read" in scopes and "openid" in scopes
    assert "offline_access" not in scopes
