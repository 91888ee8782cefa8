"""A person at a browser, without a browser: requests plus the sandbox's sign-in pages.

Shared by the end-to-end tests and the benchmarks (no pytest here).

- ``Browser(sandbox, entra_user=...)``: follows redirects and our auto-submitting form, signs in
  to the sandbox's Entra ID as ``entra_user`` when sent there, stops at the meeting page.
- ``entra_sign_in(session, authorize_url, user)``: the Entra demo-user picker.
- ``ehr_sign_in(session, authorize_url, user)``: an EHR stand-in's standalone sign-in page (stops
  at the redirect back).
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import requests

FORM_INPUT = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')
FORM_ACTION = re.compile(r'<form id="authorize" method="post" action="([^"]+)">')
LINK_FORM = re.compile(r'<form id="link-account" method="post" action="([^"]+)">')
CODE = re.compile(r"data-error-code>([A-Z0-9-]+)<")

_REQUEST_ID = re.compile(r"name='request_id' value='([^']+)'")
_HIDDEN = re.compile(r"<input type='hidden' name='([^']+)' value='([^']*)'>")
_ACTION = re.compile(r"<form method='post' action='([^']+)'>")


@dataclass(frozen=True)
class SignInResult:
    """Where Entra sent the browser and with what (code and state, or error)."""

    target: str
    params: dict[str, str]


def entra_sign_in(session: requests.Session, authorize_url: str, user: str) -> SignInResult:
    """Open the Entra sign-in page and pick ``user``, as a person would in a browser.

    Handles every response_mode: a 302 with query or fragment, or the form_post page.
    """
    page = session.get(authorize_url, allow_redirects=False)
    if page.status_code != 200:
        raise AssertionError(f"authorize answered {page.status_code}: {page.text[:300]}")
    match = _REQUEST_ID.search(page.text)
    assert match, "no sign-in form on the authorize page"
    done = session.post(
        authorize_url.split("?", 1)[0],
        data={"request_id": match.group(1), "user": user},
        allow_redirects=False,
    )
    if done.status_code == 302:
        parts = urlsplit(done.headers["Location"])
        target = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
        return SignInResult(target, dict(parse_qsl(parts.fragment or parts.query)))
    action = _ACTION.search(done.text)
    assert done.status_code == 200 and action, f"sign-in answered {done.status_code}"
    params = {html.unescape(k): html.unescape(v) for k, v in _HIDDEN.findall(done.text)}
    return SignInResult(html.unescape(action.group(1)), params)


def ehr_sign_in(session: requests.Session, authorize_url: str, user: str) -> SignInResult:
    """Open an EHR stand-in's standalone sign-in page and pick ``user``; returns the redirect."""
    page = session.get(authorize_url, allow_redirects=False)
    if page.status_code != 200:
        raise AssertionError(f"authorize answered {page.status_code}: {page.text[:300]}")
    request_id, action = _REQUEST_ID.search(page.text), _ACTION.search(page.text)
    assert request_id and action, "no sign-in form on the authorize page"
    target = urlunsplit((*urlsplit(authorize_url)[:2], html.unescape(action.group(1)), "", ""))
    done = session.post(
        target, data={"request_id": request_id.group(1), "user": user}, allow_redirects=False
    )
    assert done.status_code == 302, f"sign-in answered {done.status_code}: {done.text[:300]}"
    parts = urlsplit(done.headers["Location"])
    return SignInResult(
        urlunsplit((parts.scheme, parts.netloc, parts.path, "", "")), dict(parse_qsl(parts.query))
    )


@dataclass
class Outcome:
    response: requests.Response
    signed_in: bool  # whether the Microsoft sign-in page was on the way

    @property
    def url(self) -> str:
        return self.response.url

    @property
    def error_code(self) -> str | None:
        found = CODE.search(self.response.text)
        return found.group(1) if found else None


class Browser:
    """Follows redirects and our auto-submitting form, signs in to Entra when asked."""

    def __init__(self, sandbox: Any, entra_user: str = "reyes") -> None:
        self.s = requests.Session()
        self.s.trust_env = False
        self.s.verify = str(sandbox.ca_file)
        self.s.headers["Accept"] = "text/html"
        self.entra_user = entra_user
        self.entra_prefix = sandbox.entra.url("/")
        self.graph_prefix = sandbox.graph.url("/meet/")
        self.visited: list[str] = []

    def _get(self, url: str) -> requests.Response:
        self.visited.append(url)
        return self.s.get(url, allow_redirects=False)

    def _submit(self, page: requests.Response) -> requests.Response:
        """Our auto-submitting authorize form, submitted as the page's script would."""
        action = html.unescape(FORM_ACTION.search(page.text).group(1))
        fields = {html.unescape(k): html.unescape(v) for k, v in FORM_INPUT.findall(page.text)}
        return self.s.post(action, data=fields, allow_redirects=False)

    def to_callback(self, launch: str) -> str:
        """Run a launch up to the EHR's answer and return the callback URL, without opening it."""
        resp = self._get(launch)
        resp = self._get(resp.headers["Location"]) if resp.is_redirect else self._submit(resp)
        assert resp.is_redirect, resp.text[:300]
        return resp.headers["Location"]

    def answer_link(self, page: requests.Response, decision: str) -> requests.Response:
        """The connector's "open visits as this Microsoft account?" page, answered."""
        action = html.unescape(LINK_FORM.search(page.text).group(1))
        fields = {html.unescape(k): html.unescape(v) for k, v in FORM_INPUT.findall(page.text)}
        return self.s.post(action, data={**fields, "decision": decision}, allow_redirects=False)

    def go(self, url: str, max_steps: int = 15, link: str | None = "confirm") -> Outcome:
        """Follow a launch as a person would: `link` is the answer to the account confirmation
        (None: stop there, on that page)."""
        signed_in = False
        resp = self._get(url)
        for _ in range(max_steps):
            if resp.is_redirect:
                nxt = urljoin(resp.url, resp.headers["Location"])
                if nxt.startswith(self.entra_prefix):
                    signed_in = True
                    done = entra_sign_in(self.s, nxt, self.entra_user)
                    nxt = f"{done.target}?{urlencode(done.params)}"
                if nxt.startswith(self.graph_prefix):  # the meeting: we are where we should be
                    return Outcome(self._get(nxt), signed_in)
                resp = self._get(nxt)
            elif resp.status_code == 200 and FORM_ACTION.search(resp.text):
                resp = self._submit(resp)
            elif resp.status_code == 200 and link and LINK_FORM.search(resp.text):
                resp = self.answer_link(resp, link)
            else:
                return Outcome(resp, signed_in)
        raise AssertionError(f"too many steps, last {resp.status_code} {resp.url}")

    def close(self) -> None:
        self.s.close()
