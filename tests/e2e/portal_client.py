"""A person using the admin portal over HTTP (no browser): signing in through the sandbox's
Entra ID, reading pages and posting their forms with the page's CSRF token."""

from __future__ import annotations

import html
import re
from urllib.parse import urlencode

import requests

from dev.browser import entra_sign_in

CSRF = re.compile(r'<input type="hidden" name="csrf" value="([^"]+)">')
ERROR_CODE = re.compile(r"data-error-code>([A-Z0-9-]+)<")
ETAG = re.compile(r'<input type="hidden" name="etag" value="([^"]*)">')


class Portal:
    def __init__(self, app, user: str | None = None) -> None:
        self.app = app
        self.s = requests.Session()
        self.s.trust_env = False
        self.s.verify = app.verify
        self.s.headers["Accept"] = "text/html"
        self.csrf = ""
        if user:
            self.sign_in(user)

    def url(self, path: str = "") -> str:
        return self.app.api("portal" + (f"/{path.lstrip('/')}" if path else ""))

    def sign_in(self, user: str, next_path: str | None = None) -> requests.Response:
        query = f"?{urlencode({'next': next_path})}" if next_path else ""
        start = self.s.get(self.url("signin") + query, allow_redirects=False, timeout=30)
        assert start.status_code == 302, start.text[:300]
        done = entra_sign_in(self.s, start.headers["Location"], user)
        back = self.s.get(f"{done.target}?{urlencode(done.params)}", allow_redirects=False,
                          timeout=30)  # fmt: skip
        assert back.status_code == 303, back.text[:500]
        return back

    def get(self, path: str = "", **kw) -> requests.Response:
        resp = self.s.get(self.url(path), allow_redirects=False, timeout=30, **kw)
        found = CSRF.search(resp.text)
        if found:
            self.csrf = html.unescape(found.group(1))
        return resp

    def post(self, path: str, data: dict | None = None, *, csrf: str | None = None, **kw):
        form = {"csrf": self.csrf if csrf is None else csrf, **(data or {})}
        return self.s.post(self.url(path), data=form, allow_redirects=False, timeout=60, **kw)

    def ehr_approve(self, endpoint_id: str) -> requests.Response:
        """Press "approve" on the approvals page and sign in at the sandbox EHR (its first
        demo user); returns the app's answer to the EHR's redirect back."""
        self.get("approvals")
        started = self.post(f"approvals/{endpoint_id}/start")
        assert started.status_code == 303, started.text[:500]
        return self.app.sandbox.ehr_standalone_sign_in(started.headers["Location"])

    def close(self) -> None:
        self.s.close()


def error_code(resp: requests.Response) -> str | None:
    found = ERROR_CODE.search(resp.text)
    return found.group(1) if found else None
