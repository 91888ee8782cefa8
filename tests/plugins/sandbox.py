"""Sandbox fixtures: one HTTPS sandbox per test session, reset around tests that need it.

- ``sandbox``: session-scoped, on a free port (bound with port 0), state in a temp dir.
- ``clean_sandbox``: the same sandbox with journal, faults, latency and stand-in tweaks reset
  before and after the test.
- ``sandbox_trust``: sets REQUESTS_CA_BUNDLE to the sandbox CA for the test, so SDKs that read
  the environment (msal, requests) trust it unchanged.
- ``sandbox_http``: a requests.Session that trusts the sandbox CA and ignores proxy/CA env.
- ``entra_sign_in(session, authorize_url, user)``: the demo-user picker without a browser.
- ``ehr_sign_in(session, authorize_url, user)``: the same for an EHR's standalone sign-in page
  (``user`` is a demo clinician or patient key, e.g. ``reyes`` or ``rivera``).
- ``jwks_server``: a plain-http JWKS on 127.0.0.1 (like our app's ``/api/.well-known/jwks.json``)
  whose keys a test sets, for private_key_jwt against the EHR stand-ins.
"""

from __future__ import annotations

import html
import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import pytest
import requests

from dev.sandbox import Sandbox, start_sandbox


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    instance = start_sandbox(port=0, state_dir=tmp_path_factory.mktemp("sandbox-state"))
    yield instance
    instance.stop()


@pytest.fixture
def clean_sandbox(sandbox: Sandbox) -> Iterator[Sandbox]:
    sandbox.reset()
    yield sandbox
    sandbox.reset()


@pytest.fixture
def sandbox_trust(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(sandbox.ca_file))
    # requests falls back to CURL_CA_BUNDLE; make sure nothing else is picked.
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    return sandbox.ca_file


@pytest.fixture
def sandbox_http(sandbox: Sandbox) -> Iterator[requests.Session]:
    session = requests.Session()
    # Without this, REQUESTS_CA_BUNDLE from the environment silently overrides session.verify.
    session.trust_env = False
    session.verify = str(sandbox.ca_file)
    yield session
    session.close()


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
class JwksServer:
    """What ``jwks_server`` serves: set ``jwks`` (a dict with ``keys``); ``hits`` counts GETs."""

    url: str = ""
    jwks: dict[str, Any] = field(default_factory=lambda: {"keys": []})
    hits: int = 0


@pytest.fixture
def jwks_server() -> Iterator[JwksServer]:
    served = JwksServer()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            served.hits += 1
            body = json.dumps(served.jwks).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Cache-Control", "public, max-age=300")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    served.url = f"http://127.0.0.1:{server.server_address[1]}/api/.well-known/jwks.json"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1})
    thread.daemon = True
    thread.start()
    yield served
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)
