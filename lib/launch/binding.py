"""Ties each sign-in to the browser that started it (RFC 6749 10.12, RFC 9700 4.7).

Without it, a sign-in link (the EHR's callback, or the Microsoft sign-in page of a first launch)
copied to a colleague's browser would complete there: the colleague's Microsoft account would be
mapped to the first clinician's EHR user for good. Each launch gets its own cookie, named after
a keyed hash of its state, so any number of launches run side by side in one browser with no
shared slot; it lives as long as the launch session. Over https it is `__Host-`, Secure,
`SameSite=None` and Partitioned (CHIPS), so it also works inside an EHR's iframe; on a local http
host it is a plain Lax cookie.
"""

from __future__ import annotations

import hmac
from http.cookies import CookieError, SimpleCookie

from lib.privacy import keyed_hash
from lib.sessions import LIFETIME
from lib.settings import Settings
from lib.web.errors import AppError
from lib.web.http import Request, Response


def _name(state: str, secure: bool) -> str:
    base = "evc_signin_" + keyed_hash(state, purpose="signin-cookie-name")[:16]
    return f"__Host-{base}" if secure else base


def _value(state: str) -> str:
    return keyed_hash(state, purpose="signin-cookie")


def _secure(settings: Settings) -> bool:
    return settings.public_url.startswith("https://")


def bind(response: Response, state: str, settings: Settings) -> Response:
    secure = _secure(settings)
    attributes = f"Path=/; Max-Age={int(LIFETIME.total_seconds())}; HttpOnly; " + (
        "Secure; SameSite=None; Partitioned" if secure else "SameSite=Lax"
    )
    response.headers["Set-Cookie"] = f"{_name(state, secure)}={_value(state)}; {attributes}"
    return response


def check(request: Request, state: str, settings: Settings) -> None:
    try:
        jar = SimpleCookie(request.headers.get("cookie", ""))
    except CookieError:
        jar = SimpleCookie()
    found = jar.get(_name(state, _secure(settings)))
    if found is None or not hmac.compare_digest(found.value, _value(state)):
        raise AppError("LAUNCH-BROWSER-MISMATCH")
