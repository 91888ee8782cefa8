"""The portal's session cookie, its CSRF token and its sign-out (on Azurite), with the clock in
the test's hand."""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from azure.data.tables import TableServiceClient

from lib.admin.auth import Principal
from lib.portal.session import ABSOLUTE, IDLE, PortalSessions
from lib.portal.signin import safe_next
from lib.privacy import PrivacyKeys
from lib.sealing import Sealer
from lib.storage import TableStore
from lib.web.errors import AppError
from lib.web.http import Headers, Request, Response


def new_key() -> bytes:
    return secrets.token_bytes(32)


T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
ADMIN = Principal(
    oid="1c1a00ad-0000-4000-8000-00000000ad01",
    name="Morgan Admin",
    tid="7d3c1c5e-0b1a-4c1e-9f00-00000000e7c0",
    roles=frozenset({"Connector.Admin", "Something.Else"}),
)


@pytest.fixture
def store(storage_connection_string) -> TableStore:
    service = TableServiceClient.from_connection_string(storage_connection_string)
    return TableStore(service, "p" + uuid.uuid4().hex[:10])


@pytest.fixture
def cookies(store) -> PortalSessions:
    return PortalSessions(Sealer([new_key()]), PrivacyKeys("k" * 43), store, secure=True)


def carrying(response: Response) -> Request:
    """The next request of a browser that stored the response's cookie."""
    pair = response.headers["Set-Cookie"].split(";", 1)[0]
    return Request("GET", "https://app.example/api/portal", Headers({"Cookie": pair}))


def test_the_cookie_is_host_only_secure_httponly_lax_and_ends_with_the_absolute_limit(cookies):
    issued = cookies.issue(Response(), cookies.new(ADMIN, T0))
    cookie = issued.headers["Set-Cookie"]
    assert cookie.startswith("__Host-evc_portal=")
    attributes = {a.strip() for a in cookie.split(";")[1:]}
    assert {"Path=/", "HttpOnly", "Secure", "SameSite=Lax"} <= attributes
    assert f"Max-Age={int(ABSOLUTE.total_seconds())}" in attributes
    assert "Domain" not in cookie  # __Host-: this host only


def test_the_cookie_names_nobody_in_clear_text_and_keeps_only_known_roles(cookies):
    issued = cookies.issue(Response(), cookies.new(ADMIN, T0))
    value = issued.headers["Set-Cookie"]
    assert "Morgan" not in value and ADMIN.oid not in value
    session = cookies.read(carrying(issued), T0)
    assert session is not None and session.roles == ("Connector.Admin",)
    assert session.principal.actor.oid == ADMIN.oid


def test_idle_limit_slides_with_each_request(cookies):
    session = cookies.new(ADMIN, T0)
    at = T0
    for _ in range(5):  # active for longer than IDLE in total, never idle for IDLE
        at += IDLE - timedelta(minutes=1)
        found = cookies.read(carrying(cookies.issue(Response(), session)), at)
        assert found is not None
        session = cookies.touch(found, at)
    assert cookies.read(carrying(cookies.issue(Response(), session)), at + IDLE) is None


def test_absolute_limit_holds_however_active(cookies):
    session = cookies.new(ADMIN, T0)
    almost = T0 + ABSOLUTE - timedelta(minutes=1)
    session = cookies.touch(session, almost - timedelta(minutes=1))
    request = carrying(cookies.issue(Response(), session))
    assert cookies.read(request, almost) is not None
    assert cookies.read(request, T0 + ABSOLUTE) is None


@pytest.mark.parametrize("value", ["", "garbage", "v1.abc.def"])
def test_a_forged_or_broken_cookie_is_no_session(cookies, value):
    request = Request("GET", "https://x/", Headers({"Cookie": f"__Host-evc_portal={value}"}))
    assert cookies.read(request, T0) is None


def test_a_cookie_sealed_by_another_deployment_is_no_session(cookies, store):
    other = PortalSessions(Sealer([new_key()]), PrivacyKeys("k" * 43), store, secure=True)
    request = carrying(other.issue(Response(), other.new(ADMIN, T0)))
    assert cookies.read(request, T0) is None


def test_csrf_token_belongs_to_one_session(cookies):
    one, two = cookies.new(ADMIN, T0), cookies.new(ADMIN, T0)
    cookies.check_csrf(one, cookies.csrf(one))
    # a form field is any text: non-ASCII is refused like any other wrong token (hmac's str
    # comparison raises on it, which was a 500)
    for wrong in (None, "", cookies.csrf(two), "\u00e9", cookies.csrf(one)[:-1] + "\u0663"):
        with pytest.raises(AppError) as err:
            cookies.check_csrf(one, wrong)
        assert err.value.code == "PORTAL-CSRF"


def test_clearing_expires_the_cookie_now(cookies):
    cleared = cookies.clear(Response()).headers["Set-Cookie"]
    assert cleared.startswith("__Host-evc_portal=;") and "Max-Age=0" in cleared


@pytest.mark.parametrize(
    ("asked", "goes"),
    [
        ("/api/portal/audit", "/api/portal/audit"),
        ("/api/portal", "/api/portal"),
        ("https://evil.example/api/portal", "/api/portal"),
        ("//evil.example/api/portal", "/api/portal"),
        ("/api/portal//evil.example", "/api/portal"),
        ("/api/config/endpoints", "/api/portal"),
        # dot segments: the browser resolves them, out of the portal
        ("/api/portal/../../evil", "/api/portal"),
        ("/api/portal/./../config/endpoints", "/api/portal"),
        ("/api/portal/reports/..", "/api/portal"),
        ("/api/portal/.", "/api/portal"),
        ("/api/portal/reports/.csv", "/api/portal/reports/.csv"),  # a dot in a name is a name
        (None, "/api/portal"),
    ],
)
def test_after_sign_in_only_portal_pages(asked, goes):
    assert safe_next(asked) == goes


def test_the_registered_paths_are_the_page_table():
    from functions.portal import PATHS
    from lib.portal.app import PAGES

    table: dict[str, list[str]] = {}
    for page in PAGES:
        table.setdefault(page.path, []).append(page.method)
    assert table == PATHS


def test_sign_out_ends_the_session_for_every_copy_of_its_cookie(cookies):
    session = cookies.new(ADMIN, T0)
    copied = carrying(cookies.issue(Response(), session))  # e.g. left in another browser
    later = carrying(cookies.issue(Response(), cookies.touch(session, T0 + timedelta(minutes=5))))
    signed_out = cookies.end(Response(), session)
    assert "Max-Age=0" in signed_out.headers["Set-Cookie"]
    assert cookies.read(copied, T0) is None and cookies.read(later, T0) is None
    other = cookies.new(ADMIN, T0)  # a new sign-in of the same person is a new session
    assert cookies.read(carrying(cookies.issue(Response(), other)), T0) is not None


def test_sign_outs_are_purged_once_their_session_could_not_live_anyway(cookies):
    cookies.end(Response(), cookies.new(ADMIN, T0))
    assert cookies.purge_expired(T0 + ABSOLUTE - timedelta(seconds=1)) == 0
    assert cookies.purge_expired(T0 + ABSOLUTE + timedelta(seconds=1)) == 1
    assert cookies.purge_expired(T0 + ABSOLUTE + timedelta(seconds=1)) == 0
