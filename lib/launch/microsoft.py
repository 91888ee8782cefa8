"""A clinician's one-time Microsoft sign-in (F8): maps their EHR user to an Entra object id.

msal runs the authorization code flow with PKCE; its flow state (verifier, nonce) lives in our
sign-in session, keyed by the same `state`, so the shared callback finds it. The only thing kept
afterwards is the mapping: each sign-in uses a throwaway msal app, so the tokens it obtained are
gone with the request.
"""

from __future__ import annotations

from collections.abc import Mapping

from lib.endpoints.lifecycle import check_launchable
from lib.endpoints.models import Endpoint
from lib.endpoints.service import EndpointService
from lib.launch.visit_page import VisitPages
from lib.signin.binding import BrowserBinding
from lib.signin.sessions import SessionStore, SignInSession
from lib.smart.pkce import new_state
from lib.teams.entra import EntraApp
from lib.visits.mappings import ClinicianMappings
from lib.visits.opening import PendingVisit, VisitOpener
from lib.web.errors import AppError
from lib.web.http import Response
from lib.web.urls import Urls

SCOPES = ["User.Read"]  # msal adds openid / profile: we only need who signed in


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
    ) -> None:
        self._entra = entra
        self._sessions = sessions
        self._binding = binding
        self._urls = urls
        self._endpoints = endpoints
        self._mappings = mappings
        self._opener = opener
        self._pages = pages

    def _msal_app(self):
        if not self._entra.configured:
            raise AppError(
                "LAUNCH-MS-SIGNIN-FAILED", "ENTRA_CLIENT_ID / ENTRA_CLIENT_SECRET not set."
            )
        return self._entra.client()  # throwaway: nothing from this sign-in is kept

    def begin(self, endpoint: Endpoint, pending: PendingVisit, clinician_hash: str) -> Response:
        state = new_state()
        flow = self._msal_app().initiate_auth_code_flow(
            SCOPES, redirect_uri=self._urls.callback, state=state, prompt="select_account"
        )
        session = self._sessions.start(
            "entra",
            redirect_uri=self._urls.callback,
            endpoint_id=endpoint.id,
            data={
                # msal needs its flow back to check the answer; not the URL we already sent.
                "flow": {k: v for k, v in flow.items() if k != "auth_uri"},
                "pending": pending.model_dump(mode="json"),
                "clinician_hash": clinician_hash,
            },
            state=state,
        )
        return self._binding.bind(Response.redirect(flow["auth_uri"]), session)

    def complete(self, session: SignInSession, query: Mapping[str, str]) -> Response:
        """The callback's completer for `entra` sessions (msal checks the answer)."""
        result = self._msal_app().acquire_token_by_auth_code_flow(session.data["flow"], dict(query))
        if "error" in result:
            raise AppError("LAUNCH-MS-SIGNIN-FAILED", str(result.get("error"))[:60])
        claims = result.get("id_token_claims") or {}
        if claims.get("tid") != self._entra.tenant_id or not claims.get("oid"):
            raise AppError("LAUNCH-MS-SIGNIN-FAILED", "The account is not in this organization.")
        endpoint = self._endpoints.get(session.endpoint_id or "")
        # Disabled while the clinician was at Microsoft: no mapping, no meeting.
        check_launchable(endpoint)
        pending = PendingVisit.model_validate(session.data["pending"])
        self._mappings.put(endpoint.id, session.data["clinician_hash"], claims["oid"])
        visit = self._opener.open(endpoint, "provider", pending, claims["oid"])
        return self._pages.arrival(endpoint, "provider", visit)
