"""Entra's token endpoint: client credentials, authorization code (PKCE) and refresh token
grants, each after the client proved itself (clients.py)."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from werkzeug.wrappers import Request, Response

from dev.sandbox import oauth
from dev.sandbox.directory import (
    AppRegistration,
    DemoUser,
)
from dev.sandbox.entra import tokens
from dev.sandbox.entra.authorize import CodeGrant
from dev.sandbox.entra.clients import read_credentials
from dev.sandbox.entra.errors import OAuthError, from_problem, unknown_tenant
from dev.sandbox.oauth import OAuthProblem

REFRESH_LIFETIME = 24 * 3600


@dataclass
class RefreshGrant:
    client_id: str
    user: DemoUser
    scope: str
    expires_at: float


@dataclass
class Stores:
    """Refresh tokens (pending requests and codes: the shared core, dev/sandbox/oauth.py)."""

    refresh: dict[str, RefreshGrant] = field(default_factory=dict)

    def purge(self, now: float) -> None:
        self.refresh = {k: v for k, v in self.refresh.items() if v.expires_at > now}


class TokenSurface:
    """Mixed into EntraStandIn."""

    # -- token ---------------------------------------------------------------------------------
    def token(self, request: Request, tenant: str) -> Response:
        try:
            if not self._known_tenant(tenant):
                raise unknown_tenant(tenant)
            body = self._grant(request)
        except OAuthError as exc:
            return self._oauth_error(exc)
        return oauth.token_json(body)

    def _grant(self, request: Request) -> dict[str, Any]:
        creds = read_credentials(request)
        app, acr = self.clients.authenticate(creds, [self.token_endpoint])
        grant = request.form.get("grant_type", "")
        if grant == "client_credentials":
            return self._client_credentials(app, acr, request.form.get("scope", ""))
        if grant == "authorization_code":
            return self._authorization_code(app, acr, request.form)
        if grant == "refresh_token":
            return self._refresh(app, acr, request.form)
        raise OAuthError(
            400,
            "unsupported_grant_type",
            70003,
            f"The app requested an unsupported grant type '{grant}'.",
        )

    def _client_credentials(self, app: AppRegistration, acr: str, scope: str) -> dict[str, Any]:
        if app.is_public:
            raise OAuthError(
                401,
                "invalid_client",
                7000218,
                "The request body must contain the following parameter: "
                "'client_assertion' or 'client_secret'.",
            )
        resource = tokens.parse_default_scope(scope)
        roles = app.app_role_grants.get(resource.app_id, ())
        claims = tokens.app_claims(
            self.issuer,
            self.tenant_id,
            app,
            acr,
            resource.audience,
            roles,
            int(time.time()),
            self.token_lifetime,
        )
        return self._bearer(self.keys.sign(claims))

    def _authorization_code(self, app: AppRegistration, acr: str, form: Any) -> dict[str, Any]:
        try:
            grant: CodeGrant = self.authorizations.redeem(
                form.get("code", ""),
                app.client_id,
                form.get("redirect_uri", ""),
                form.get("code_verifier"),
                require_verifier=False,  # Entra: only codes issued with a code_challenge
            )
        except OAuthProblem as exc:
            raise from_problem(exc) from None
        return self._user_tokens(
            app, acr, grant.user, grant.scope, grant.nonce, form.get("client_info") == "1"
        )

    def _refresh(self, app: AppRegistration, acr: str, form: Any) -> dict[str, Any]:
        with self._lock:
            grant = self._stores.refresh.get(form.get("refresh_token", ""))
        if grant is None or grant.expires_at < time.time() or grant.client_id != app.client_id:
            raise OAuthError(
                400, "invalid_grant", 70000, "The provided value for 'refresh_token' is not valid."
            )
        scope = form.get("scope") or grant.scope
        return self._user_tokens(app, acr, grant.user, scope, None, form.get("client_info") == "1")

    def _user_tokens(
        self,
        app: AppRegistration,
        acr: str,
        person: DemoUser,
        scope: str,
        nonce: str | None,
        want_client_info: bool,
    ) -> dict[str, Any]:
        request = tokens.parse_delegated_scope(scope)
        now, resource = int(time.time()), request.resource
        access = tokens.user_claims(
            self.issuer,
            self.tenant_id,
            app.client_id,
            acr,
            person,
            resource.audience,
            resource.app_id,
            " ".join(request.names),
            tokens.user_roles(person, resource.app_id),
            now,
            self.token_lifetime,
        )
        body = self._bearer(self.keys.sign(access), scope=request.granted())
        if "openid" in request.oidc:
            id_claims = tokens.id_token_claims(
                self.issuer,
                self.tenant_id,
                app.client_id,
                person,
                nonce,
                "email" in request.oidc,
                tokens.user_roles(person, app.client_id),
                now,
                self.token_lifetime,
            )
            body["id_token"] = self.keys.sign(id_claims)
        if "offline_access" in request.oidc:
            body["refresh_token"] = self._new_refresh_token(app, person, scope)
        if want_client_info:
            body["client_info"] = tokens.client_info(person, self.tenant_id)
        return body

    def _new_refresh_token(self, app: AppRegistration, person: DemoUser, scope: str) -> str:
        value = secrets.token_urlsafe(48)
        with self._lock:
            self._stores.purge(time.time())
            self._stores.refresh[value] = RefreshGrant(
                app.client_id, person, scope, time.time() + REFRESH_LIFETIME
            )
        return value

    def _bearer(self, access_token: str, scope: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "token_type": "Bearer",
            "expires_in": self.token_lifetime,
            "ext_expires_in": self.token_lifetime,
            "access_token": access_token,
        }
        if scope is not None:
            body["scope"] = scope
        return body
