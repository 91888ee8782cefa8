"""Sign-in sessions on Azurite: single use, expiry, and the cleanup that removes them."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from azure.data.tables import TableServiceClient

from lib.signin.sessions import SessionStore
from lib.storage import TableStore
from lib.web.errors import AppError
from lib.web.http import Headers, Request, Response


@pytest.fixture
def sessions(storage_connection_string) -> SessionStore:
    service = TableServiceClient.from_connection_string(storage_connection_string)
    return SessionStore(TableStore(service, "s" + uuid.uuid4().hex[:10]))


def code(fn) -> str:
    with pytest.raises(AppError) as exc:
        fn()
    return exc.value.code


def test_a_session_is_used_once(sessions):
    s = sessions.start("provider", redirect_uri="http://x/cb", endpoint_id="e")
    assert len(s.row_key) >= 43  # 256 bits, url-safe
    assert s.code_verifier and s.nonce and s.code_verifier != s.nonce
    assert sessions.consume(s.row_key).endpoint_id == "e"
    assert code(lambda: sessions.consume(s.row_key)) == "LAUNCH-STATE-REUSED"


def test_racing_callbacks_get_one_success(sessions):
    s = sessions.start("provider", redirect_uri="http://x/cb")
    results: list[str] = []

    def one() -> None:
        try:
            sessions.consume(s.row_key)
            results.append("ok")
        except AppError as err:
            results.append(err.code)

    threads = [threading.Thread(target=one) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count("ok") == 1 and set(results) == {"ok", "LAUNCH-STATE-REUSED"}


@pytest.mark.parametrize("state", [None, "", "short", "x" * 300, "a/b#c?d" * 5, "unknown" * 5])
def test_unknown_states(sessions, state):
    assert code(lambda: sessions.consume(state)) == "LAUNCH-STATE-MISSING"


def test_expiry_and_cleanup(sessions):
    old = sessions.start(
        "provider", redirect_uri="http://x/cb", now=datetime.now(UTC) - timedelta(hours=1)
    )
    fresh = sessions.start("provider", redirect_uri="http://x/cb")
    assert code(lambda: sessions.consume(old.row_key)) == "LAUNCH-STATE-EXPIRED"
    assert sessions.purge_expired() == 1
    assert code(lambda: sessions.consume(old.row_key)) == "LAUNCH-STATE-MISSING"
    assert sessions.consume(fresh.row_key)  # the live one is untouched


# --- sessions the browser holds (launches) ---------------------------------------------------
@pytest.fixture
def binding():
    import secrets

    from lib.privacy import PrivacyKeys
    from lib.sealing import Sealer
    from lib.signin.binding import BrowserBinding

    return BrowserBinding(PrivacyKeys("k" * 40), Sealer([secrets.token_bytes(32)]), secure=True)


def browser_with(response) -> Request:
    cookie = response.headers["Set-Cookie"].split(";")[0]
    return Request("GET", "https://app/api/launch/callback", Headers({"cookie": cookie}))


def test_a_launch_session_lives_in_its_browser_and_is_used_once(sessions, binding):
    s = sessions.start("provider", redirect_uri="http://x/cb", endpoint_id="e", in_browser=True)
    assert s.state.startswith("l.") and len(s.state) >= 45
    cookie = binding.bind(Response.redirect("https://ehr/authorize"), s).headers["Set-Cookie"]
    assert s.code_verifier not in cookie and s.nonce not in cookie  # sealed, not readable
    assert cookie.startswith("__Host-") and "HttpOnly" in cookie and "Partitioned" in cookie
    request = browser_with(binding.bind(Response.redirect("https://ehr/a"), s))
    back = binding.session(request, s.state)
    assert (back.kind, back.endpoint_id, back.code_verifier, back.nonce) == (
        "provider", "e", s.code_verifier, s.nonce,
    )  # fmt: skip
    assert sessions.use(back).consumed_at is not None
    assert code(lambda: sessions.use(binding.session(request, s.state))) == "LAUNCH-STATE-REUSED"


def test_racing_launch_callbacks_get_one_success(sessions, binding):
    s = sessions.start("patient", redirect_uri="http://x/cb", in_browser=True)
    request = browser_with(binding.bind(Response.redirect("https://ehr/a"), s))
    results: list[str] = []

    def attempt() -> None:
        try:
            sessions.use(binding.session(request, s.state))
            results.append("ok")
        except AppError as err:
            results.append(err.code)

    threads = [threading.Thread(target=attempt) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["LAUNCH-STATE-REUSED"] * 7 + ["ok"]


def test_a_launch_cookie_from_another_state_or_tampered_is_refused(sessions, binding):
    a = sessions.start("provider", redirect_uri="http://x/cb", in_browser=True)
    b = sessions.start("provider", redirect_uri="http://x/cb", in_browser=True)
    cookie_a = binding.bind(Response.redirect("https://ehr/a"), a).headers["Set-Cookie"]
    name_b = binding.bind(Response.redirect("https://ehr/a"), b).headers["Set-Cookie"].split("=")[0]
    value_a = cookie_a.split(";")[0].split("=", 1)[1]
    swapped = Request("GET", "https://app/cb", Headers({"cookie": f"{name_b}={value_a}"}))
    assert code(lambda: binding.session(swapped, b.state)) == "LAUNCH-BROWSER-MISMATCH"
    flipped = value_a[:-2] + ("A" if value_a[-2] != "A" else "B") + value_a[-1]
    name_a = cookie_a.split("=")[0]
    bad = Request("GET", "https://app/cb", Headers({"cookie": f"{name_a}={flipped}"}))
    assert code(lambda: binding.session(bad, a.state)) == "LAUNCH-BROWSER-MISMATCH"
    assert code(lambda: binding.session(Request("GET", "https://app/cb"), a.state)) == (
        "LAUNCH-BROWSER-MISMATCH"
    )


def test_a_binding_cookie_that_unquotes_to_non_ascii_is_a_mismatch_not_a_crash(sessions, binding):
    """A quoted cookie value may carry octal escapes ("\\351" is é); comparing such a str with
    hmac raised TypeError (a 500) instead of naming the mismatch."""
    for in_browser in (False, True):  # the stored sessions (the portal's) and the launch's
        s = sessions.start("portal", redirect_uri="http://x/cb", in_browser=in_browser)
        name = binding.bind(Response.redirect("https://ehr/a"), s).headers["Set-Cookie"]
        odd = Request("GET", "https://app/cb",
                      Headers({"cookie": name.split("=")[0] + '="\\351x"'}))  # fmt: skip
        check = binding.session if in_browser else binding.check
        assert code(lambda: check(odd, s.state)) == "LAUNCH-BROWSER-MISMATCH"


def test_an_old_launch_session_is_expired_and_its_marker_purged(sessions, binding):
    old = sessions.start(
        "provider", redirect_uri="http://x/cb", in_browser=True,
        now=datetime.now(UTC) - timedelta(minutes=15),
    )  # fmt: skip
    request = browser_with(binding.bind(Response.redirect("https://ehr/a"), old))
    assert code(lambda: binding.session(request, old.state)) == "LAUNCH-STATE-EXPIRED"
    used = sessions.start(
        "provider", redirect_uri="http://x/cb", in_browser=True,
        now=datetime.now(UTC) - timedelta(minutes=9),
    )  # fmt: skip
    sessions.use(used)
    assert sessions.purge_expired(now=datetime.now(UTC) + timedelta(minutes=15)) == 1


# --- the hand-off to a sign-in window (a frame's sign-in, taken over top-level) ---------------
def test_a_hand_off_opens_only_for_its_sign_in_and_expires(sessions, binding):
    a = sessions.start("entra", redirect_uri="http://x/cb")
    b = sessions.start("entra", redirect_uri="http://x/cb")
    handoff = binding.handoff(a)
    binding.check_handoff(handoff, a.state)  # opens for its own sign-in
    assert a.state not in handoff and "exp" not in handoff  # sealed, not readable
    assert code(lambda: binding.check_handoff(handoff, b.state)) == "LAUNCH-BROWSER-MISMATCH"
    for forged in ("", None, handoff[:-3] + "AAA", binding.handoff(b)):
        assert code(lambda: binding.check_handoff(forged, a.state)) == "LAUNCH-BROWSER-MISMATCH"
    later = datetime.now(UTC) + timedelta(minutes=6)
    assert code(lambda: binding.check_handoff(handoff, a.state, now=later)) == (
        "LAUNCH-STATE-EXPIRED"
    )


def test_recording_on_a_session_is_one_winner(sessions):
    """What makes the hand-off single use: two writers with one read, one wins."""
    s = sessions.start("entra", redirect_uri="http://x/cb")
    found = sessions.find(s.state)
    assert sessions.record(found, window="taken").data["window"] == "taken"
    assert code(lambda: sessions.record(found, window="taken")) == "LAUNCH-STATE-REUSED"
    used = sessions.use(sessions.find(s.state))
    assert sessions.get(used.state).data["window"] == "taken"  # still readable after use
    assert code(lambda: sessions.find(used.state)) == "LAUNCH-STATE-REUSED"
    late = datetime.now(UTC) + timedelta(minutes=25)
    assert code(lambda: sessions.get(used.state, now=late)) == "LAUNCH-STATE-EXPIRED"
