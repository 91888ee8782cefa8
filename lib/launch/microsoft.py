"""A clinician's one-time Microsoft sign-in (F8): maps their EHR user to an Entra object id.

msal runs the authorization code flow with PKCE; its flow state (verifier, nonce) lives in our
sign-in session, keyed by the same `state`, so the shared callback finds it. Nothing is mapped
until the clinician confirms, on our page, that their EHR sign-in will open visits as the
Microsoft account they picked: on a shared workstation the account picker may offer a
colleague's, and the mapping is remembered. The only thing kept afterwards is the mapping (which
the clinician can undo from the visit page): each sign-in uses a throwaway msal app, so the
tokens it obtained are gone with the request. Inside an EHR's frame, where Microsoft's sign-in
refuses to be shown, the sign-in and the confirmation run in a window of their own (window.py).
"""

from __future__ import annotations

from collections.abc import Mapping

from lib.endpoints.models import Endpoint
from lib.endpoints.service import EndpointService
from lib.launch.visit_page import VisitPages
from lib.launch.window import CANCELLED, OPENED, SignInWindow
from lib.signin.binding import BrowserBinding
from lib.signin.sessions import SessionStore, SignInSession
from lib.smart.pkce import new_state
from lib.teams.entra import EntraApp
from lib.visits.mappings import ClinicianMappings
from lib.visits.opening import PendingVisit, VisitOpener
from lib.web.errors import AppError
from lib.web.http import Request, Response
from lib.web.render import page
from lib.web.urls import Urls

SCOPES = ["User.Read"]  # msal adds openid / profile: we only need who signed in
CONFIRM_KIND = "entra-confirm"  # a stored session: the clinician's pending confirmation
FAILED = "LAUNCH-MS-SIGNIN-FAILED"  # what the clinician is told when Microsoft sign-in fails


class MicrosoftSignIn:
    def __init__(
        self,
        entra: EntraApp,
        sessions: SessionStore,
        binding: BrowserBinding,
        urls: Urls,
        endpoints: EndpointService,
        mappings: ClinicianMappings,
        opener: VisitOpener,
        pages: VisitPages,
        onward: tuple[str, ...] = (),
        window: SignInWindow | None = None,
    ) -> None:
        self._window = window
        self._onward = onward
        self._entra = entra
        self._sessions = sessions
        self._binding = binding
        self._urls = urls
        self._endpoints = endpoints
        self._mappings = mappings
        self._opener = opener
        self._pages = pages

    def begin(self, endpoint: Endpoint, pending: PendingVisit, clinician_hash: str) -> Response:
        state = new_state()
        flow = self._entra.sign_in_flow(
            SCOPES, redirect_uri=self._urls.callback, state=state, error_code=FAILED
        )
        session = self._sessions.start(
            "entra",
            redirect_uri=self._urls.callback,
            endpoint_id=endpoint.id,
            data={
                # msal needs its flow back to check the answer; the URL, for a sign-in window.
                "flow": flow,
                "pending": pending.model_dump(mode="json"),
                "clinician_hash": clinician_hash,
            },
            state=state,
        )
        answer = self._binding.bind(Response.redirect(flow["auth_uri"]), session)
        if self._window is not None:  # Microsoft's page refuses frames: a window of its own
            answer.in_frame = lambda: self._window.frame_page(session, endpoint)
        return answer

    def complete(self, session: SignInSession, query: Mapping[str, str]) -> Response:
        """The callback's completer for `entra` sessions (msal checks the answer): the page
        asking the clinician to confirm the account, bound to this browser."""
        claims = self._entra.signed_in(
            session.data["flow"], query, error_code=FAILED, what="sign-in token"
        )
        # deleted or disabled while the clinician was at Microsoft: stop now
        endpoint = self._endpoints.launchable(session.endpoint_id or "")
        account = str(claims.get("preferred_username") or claims.get("name") or claims["oid"])
        confirm = self._sessions.start(
            CONFIRM_KIND,
            redirect_uri=self._urls.callback,
            endpoint_id=endpoint.id,
            data={
                "oid": claims["oid"],
                "pending": session.data["pending"],
                "clinician_hash": session.data["clinician_hash"],
                # a frame waits for this sign-in in another window (window.py)
                "window": session.state if session.data.get("window") else None,
            },
        )
        resp = page(
            "link_account.html",
            organization=endpoint.organization,
            account=account[:200],
            action=self._urls.link_confirm,
            state=confirm.state,
        )
        resp.form_action = self._onward  # the answer redirects on, to the visit or to Teams
        resp.frame_ancestors = tuple(endpoint.launch.ehr_origins)
        return self._binding.bind(resp, confirm)

    def confirm(self, request: Request) -> Response:
        """POST /api/launch/confirm: the clinician's answer; only then is the mapping made."""
        form = request.form()
        session = self._sessions.find(form.get("state"))
        if session.kind != CONFIRM_KIND:
            raise AppError("LAUNCH-STATE-MISSING")
        self._binding.check(request, session.state)  # only the browser that signed in
        session = self._sessions.use(session)
        waiting = session.data.get("window")
        if form.get("decision") != "confirm":
            if waiting and self._window is not None:
                return self._window.finish(waiting, CANCELLED)
            return page("link_cancelled.html")
        # Deleted or disabled while the clinician was deciding: no mapping, no meeting.
        endpoint = self._endpoints.launchable(session.endpoint_id or "")
        oid, hashed = session.data["oid"], session.data["clinician_hash"]
        pending = PendingVisit.model_validate(session.data["pending"])
        self._mappings.put(endpoint.id, hashed, oid)
        visit = self._opener.open(endpoint, "provider", pending, oid)
        if waiting and self._window is not None:  # the frame goes on to the visit, not here
            return self._window.finish(waiting, OPENED, visit)
        arrival = self._pages.arrival(endpoint, "provider", visit, clinician_hash=hashed)
        arrival.status = 303  # after a POST, the browser GETs where it is sent
        return arrival
