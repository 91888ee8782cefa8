"""The clinician's first Microsoft sign-in from inside an EHR's iframe, over real HTTP.

The frame is a browser that sends `Sec-Fetch-Dest: iframe`; the sign-in window is another
cookie jar (a top-level window does not see the frame's partitioned cookie). What the browser
suite (tests/browser) shows with clicks, this shows as the attacks it must resist: the hand-off
is single use and opens only for its own sign-in, and only the frame that started the launch
gets the visit page.
"""

from __future__ import annotations

import json
import re
from urllib.parse import urlencode

import pytest

from dev.browser import Browser, entra_sign_in
from tests.e2e.test_launch import _forget, _mapped, launch_url, register

ENDPOINT = "cerner-window-test"
SCRIPT_VALUES = re.compile(
    r"var origin = (\"[^\"]*\"), state = (\"[^\"]*\"), handoff = (\"[^\"]*\");"
)


@pytest.fixture(scope="module")
def framed_endpoint(app):
    """A Cerner endpoint whose PowerChart may frame our pages (its MPage shows the launch)."""
    return register(
        app,
        {
            "id": ENDPOINT,
            "fhir_base_url": app.sandbox.ehr_base("cerner"),
            "vendor": "cerner",
            "environment": "test",
            "organization": "Window Test Org",
            "client_id": "evc-cerner-jwt",
            "client_auth": {"method": "private_key_jwt", "alg": "ES384"},
            "launch": {"ehr_origins": [app.sandbox.origins["cerner"]]},
        },
        approve=False,
    )


def in_frame(app) -> Browser:
    frame = Browser(app.sandbox, entra_user="okafor")
    frame.s.headers["Sec-Fetch-Dest"] = "iframe"
    return frame


def frame_page(app, frame: Browser):
    """A first launch in the frame, up to the page offering the sign-in window."""
    _forget(app, ENDPOINT, "okafor")
    url = launch_url(app, ENDPOINT, "provider", "cerner", clinician="okafor")
    out = frame.go(url)
    assert out.response.status_code == 200 and 'data-testid="open-signin"' in out.response.text
    assert not out.signed_in  # never sent to Microsoft inside the frame
    origin, state, handoff = (
        json.loads(v) for v in SCRIPT_VALUES.search(out.response.text).groups()
    )
    return out.response, origin, state, handoff


def take_over(app, window: Browser, state: str, handoff: str):
    return window.s.post(
        app.api("launch/window"), data={"state": state, "handoff": handoff}, allow_redirects=False
    )


def sign_in_in_window(app, window: Browser, answer, decision: str):
    """The window, after the hand-off: Microsoft's sign-in, our callback, the confirmation."""
    assert answer.status_code == 303 and "/entra/" in answer.headers["Location"]
    done = entra_sign_in(window.s, answer.headers["Location"], "okafor")
    asked = window.go(f"{done.target}?{urlencode(done.params)}", link=None)
    assert asked.response.status_code == 200 and "data-account" in asked.response.text
    return window.answer_link(asked.response, decision)


def code_of(resp) -> str | None:
    found = re.search(r"data-error-code>([A-Z0-9-]+)<", resp.text)
    return found.group(1) if found else resp.json().get("code")


def test_a_framed_first_launch_signs_in_in_a_window_and_the_frame_goes_on(
    app, framed_endpoint, clean_sandbox
):
    frame, window = in_frame(app), Browser(app.sandbox, entra_user="okafor")
    oid = _forget(app, ENDPOINT, "okafor")
    page, origin, state, handoff = frame_page(app, frame)
    assert not _mapped(app, ENDPOINT, oid)
    assert origin == app.url  # postMessage targets exactly our origin
    csp = page.headers["Content-Security-Policy"]
    assert f"frame-ancestors {app.sandbox.origins['cerner']}" in csp and "unsafe-inline" not in csp
    assert "Partitioned" in page.headers["Set-Cookie"]  # the frame's own proof, for later
    status = app.api("launch/window/status") + f"?state={state}"
    assert frame.s.get(status).json() == {"status": None}  # not taken over yet

    opened = window.s.get(app.api("launch/window"))  # the window's first page: no secret in it
    assert opened.status_code == 200 and state not in opened.text and handoff not in opened.text
    assert "frame-ancestors 'none'" in opened.headers["Content-Security-Policy"]
    answer = take_over(app, window, state, handoff)
    assert frame.s.get(status).json() == {"status": "taken"}
    done = sign_in_in_window(app, window, answer, "confirm")
    assert done.status_code == 200 and "Signed in" in done.text and "/api/visit" not in done.text
    assert _mapped(app, ENDPOINT, oid)  # made by the confirmation, in the window
    assert frame.s.get(status).json() == {"status": "opened"}

    resume = app.api("launch/window/resume") + f"?state={state}"
    went = frame.s.get(resume, allow_redirects=False)
    assert went.status_code == 302 and "/api/visit#" in went.headers["Location"]
    again = frame.s.get(resume, allow_redirects=False)
    assert again.status_code == 400 and code_of(again) == "LAUNCH-STATE-REUSED"


def test_the_hand_off_is_single_use_and_only_for_its_own_sign_in(
    app, framed_endpoint, clean_sandbox
):
    frame, window = in_frame(app), Browser(app.sandbox, entra_user="okafor")
    _, _, state, handoff = frame_page(app, frame)
    forged = take_over(app, window, state, handoff[:-4] + "AAAA")
    assert code_of(forged) == "LAUNCH-BROWSER-MISMATCH"
    *_, other_handoff = frame_page(app, in_frame(app))
    swapped = take_over(app, window, state, other_handoff)  # another sign-in's hand-off
    assert code_of(swapped) == "LAUNCH-BROWSER-MISMATCH"
    assert take_over(app, window, state, handoff).status_code == 303
    stranger = Browser(app.sandbox, entra_user="lindqvist")
    replay = take_over(app, stranger, state, handoff)  # seen once, replayed elsewhere
    assert replay.status_code == 400 and code_of(replay) == "LAUNCH-STATE-REUSED"
    assert code_of(take_over(app, window, state, handoff)) == "LAUNCH-STATE-REUSED"


def test_only_the_frame_that_started_the_launch_gets_the_visit(app, framed_endpoint, clean_sandbox):
    frame, window = in_frame(app), Browser(app.sandbox, entra_user="okafor")
    _, _, state, handoff = frame_page(app, frame)
    sign_in_in_window(app, window, take_over(app, window, state, handoff), "confirm")
    stranger = Browser(app.sandbox, entra_user="lindqvist")
    for path in ("launch/window/status", "launch/window/resume"):
        tried = stranger.s.get(app.api(path) + f"?state={state}", allow_redirects=False)
        assert tried.status_code == 400 and code_of(tried) == "LAUNCH-BROWSER-MISMATCH"
    went = frame.s.get(app.api("launch/window/resume") + f"?state={state}", allow_redirects=False)
    assert went.status_code == 302 and "/api/visit#" in went.headers["Location"]


def test_a_cancelled_window_maps_nobody_and_tells_the_frame(app, framed_endpoint, clean_sandbox):
    frame, window = in_frame(app), Browser(app.sandbox, entra_user="okafor")
    _, _, state, handoff = frame_page(app, frame)
    oid = _forget(app, ENDPOINT, "okafor")
    done = sign_in_in_window(app, window, take_over(app, window, state, handoff), "cancel")
    assert done.status_code == 200 and "cancelled" in done.text
    assert not _mapped(app, ENDPOINT, oid)
    assert frame.s.get(app.api("launch/window/status") + f"?state={state}").json() == {
        "status": "cancelled"
    }
    resume = frame.s.get(app.api("launch/window/resume") + f"?state={state}")
    assert code_of(resume) == "LAUNCH-STATE-MISSING"


def test_top_level_the_sign_in_is_a_plain_redirect(app, framed_endpoint, clean_sandbox):
    """A top-level launch (or a popup the EHR opened) goes straight to Microsoft, as before."""
    _forget(app, ENDPOINT, "okafor")
    browser = Browser(app.sandbox, entra_user="okafor")
    browser.s.headers["Sec-Fetch-Dest"] = "document"
    url = launch_url(app, ENDPOINT, "provider", "cerner", clinician="okafor")
    to_microsoft = browser._get(browser.to_callback(url))
    assert to_microsoft.status_code == 302 and "/entra/" in to_microsoft.headers["Location"]
