"""Ties each sign-in to the browser that started it (RFC 6749 10.12, RFC 9700 4.7).

Without it, a sign-in link (the EHR's callback, or the Microsoft sign-in page of a first launch)
copied to a colleague's browser would complete there: the colleague's Microsoft account would be
mapped to the first clinician's EHR user for good. Each sign-in gets its own cookie, named after
a keyed hash of its state, so any number of launches run side by side in one browser with no
shared slot. Over https (in Azure, and locally: dev/stack.py) it is `__Host-`, Secure,
`SameSite=None` and Partitioned (CHIPS), so it also works inside an EHR's iframe; on an http
host it would be a plain Lax cookie, which a browser neither stores nor sends in a cross-site
frame.

A partitioned cookie is kept per top-level site: a window of its own (the Microsoft sign-in,
which refuses to be framed) does not see the frame's. `handoff` carries a stored sign-in across
that boundary: a sealed value, bound to the sign-in's state, that expires in minutes and that
the caller accepts once (lib/launch/window.py hands it over by postMessage, never in a URL).

The cookie's value is a keyed hash of the state for a stored session, and for a launch the
session itself, sealed (AES-GCM, bound to the state and the purpose `signin-state`): a launch
start then writes nothing to storage, and only the browser that started it can finish it.
"""

from __future__ import annotations

import hmac
import json
from datetime import UTC, datetime, timedelta
from http.cookies import CookieError, SimpleCookie

from lib.privacy import PrivacyKeys
from lib.sealing import SealBroken, Sealer
from lib.signin.sessions import LIFETIME, SignInSession, check_fresh, check_state, row_keys
from lib.web.errors import AppError
from lib.web.http import Request, Response

PURPOSE = "signin-state"
HANDOFF_PURPOSE = "signin-handoff"
# A launch's cookie outlives its session a little, so a late callback is told "expired" rather
# than "another browser".
EXPIRY_GRACE = timedelta(minutes=10)
# Long enough to press a button and let a window open; the sign-in itself has its own lifetime.
HANDOFF_LIFETIME = timedelta(minutes=5)


class BrowserBinding:
    def __init__(self, privacy: PrivacyKeys, sealer: Sealer, *, secure: bool) -> None:
        self._privacy = privacy
        self._sealer = sealer
        self._secure = secure

    def _name(self, state: str) -> str:
        base = "evc_signin_" + self._privacy.keyed_hash(state, purpose="signin-cookie-name")[:16]
        return f"__Host-{base}" if self._secure else base

    def _value(self, state: str) -> str:
        return self._privacy.keyed_hash(state, purpose="signin-cookie")

    def bind(self, response: Response, session: SignInSession) -> Response:
        state = session.state
        if session.in_browser:
            value = self._sealer.seal(_payload(session), visit_key=state, purpose=PURPOSE)
            lifetime = LIFETIME + EXPIRY_GRACE
        else:
            value, lifetime = self._value(state), LIFETIME
        attributes = f"Path=/; Max-Age={int(lifetime.total_seconds())}; HttpOnly; " + (
            "Secure; SameSite=None; Partitioned" if self._secure else "SameSite=Lax"
        )
        response.headers["Set-Cookie"] = f"{self._name(state)}={value}; {attributes}"
        return response

    def _cookie(self, request: Request, state: str) -> str | None:
        try:
            jar = SimpleCookie(request.headers.get("cookie", ""))
        except CookieError:
            jar = SimpleCookie()
        found = jar.get(self._name(state))
        return found.value if found is not None else None

    def check(self, request: Request, state: str) -> None:
        """A stored session's sign-in must come back to the browser that started it."""
        found = self._cookie(request, state)
        # As bytes: a quoted cookie may unquote to non-ASCII, which compare_digest refuses on str.
        if found is None or not hmac.compare_digest(found.encode(), self._value(state).encode()):
            raise AppError("LAUNCH-BROWSER-MISMATCH")

    def session(self, request: Request, state: str | None) -> SignInSession:
        """The session a launch's browser holds for `state` (not yet marked used)."""
        state = check_state(state)
        found = self._cookie(request, state)
        if found is None:
            raise AppError("LAUNCH-BROWSER-MISMATCH")
        try:
            data = json.loads(self._sealer.open(found, visit_key=state, purpose=PURPOSE))
            pk, rk = row_keys(state)
            session = SignInSession(partition_key=pk, row_key=rk, **data)
        except (SealBroken, ValueError, TypeError):
            raise AppError("LAUNCH-BROWSER-MISMATCH") from None
        check_fresh(session)
        return session

    def handoff(self, session: SignInSession, *, now: datetime | None = None) -> str:
        """A sealed value that lets another window of this browser take over the stored
        sign-in `session` (see the module's docstring). Not a key to anything by itself: it
        opens only for this state and purpose, expires, and is accepted once."""
        expires = (now or datetime.now(UTC)) + HANDOFF_LIFETIME
        payload = json.dumps({"exp": _iso(expires)})
        return self._sealer.seal(payload, visit_key=session.state, purpose=HANDOFF_PURPOSE)

    def check_handoff(self, value: str | None, state: str, *, now: datetime | None = None) -> None:
        """`value` was made by `handoff` for this state, and has not expired."""
        try:
            data = json.loads(
                self._sealer.open(value or "", visit_key=state, purpose=HANDOFF_PURPOSE)
            )
            expires = datetime.fromisoformat(data["exp"])
        except (SealBroken, ValueError, TypeError, KeyError):
            raise AppError("LAUNCH-BROWSER-MISMATCH") from None
        if (now or datetime.now(UTC)) >= expires:
            raise AppError("LAUNCH-STATE-EXPIRED")


def _payload(session: SignInSession) -> str:
    """What a launch's callback needs of its session, and nothing else."""
    return json.dumps(
        {
            "kind": session.kind,
            "endpoint_id": session.endpoint_id,
            "code_verifier": session.code_verifier,
            "nonce": session.nonce,
            "redirect_uri": session.redirect_uri,
            "created_at": _iso(session.created_at),
            "expires_at": _iso(session.expires_at),
        },
        separators=(",", ":"),
    )


def _iso(moment: datetime) -> str:
    return moment.isoformat()
