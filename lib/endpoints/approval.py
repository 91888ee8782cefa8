"""Epic approval (F3): the named approver proves EHR access by signing in to that EHR.

`start` (approver's bearer token) opens a sign-in session and returns the EHR's authorize URL for
a SMART standalone sign-in (`openid fhirUser`, PKCE S256, nonce). The shared callback hands the
session to `complete`, which exchanges the code, verifies the EHR's id_token and records who
approved. The EHR's tokens are used for that check only and never stored.
"""

from __future__ import annotations

from collections.abc import Mapping

from lib.endpoints.actor import Actor
from lib.endpoints.client import EndpointClient, SmartDeps
from lib.endpoints.models import Endpoint
from lib.endpoints.service import EndpointService
from lib.signin.sessions import SessionStore, SignInSession
from lib.smart.id_token import fhir_user
from lib.web.http import Response
from lib.web.render import page
from lib.web.urls import Urls


class ApprovalService:
    def __init__(
        self, endpoints: EndpointService, sessions: SessionStore, smart: SmartDeps, urls: Urls
    ) -> None:
        self._endpoints = endpoints
        self._sessions = sessions
        self._smart = smart
        self._urls = urls

    def start(self, endpoint_id: str, approver: Actor) -> str:
        endpoint = self._endpoints.get(endpoint_id)
        self._endpoints.check_approvable(endpoint, approver)
        client = self._smart.client(endpoint)
        client.client_auth()  # fail now, not after the EHR sign-in
        session = self._sessions.start(
            "approval",
            redirect_uri=self._urls.callback,
            endpoint_id=endpoint.id,
            data={"oid": approver.oid, "name": approver.name},
        )
        return client.approval_authorize_url(session)

    def complete(self, session: SignInSession, query: Mapping[str, str]) -> Response:
        """The callback's completer for `approval` sessions: the page saying who approved."""
        endpoint = self._endpoints.get(session.endpoint_id or "")
        client = self._smart.client(endpoint)
        code = client.code_from(query)
        approved = self._approve(client, session, code)
        return page("approved.html", endpoint=approved, approver=session.data.get("name"))

    def _approve(self, client: EndpointClient, session: SignInSession, code: str) -> Endpoint:
        endpoint = client.endpoint
        approver = Actor(oid=session.data["oid"], name=session.data["name"])
        self._endpoints.check_approvable(endpoint, approver)  # may have changed meanwhile
        _, claims = client.redeem(
            session, code, server=endpoint.validation, hosts=client.pinned_hosts
        )
        user = fhir_user(claims)
        ehr_user = f"{user[0]}/{user[1]}" if user else claims.get("sub")
        return self._endpoints.approve(endpoint.id, approver, ehr_user)
