"""Ties each sign-in to the browser that started it (RFC 6749 10.12, RFC 9700 4.7).

Without it, a sign-in link (the EHR's callback, or the Microsoft sign-in page of a first launch)
copied to a colleague's browser would complete there: the colleague's Microsoft account would be
mapped to the first clinician's EHR user for good. Each sign-in gets its own cookie, named after
a keyed hash of its state, so any number of launches run side by side in one browser with no
shared slot; it lives as long as the sign-in session. Over https it is `__Host-`, Secure,
`SameSite=None` and Partitioned (CHIPS), so it also works inside an EHR's iframe; on a local http
host it is a plain Lax cookie.
"""

from __future__ import annotations

import hmac
from http.cookies import CookieError, SimpleCookie

from lib.privacy import PrivacyKeys
from lib.signin.sessions import LIFETIME
from lib.web.errors import AppError
from lib.web.http import Request, Response


class BrowserBinding:
    def __init__(self, privacy: PrivacyKeys, *, secure: bool) -> None:
        self._privacy = privacy
        self._secure = secure

    def _name(self, state: str) -> str:
        base = "evc_signin_" + self._privacy.keyed_hash(state, purpose="signin-cookie-name")[:16]
        return f"__Host-{base}" if self._secure else base

    def _value(self, state: str) -> str:
        return self._privacy.keyed_hash(state, purpose="signin-cookie")

    def bind(self, response: Response, state: str) -> Response:
        attributes = f"Path=/; Max-Age={int(LIFETIME.total_seconds())}; HttpOnly; " + (
            "Secure; SameSite=None; Partitioned" if self._secure else "SameSite=Lax"
        )
        response.headers["Set-Cookie"] = f"{self._name(state)}={self._value(state)}; {attributes}"
        return response

    def check(self, request: Request, state: str) -> None:
        try:
            jar = SimpleCookie(request.headers.get("cookie", ""))
        except CookieError:
            jar = SimpleCookie()
        found = jar.get(self._name(state))
        if found is None or not hmac.compare_digest(found.value, self._value(state)):
            raise AppError("LAUNCH-BROWSER-MISMATCH")
