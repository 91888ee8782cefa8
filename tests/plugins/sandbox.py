"""Sandbox fixtures: one HTTPS sandbox per test session, reset around tests that need it.

- ``sandbox``: session-scoped, on a free port (bound with port 0), state in a temp dir.
- ``clean_sandbox``: the same sandbox with journal, faults, latency and stand-in tweaks reset
  before and after the test.
- ``sandbox_trust``: sets REQUESTS_CA_BUNDLE to the sandbox CA for the test, so SDKs that read
  the environment (msal, requests) trust it unchanged.
- ``sandbox_http``: a requests.Session that trusts the sandbox CA and ignores proxy/CA env.
- ``entra_sign_in(session, authorize_url, user)``: the demo-user picker without a browser
  (from dev/browser.py, with ``ehr_sign_in`` and the launch ``Browser``).
- ``ehr_sign_in(session, authorize_url, user)``: the same for an EHR's standalone sign-in page
  (``user`` is a demo clinician or patient key, e.g. ``reyes`` or ``rivera``).
- ``jwks_server``: a plain-http JWKS on 127.0.0.1 (like our app's ``/api/.well-known/jwks.json``)
  whose keys a test sets, for private_key_jwt against the EHR stand-ins.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from dev.browser import SignInResult, ehr_sign_in, entra_sign_in
from dev.sandbox import Sandbox, start_sandbox

__all__ = ["SignInResult", "ehr_sign_in", "entra_sign_in"]  # they live in dev/browser.py


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
