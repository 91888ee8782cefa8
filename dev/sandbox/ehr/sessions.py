"""The EHR's own sign-in session: a cookie on the EHR's origin, as a real EHR keeps one.

A clinician in Hyperspace or a patient in MyChart is signed in to the EHR before any app is
launched, so the EHR's authorize answers at once: for an EHR launch the user is whoever the
launch token names (no cookie needed), and for a standalone sign-in the browser's EHR session
names the user once a demo person was picked on the sign-in page. The session is per browser
(cookie ``{vendor}_ehr_session``, ``Secure; HttpOnly; SameSite=None`` under the EHR's own path,
so it also travels when the EHR's pages are framed or the authorize request is a cross-site
form POST). With the quirk ``signed_in=False`` the EHR keeps no session and shows the picker on
every standalone sign-in. Reset forgets every session.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie

from werkzeug.wrappers import Request, Response

SESSION_LIFETIME = 8 * 3600  # a working day


@dataclass(frozen=True)
class EhrSession:
    persona: str  # provider | patient
    user_key: str  # a demo clinician or patient key
    expires_at: float


class EhrSessions:
    def __init__(self, vendor: str) -> None:
        self.cookie_name = f"{vendor}_ehr_session"
        self.path = f"/{vendor}"
        self._sessions: dict[str, EhrSession] = {}
        self._lock = threading.Lock()

    def current(self, request: Request) -> EhrSession | None:
        """The browser's live session, if its cookie names one."""
        try:
            jar = SimpleCookie(request.headers.get("Cookie", ""))
        except CookieError:
            return None
        morsel = jar.get(self.cookie_name)
        if morsel is None:
            return None
        with self._lock:
            found = self._sessions.get(morsel.value)
        return found if found is not None and found.expires_at > time.time() else None

    def sign_in(self, response: Response, persona: str, user_key: str) -> Response:
        """Start a session for ``user_key`` and set its cookie on ``response``."""
        token = secrets.token_urlsafe(24)
        with self._lock:
            now = time.time()
            self._sessions = {k: v for k, v in self._sessions.items() if v.expires_at > now}
            self._sessions[token] = EhrSession(persona, user_key, now + SESSION_LIFETIME)
        response.headers.add(
            "Set-Cookie",
            f"{self.cookie_name}={token}; Path={self.path}; Max-Age={SESSION_LIFETIME}; "
            "Secure; HttpOnly; SameSite=None",
        )
        return response

    def reset(self) -> None:
        with self._lock:
            self._sessions.clear()
