"""Epic approval (F3): the named approver proves EHR access by signing in to that EHR.

`start` (approver's bearer token) opens a sign-in session and returns the EHR's authorize URL for
a SMART standalone sign-in (`openid fhirUser`, PKCE S256, nonce). The shared callback hands the
session to `complete`, which exchanges the code, verifies the EHR's id_token and records who
approved. The EHR's tokens are used for that check only and never stored.
"""

from __future__ import annotations

from urllib.parse import urlencode

from lib.admin.auth import Principal
from lib.admin.credentials import client_auth_for, redeem_code
from lib.admin.endpoints import EndpointService
from lib.admin.models import EndpointRecord
from lib.admin.records import callback_url
from lib.sessions import SessionStore, SignInSession
from lib.smart.http import OutboundHttp
from lib.smart.id_token import IdTokenVerifier, fhir_user
from lib.smart.keys import KeySet
from lib.smart.pkce import challenge_s256
from lib.smart.scopes import approval_scopes, join


class ApprovalService:
    def __init__(
        self,
        endpoints: EndpointService,
        sessions: SessionStore,
        http: OutboundHttp,
        keys: KeySet | None,
        id_tokens: IdTokenVerifier,
    ) -> None:
        self._endpoints = endpoints
        self._sessions = sessions
        self._http = http
        self._keys = keys
        self._id_tokens = id_tokens

    def start(self, endpoint_id: str, approver: Principal) -> str:
        record = self._endpoints.get(endpoint_id)
        self._endpoints.check_approvable(record, approver)
        client_auth_for(record, self._keys)  # fail now, not after the EHR sign-in
        session = self._sessions.start(
            "approval",
            redirect_uri=callback_url(),
            endpoint_id=record.id,
            data={"oid": approver.oid, "name": approver.name, "tid": approver.tid},
        )
        return authorize_url(record, session)

    def complete(self, session: SignInSession, code: str) -> EndpointRecord:
        record = self._endpoints.get(session.endpoint_id or "")
        approver = Principal(
            oid=session.data["oid"], name=session.data["name"], tid=session.data["tid"]
        )
        self._endpoints.check_approvable(record, approver)  # may have changed meanwhile
        validation = record.validation
        hosts = validation.pinned_hosts.all() if validation and validation.pinned_hosts else None
        _, claims = redeem_code(
            self._http, self._id_tokens, self._keys, record, validation, hosts, session, code
        )
        user = fhir_user(claims)
        ehr_user = f"{user[0]}/{user[1]}" if user else claims.get("sub")
        return self._endpoints.record_approval(record.id, approver, ehr_user)


def authorize_url(record: EndpointRecord, session: SignInSession) -> str:
    validation = record.validation
    params = {
        "response_type": "code",
        "client_id": record.client_id,
        "redirect_uri": session.redirect_uri,
        "scope": join(approval_scopes()),
        "state": session.row_key,
        "aud": record.fhir_base_url,
        "code_challenge": challenge_s256(session.code_verifier),
        "code_challenge_method": "S256",
        "nonce": session.nonce,
    }
    return f"{validation.authorize_endpoint}?{urlencode(params)}"
