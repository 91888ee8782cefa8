"""The portal's Entra ID sign-in: authorization code + PKCE, through the shared sign-in sessions.

msal runs the flow (PKCE S256, state, nonce, id_token checks) for the connector's registration
(ENTRA_CLIENT_ID, as the clinicians' Microsoft sign-in does: lib/teams/entra.py builds the app).
Its flow state lives in a stored sign-in session of kind `portal`, bound to the browser that
started it (lib/signin/binding.py), and the one callback (/api/launch/callback) hands it back to
`complete`, which reads who signed in and their app roles from the id_token and sets the portal's
session cookie (session.py). Nothing else is kept: the throwaway msal app takes the tokens with it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from lib.admin.auth import Principal
from lib.portal.session import PortalSessions
from lib.signin.binding import BrowserBinding
from lib.signin.sessions import SessionStore, SignInSession
from lib.smart.pkce import new_state
from lib.teams.entra import EntraApp
from lib.web.http import Response
from lib.web.urls import Urls

KIND = "portal"
FAILED = "PORTAL-SIGNIN-FAILED"  # what the person is told when the sign-in fails
HOME = "/api/portal"
# Where the sign-in may send the browser back to: a portal page of ours, nothing else. No empty,
# `.` or `..` segment: a browser resolves `/api/portal/../../x` to `/x`, out of the portal.
NEXT = re.compile(r"^/api/portal(?:/[A-Za-z0-9._~/-]{0,200})?$")


def safe_next(value: str | None) -> str:
    if not value or not NEXT.fullmatch(value):
        return HOME
    segments = value.split("/")[1:]
    return HOME if any(s in ("", ".", "..") for s in segments) else value


class PortalSignIn:
    def __init__(
        self,
        entra: EntraApp,
        sessions: SessionStore,
        binding: BrowserBinding,
        urls: Urls,
        cookies: PortalSessions,
    ) -> None:
        self._entra = entra
        self._sessions = sessions
        self._binding = binding
        self._urls = urls
        self._cookies = cookies

    def begin(self, next_path: str | None) -> Response:
        """Send the browser to Entra ID's sign-in page (GET /api/portal/signin)."""
        state = new_state()
        # No resource scopes: the id_token (openid profile, which msal adds) is all we need.
        flow = self._entra.sign_in_flow(
            [], redirect_uri=self._urls.callback, state=state, error_code=FAILED
        )
        session = self._sessions.start(
            KIND,
            redirect_uri=self._urls.callback,
            data={"flow": flow, "next": safe_next(next_path)},
            state=state,
        )
        return self._binding.bind(Response.redirect(flow["auth_uri"]), session)

    def complete(self, session: SignInSession, query: Mapping[str, str]) -> Response:
        """The callback's completer for `portal` sessions: the cookie, and on to the portal."""
        claims = self._entra.signed_in(
            session.data["flow"], query, error_code=FAILED, what="portal sign-in token"
        )
        principal = Principal(
            oid=str(claims["oid"]),
            name=str(claims.get("name") or claims.get("preferred_username") or claims["oid"]),
            tid=str(claims["tid"]),
            roles=frozenset(r for r in claims.get("roles") or [] if isinstance(r, str)),
        )
        answer = Response.redirect(safe_next(session.data.get("next")), 303)
        return self._cookies.issue(answer, self._cookies.new(principal))
