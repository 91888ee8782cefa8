"""The OAuth surface of an EHR stand-in (SMART App Launch): authorize, with an EHR launch or a
standalone sign-in, and token (authorization_code with PKCE, client_credentials)."""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from typing import Any

from werkzeug.wrappers import Request, Response

from dev.sandbox import oauth
from dev.sandbox.ehr import idtoken, pages
from dev.sandbox.ehr import scopes as scope_tools
from dev.sandbox.ehr.clients import (
    AUTHORIZATION_CODE,
    CLIENT_CREDENTIALS,
    PRIVATE_KEY_JWT,
    SmartClient,
    read_presented,
)
from dev.sandbox.ehr.data import (
    CLINICIANS,
    PATIENTS,
    Clinician,
    Patient,
)
from dev.sandbox.ehr.errors import SmartError
from dev.sandbox.ehr.model import AccessToken, AuthRequest, Grant, Launch
from dev.sandbox.ehr.portals import person_of_clinician, person_of_patient
from dev.sandbox.oauth import OAuthProblem, Problem
from dev.sandbox.standin import html_response

BACKEND_TOKEN_LIFETIME = 300
# How SMART words the refusals of the shared OAuth core (the RFC 6749 error comes with each).
WORDING = {
    Problem.CHALLENGE_MISSING: "PKCE is required: code_challenge is missing.",
    Problem.METHOD_NOT_S256: "code_challenge_method must be S256.",
    Problem.CODE_UNKNOWN: "The authorization code is not valid.",
    Problem.CODE_USED: "The authorization code was already used.",
    Problem.CODE_EXPIRED: "The authorization code expired.",
    Problem.CODE_OTHER_CLIENT: "The code was issued to another client.",
    Problem.REDIRECT_MISMATCH: "redirect_uri differs from the authorize request.",
    Problem.VERIFIER_MISSING: "code_verifier is required (PKCE).",
    Problem.VERIFIER_MISMATCH: "code_verifier does not match the code_challenge.",
}


class SmartAuthorization:
    """Mixed into EhrStandIn."""

    def error_catalogue(self, request: Request) -> Response:
        rows = "".join(
            f"<li id='{e}'><code>{e}</code></li>"
            for e in (
                "invalid_request",
                "invalid_client",
                "invalid_grant",
                "invalid_scope",
                "unauthorized_client",
                "unsupported_response_type",
                "unsupported_grant_type",
                "access_denied",
            )
        )
        return html_response(pages.page("OAuth errors", self.vendor_title, f"<ul>{rows}</ul>"))

    # -- authorize ----------------------------------------------------------------------------
    def authorize(self, request: Request, persona: str | None) -> Response:
        if request.method == "POST" and "request_id" in request.form:
            return self._signed_in(request)
        params = request.args if request.method == "GET" else request.form
        client = self.clients.get(params.get("client_id"))
        if client is None:
            return self._error_page("invalid_client", "Unknown client_id.")
        redirect_uri = params.get("redirect_uri", "")
        if redirect_uri not in client.redirect_uris:
            return self._error_page(
                "invalid_request",
                "redirect_uri does not exactly match a redirect URI registered for this client.",
            )
        state = params.get("state")
        try:
            pending = self._check_authorize(params, client, redirect_uri, persona)
            self._injected_authorize_error()
        except SmartError as exc:
            return self._redirect_error(redirect_uri, exc, state)
        if pending.launch is not None:
            return self._issue_code(pending, pending.launch.clinician or pending.launch.patient)
        known = self._session_user(request, pending.persona)
        if known is not None:  # signed in to the EHR already: no page
            return self._issue_code(pending, known)
        request_id = self.authorizations.hold(pending)
        people = (
            [person_of_patient(p) for p in PATIENTS]
            if pending.persona == "patient"
            else [person_of_clinician(c, self.vendor) for c in CLINICIANS]
        )
        return html_response(
            pages.sign_in_page(
                self.vendor_title, request.path, request_id, client.name or client.client_id, people
            )
        )

    def _check_authorize(
        self, params: Mapping[str, str], client: SmartClient, redirect_uri: str, persona: str | None
    ) -> AuthRequest:
        if AUTHORIZATION_CODE not in client.grant_types:
            raise SmartError("unauthorized_client", "This client may not use authorization_code.")
        if params.get("response_type") != "code":
            raise SmartError("unsupported_response_type", "response_type must be 'code'.")
        state = params.get("state")
        if not state:
            raise SmartError("invalid_request", "state is required.")
        aud = params.get("aud")
        if not aud:
            raise SmartError("invalid_request", "aud (the FHIR base URL) is required.")
        if aud not in self.known_bases():
            raise SmartError(
                "invalid_request",
                "aud is not a FHIR base URL of this server (compared exactly, a trailing "
                "slash counts).",
            )
        challenge = params.get("code_challenge", "")
        try:
            oauth.check_pkce_request(challenge, params.get("code_challenge_method"))
        except OAuthProblem as exc:
            raise _smart_error(exc) from None
        requested = self._check_scopes(params.get("scope", ""), client)
        launch = None
        if params.get("launch"):
            launch = self._launch_for(params["launch"])
            if "launch" not in requested:
                raise SmartError("invalid_scope", "An EHR launch needs the 'launch' scope.")
            if launch.iss != aud:
                raise SmartError("invalid_request", "aud is not the iss this launch was given.")
        elif "launch" in requested:
            raise SmartError("invalid_request", "The 'launch' scope needs a launch parameter.")
        return AuthRequest(
            client=client,
            redirect_uri=redirect_uri,
            scopes=requested,
            state=state,
            nonce=params.get("nonce") or None,
            code_challenge=challenge,
            aud=aud,
            persona=persona or _persona_by_scopes(requested, launch),
            launch=launch,
        )

    def _check_scopes(self, scope: str, client: SmartClient) -> list[str]:
        requested = list(dict.fromkeys(scope.split()))
        if not requested:
            raise SmartError("invalid_scope", "scope is required.")
        for name in requested:
            if self.vendor == "cerner" and scope_tools.is_wildcard(name):
                raise SmartError("invalid_scope", f"Wildcard scopes are not supported: {name}.")
            if name not in client.scopes:
                raise SmartError("invalid_scope", f"Scope not allowed for this client: {name}.")
        return requested

    def _injected_authorize_error(self) -> None:
        with self._lock:
            injected, self.quirks["authorize_error"] = self.quirks["authorize_error"], None
        if injected:
            raise SmartError(
                injected.get("error", "access_denied"),
                injected.get("error_description", "The user denied the request (sandbox quirk)."),
            )

    def _signed_in(self, request: Request) -> Response:
        pending = self.authorizations.take(request.form["request_id"])
        if pending is None:
            return self._error_page(
                "invalid_request", "This sign-in expired or was already used; start again."
            )
        key = request.form.get("user", "")
        user: Clinician | Patient | None = (
            self.chart.patient(key) if pending.persona == "patient" else self.chart.clinician(key)
        )
        if user is None:
            return self._error_page("invalid_request", "Unknown demo user.")
        answer = self._issue_code(pending, user)
        if self.quirks["signed_in"]:
            self.sessions.sign_in(answer, pending.persona, key)
        return answer

    def _session_user(self, request: Request, persona: str) -> Clinician | Patient | None:
        """The user of the browser's EHR session, if it has one for this persona."""
        session = self.sessions.current(request) if self.quirks["signed_in"] else None
        if session is None or session.persona != persona:
            return None
        if persona == "patient":
            return self.chart.patient(session.user_key)
        return self.chart.clinician(session.user_key)

    def _issue_code(self, pending: AuthRequest, user: Clinician | Patient | None) -> Response:
        if pending.launch is not None:
            with self._lock:  # single use, decided atomically
                if pending.launch.used:
                    return self._redirect_error(
                        pending.redirect_uri,
                        SmartError("invalid_request", "The launch token was already used."),
                        pending.state,
                    )
                pending.launch.used = True
        granted = [s for s in pending.scopes if s not in pending.client.grant_less]
        grant = Grant(
            client_id=pending.client.client_id,
            scopes=granted,
            nonce=pending.nonce,
            aud=pending.aud,
            user=user,
            launch=pending.launch,
        )
        code = self.authorizations.issue(
            grant,
            pending.client.client_id,
            pending.redirect_uri,
            pending.code_challenge,
            self.code_lifetime,
        )
        params = {**oauth.code_params(code, pending.state), **self._iss()}
        return oauth.redirect_to_client(pending.redirect_uri, params)

    def _iss(self) -> dict[str, str]:
        return {"iss": self.issuer} if self.quirks["rfc9207_iss"] else {}

    def _error_params(self, exc: SmartError, state: str | None) -> dict[str, str]:
        extra = {"error_uri": f"{self.url('/oauth2-errors')}#{exc.error}"} if self.error_uri else {}
        # An empty state is left out, as if none was sent.
        return oauth.error_params(exc.error, exc.description, state or None, extra)

    def _redirect_error(self, redirect_uri: str, exc: SmartError, state: str | None) -> Response:
        params = {**self._error_params(exc, state), **self._iss()}
        return oauth.redirect_to_client(redirect_uri, params)

    def _error_page(self, error: str, description: str) -> Response:
        return html_response(pages.error_page(self.vendor_title, error, description), 400)

    # -- token ---------------------------------------------------------------------------------
    def token(self, request: Request) -> Response:
        try:
            presented = read_presented(request)
            token_urls = [self.token_url, f"https://{request.host}{request.path}"]
            client = self.authenticator.authenticate(presented, token_urls)
            grant_type = request.form.get("grant_type", "")
            if grant_type == AUTHORIZATION_CODE:
                body = self._authorization_code(client, request.form)
            elif grant_type == CLIENT_CREDENTIALS:
                body = self._client_credentials(client, request.form)
            else:
                raise SmartError("unsupported_grant_type", f"grant_type {grant_type!r}.")
        except SmartError as exc:
            challenge = 'Basic realm="token"' if exc.status == 401 else None
            return oauth.error_json(self._error_params(exc, None), exc.status, challenge)
        return oauth.token_json(body)

    def _authorization_code(self, client: SmartClient, form: Mapping[str, str]) -> dict[str, Any]:
        if AUTHORIZATION_CODE not in client.grant_types:
            raise SmartError("unauthorized_client", "This client may not use authorization_code.")
        try:
            grant = self.authorizations.redeem(
                form.get("code", ""),
                client.client_id,
                form.get("redirect_uri", ""),
                form.get("code_verifier"),
                require_verifier=True,  # SMART: every code, PKCE being required at authorize
            )
        except OAuthProblem as exc:
            raise _smart_error(exc) from None
        now = time.time()
        access = secrets.token_urlsafe(48)
        lifetime = int(self.quirks["expires_in"])
        with self._lock:
            self._stores.purge(now)
            self._stores.tokens[access] = AccessToken(
                client.client_id, grant.scopes, now + lifetime, grant
            )
        body: dict[str, Any] = {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": lifetime,
            "scope": " ".join(grant.scopes),
        }
        if "openid" in grant.scopes and grant.user is not None:
            body["id_token"] = self._id_token(grant, int(now))
        if grant.launch is not None or isinstance(grant.user, Patient):
            context = self.context_fields(grant)
            for name in self.quirks["omit_context"]:
                context.pop(name, None)
            body.update(context)
        body.update(self.quirks["extra_context"])
        return body

    def _id_token(self, grant: Grant, now: int) -> str:
        user = grant.user
        assert user is not None
        fhir_id = self.chart.id_of(user)
        claims = idtoken.claims(
            issuer=self.issuer,
            client_id=grant.client_id,
            subject=fhir_id,
            fhir_user=f"{grant.aud}/{grant.user_type}/{fhir_id}",
            username=self.username(user),
            nonce=grant.nonce,
            now=now,
            extra=self.id_token_extra(grant),
        )
        return idtoken.sign(self.keys, claims, self.quirks["bad_id_token"])

    def _client_credentials(self, client: SmartClient, form: Mapping[str, str]) -> dict[str, Any]:
        if client.auth_method != PRIVATE_KEY_JWT or CLIENT_CREDENTIALS not in client.grant_types:
            raise SmartError(
                "unauthorized_client",
                "Backend Services (client_credentials) needs a private_key_jwt client allowed "
                "to use it.",
            )
        requested = list(dict.fromkeys(form.get("scope", "").split()))
        if not requested:
            raise SmartError("invalid_scope", "scope is required.")
        for name in requested:
            if scope_tools.context_of(name) != "system":
                raise SmartError("invalid_scope", f"Backend Services takes system/ scopes: {name}.")
            if name not in client.scopes:
                raise SmartError("invalid_scope", f"Scope not allowed for this client: {name}.")
        granted = [s for s in requested if s not in client.grant_less]
        access = secrets.token_urlsafe(48)
        now = time.time()
        with self._lock:
            self._stores.purge(now)
            self._stores.tokens[access] = AccessToken(
                client.client_id, granted, now + BACKEND_TOKEN_LIFETIME, None
            )
        return {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": BACKEND_TOKEN_LIFETIME,
            "scope": " ".join(granted),
        }


def _persona_by_scopes(scopes: list[str], launch: Launch | None) -> str:
    if launch is not None:
        return launch.kind
    contexts = {scope_tools.context_of(s) for s in scopes} - {None}
    return "patient" if contexts == {"patient"} else "provider"


def _smart_error(exc: OAuthProblem) -> SmartError:
    return SmartError(exc.problem.error, WORDING[exc.problem])
