"""A clinician's one-time Microsoft sign-in (F8): maps their EHR user to an Entra object id.

msal runs the authorization code flow with PKCE; its flow state (verifier, nonce) lives in our
sign-in session, keyed by the same `state`, so the shared callback finds it. The only thing kept
afterwards is the mapping: each sign-in uses a throwaway msal app, so the tokens it obtained are
gone with the request.
"""

from __future__ import annotations

from lib.admin.models import EndpointRecord
from lib.admin.records import callback_url
from lib.launch import binding
from lib.services import Services
from lib.sessions import SignInSession
from lib.smart.pkce import new_state
from lib.web.errors import AppError
from lib.web.http import Response

SCOPES = ["User.Read"]  # msal adds openid / profile: we only need who signed in


def _msal_app(svc: Services):
    import msal

    s = svc.settings
    if not s.entra_client_id or s.entra_client_secret is None:
        raise AppError("LAUNCH-MS-SIGNIN-FAILED", "ENTRA_CLIENT_ID / ENTRA_CLIENT_SECRET not set.")
    return msal.ConfidentialClientApplication(
        s.entra_client_id,
        client_credential=s.entra_client_secret.get_secret_value(),
        authority=f"{s.entra_authority_host}/{s.entra_tenant_id}",
        instance_discovery=False,
        token_cache=msal.TokenCache(),  # throwaway: nothing from this sign-in is kept
    )


def begin(svc: Services, record: EndpointRecord, pending: dict) -> Response:
    state = new_state()
    flow = _msal_app(svc).initiate_auth_code_flow(
        SCOPES, redirect_uri=callback_url(), state=state, prompt="select_account"
    )
    svc.sessions.start(
        "entra",
        redirect_uri=callback_url(),
        endpoint_id=record.id,
        data={"flow": flow, "pending": pending},
        state=state,
    )
    return binding.bind(Response.redirect(flow["auth_uri"]), state, svc.settings)


def complete(svc: Services, session: SignInSession, query: dict[str, str]) -> Response:
    from lib.launch.visit import open_visit

    result = _msal_app(svc).acquire_token_by_auth_code_flow(session.data["flow"], query)
    if "error" in result:
        raise AppError("LAUNCH-MS-SIGNIN-FAILED", str(result.get("error"))[:60])
    claims = result.get("id_token_claims") or {}
    if claims.get("tid") != svc.settings.entra_tenant_id or not claims.get("oid"):
        raise AppError("LAUNCH-MS-SIGNIN-FAILED", "The account is not in this organization.")
    record = svc.endpoints.get(session.endpoint_id or "")
    pending = session.data["pending"]
    svc.visits.remember(record.id, pending["user_hash"], claims["oid"])
    return open_visit(svc, record, "provider", pending, claims["oid"])
