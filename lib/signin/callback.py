"""GET /api/launch/callback: the one redirect URI for every sign-in we start.

Order matters. The session is found by its `state`, and a sign-in bound to a browser must come
back to that browser (its cookie) before anything else happens: a stranger holding someone's
callback URL can neither show text on our pages (an EHR `error=`) nor burn their sign-in. Then
the state is used up (single use, whatever happens next), an EHR `error` is shown, and the
session's kind picks its completer from the table the composition root fills (launches,
approvals, the Microsoft sign-in; the portal adds a row). A launch's completer uses the state
itself, alongside its code redemption (`uses_state`): the redemption's answer counts only if
the single-use write was this callback's, and the launch saves that write's round trip. When the
browser says the callback runs in a frame and the completer's answer cannot be shown there, its
framed alternative is answered instead (the Microsoft sign-in in a window of its own:
lib/launch/window.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from lib.signin.binding import BrowserBinding
from lib.signin.sessions import BROWSER_PREFIX, SessionStore, SignInSession
from lib.web.errors import AppError
from lib.web.http import Request, Response


@dataclass(frozen=True)
class Completer:
    """What finishes one kind of sign-in, given its (consumed) session and the query."""

    complete: Callable[[SignInSession, Mapping[str, str]], Response]
    # Only the browser that started it may finish it (launches). An approval is bound to the
    # approver's identity instead: the EHR's id_token must name a user who may approve.
    browser_bound: bool = True
    # The completer calls `SessionStore.use` itself, overlapped with its first upstream call, and
    # raises LAUNCH-STATE-REUSED before acting on that call's answer (launches: lib/launch).
    uses_state: bool = False


class Callback:
    def __init__(
        self,
        sessions: SessionStore,
        binding: BrowserBinding,
        completers: Mapping[str, Completer],
    ) -> None:
        self._sessions = sessions
        self._binding = binding
        self._completers = dict(completers)

    def handle(self, request: Request) -> Response:
        q = request.query
        state = q.get("state") or ""
        if state.startswith(BROWSER_PREFIX):  # a launch: its browser holds the session
            session = self._binding.session(request, state)
            completer = self._completer(session)
        else:
            session = self._sessions.find(state)
            completer = self._completer(session)
            if completer.browser_bound:
                self._binding.check(request, session.state)
        if q.get("error"):
            self._sessions.use(session)
            description = (q.get("error_description") or "")[:300]
            raise AppError(
                "LAUNCH-EHR-ERROR", f"The EHR said: {q['error'][:60]} {description}".strip()
            )
        used = session if completer.uses_state else self._sessions.use(session)
        answer = completer.complete(used, q)
        if answer.in_frame is not None and request.framed:
            return answer.in_frame()  # e.g. Microsoft's sign-in, which refuses to be framed
        return answer

    def _completer(self, session: SignInSession) -> Completer:
        completer = self._completers.get(session.kind)
        if completer is None:  # a kind this deployment no longer completes
            raise AppError("LAUNCH-STATE-MISSING")
        return completer
