"""The one-time Microsoft sign-in from inside an EHR's frame: in a window of its own.

Microsoft's sign-in page refuses to be framed (X-Frame-Options DENY, frame-ancestors 'none'),
and Epic Hyperspace activities and Oracle Health MPages / PowerChart show our launch in an
iframe. So when the callback runs framed (`Sec-Fetch-Dest: iframe`) and the clinician has no
Microsoft mapping yet, the frame shows a button instead of a blank frame; the clinician's click
opens this app's sign-in window (a popup, which a click may open), and:

1. The window asks its opener (the frame, our origin) for the hand-off by postMessage, and the
   frame answers only that window, only at our origin. The hand-off is sealed, bound to the
   sign-in's state, short-lived and accepted once (BrowserBinding.handoff): it never appears in
   a URL, so no log, history or referrer can replay it.
2. The window posts it back to us (`take_over`); we mark the stored sign-in as taken (one ETag
   write: single use), bind the sign-in to this window's own cookie (a top-level window does
   not see the frame's partitioned one) and send it to Microsoft.
3. The callback and the account confirmation run in the window as they do top-level; the
   confirmation records the outcome on the frame's sign-in (`finish`) and the window closes.
4. The frame, polling `status` with its own partitioned cookie, goes on to `resume`, which
   (once, with that cookie) takes it to the visit page, as a top-level launch would have.

Only the browser that started the launch gets anywhere: the window needs the hand-off that only
the frame holds, and the visit page comes only to the frame holding the sign-in's cookie.
"""

from __future__ import annotations

from lib.endpoints.models import Endpoint
from lib.endpoints.service import EndpointService
from lib.launch.visit_page import VisitPages
from lib.signin.binding import BrowserBinding
from lib.signin.sessions import SessionStore, SignInSession, check_state
from lib.visits.store import Visit, VisitStore
from lib.web.errors import AppError
from lib.web.http import Request, Response
from lib.web.render import page
from lib.web.urls import Urls

SIGNIN_KIND = "entra"  # the stored sign-in the window takes over (microsoft.py)
TAKEN, OPENED, CANCELLED = "taken", "opened", "cancelled"


class SignInWindow:
    def __init__(
        self,
        sessions: SessionStore,
        binding: BrowserBinding,
        urls: Urls,
        endpoints: EndpointService,
        visits: VisitStore,
        pages: VisitPages,
        onward: tuple[str, ...] = (),
    ) -> None:
        self._sessions = sessions
        self._binding = binding
        self._urls = urls
        self._endpoints = endpoints
        self._visits = visits
        self._pages = pages
        self._onward = onward

    def frame_page(self, session: SignInSession, endpoint: Endpoint) -> Response:
        """What the EHR's frame shows instead of Microsoft's sign-in: the button that opens the
        window, and the script that hands the sign-in over and then waits for it."""
        resp = page(
            "signin_frame.html",
            organization=endpoint.organization,
            state=session.state,
            handoff=self._binding.handoff(session),
            origin=self._urls.origin,
            window_url=self._urls.signin_window,
            status_url=self._urls.signin_window_status,
            resume_url=self._urls.signin_window_resume,
        )
        resp.frame_ancestors = tuple(endpoint.launch.ehr_origins)
        return self._binding.bind(resp, session)  # the frame's own (partitioned) cookie

    def window_page(self) -> Response:
        """GET /api/launch/window: the window's first page; nothing in it is secret."""
        resp = page("signin_window.html", action=self._urls.signin_window)
        resp.form_action = self._onward  # the hand-off's answer redirects on, to Microsoft
        return resp

    def take_over(self, request: Request) -> Response:
        """POST /api/launch/window: the hand-off, once; then on to Microsoft's sign-in."""
        form = request.form()
        state = check_state(form.get("state"))
        self._binding.check_handoff(form.get("handoff"), state)  # before anything is read
        session = self._sessions.find(state)
        if session.kind != SIGNIN_KIND:
            raise AppError("LAUNCH-STATE-MISSING")
        if session.data.get("window"):
            raise AppError("LAUNCH-STATE-REUSED")
        session = self._sessions.record(session, window=TAKEN)
        answer = Response.redirect(session.data["flow"]["auth_uri"], 303)
        return self._binding.bind(answer, session)  # this window's cookie, for the callback

    def finish(self, state: str, outcome: str, visit: Visit | None = None) -> Response:
        """The confirmation's answer in the window: tell the frame's sign-in, close."""
        session = self._sessions.get(state)
        self._sessions.record(session, window=outcome, opened=visit.key if visit else None)
        return page("signin_window_done.html", opened=outcome == OPENED)

    def status(self, request: Request) -> Response:
        """GET /api/launch/window/status: how the sign-in in the window goes (the frame's
        poll): null until the window took it over, then taken, opened or cancelled."""
        session = self._waiting(request)
        return Response.json({"status": session.data.get("window")})

    def resume(self, request: Request) -> Response:
        """GET /api/launch/window/resume: the frame, once, into the visit the window opened."""
        session = self._waiting(request)
        if session.data.get("resumed"):
            raise AppError("LAUNCH-STATE-REUSED")
        if session.data.get("window") != OPENED:
            raise AppError("LAUNCH-STATE-MISSING")
        session = self._sessions.record(session, resumed=True)
        # Deleted or disabled since the window opened the visit: stop now.
        endpoint = self._endpoints.launchable(session.endpoint_id or "")
        visit = self._visits.get(session.data["opened"])
        if visit is None:
            raise AppError("LAUNCH-STATE-MISSING")
        hashed = session.data["clinician_hash"]
        return self._pages.arrival(endpoint, "provider", visit, clinician_hash=hashed)

    def _waiting(self, request: Request) -> SignInSession:
        """The frame's sign-in, for the frame that started it (its cookie, checked first)."""
        state = check_state(request.query.get("state"))
        self._binding.check(request, state)
        session = self._sessions.get(state)
        if session.kind != SIGNIN_KIND:
            raise AppError("LAUNCH-STATE-MISSING")
        return session
