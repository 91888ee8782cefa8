"""Entra ID (Microsoft identity platform v2) at ``/entra/{tenant}/...``.

Authority: ``{base}/entra/{tenant}``; msal builds discovery as ``{authority}/v2.0/.well-known/
openid-configuration`` and the issuer is ``{base}/entra/{tenant id}/v2.0``.
"""

from __future__ import annotations

import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

from cryptography import x509
from werkzeug.routing import Rule
from werkzeug.utils import redirect
from werkzeug.wrappers import Request, Response

from dev.sandbox import directory
from dev.sandbox.directory import (
    APPS,
    CONNECTOR_API_AUDIENCE,
    CONNECTOR_CLIENT_ID,
    TENANT_DOMAIN,
    TENANT_ID,
    USERS,
    AppRegistration,
    DemoUser,
)
from dev.sandbox.entra import pages, tokens
from dev.sandbox.entra.clients import ACR_SECRET, ClientAuthenticator, read_credentials
from dev.sandbox.entra.errors import OAuthError
from dev.sandbox.entra.keys import KeySet, load_or_create_key
from dev.sandbox.standin import StandIn, html_response, json_response, read_json

if TYPE_CHECKING:
    from dev.sandbox.state import SandboxState

CODE_LIFETIME = 60  # seconds; Entra's codes live about a minute too
TOKEN_LIFETIME = 3600
SIGN_IN_LIFETIME = 600  # a person may take a while to pick a user
REFRESH_LIFETIME = 24 * 3600
LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "[::1]", "::1"}
_VERIFIER = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


@dataclass
class AuthRequest:
    """An authorize request waiting for the person to pick who they are."""

    app: AppRegistration
    redirect_uri: str
    scope: str
    state: str | None
    nonce: str | None
    code_challenge: str
    response_mode: str
    expires_at: float


@dataclass
class AuthCode:
    client_id: str
    redirect_uri: str
    scope: str
    nonce: str | None
    code_challenge: str
    user: DemoUser
    expires_at: float
    used: bool = False


@dataclass
class RefreshGrant:
    client_id: str
    user: DemoUser
    scope: str
    expires_at: float


@dataclass
class _Stores:
    pending: dict[str, AuthRequest] = field(default_factory=dict)
    codes: dict[str, AuthCode] = field(default_factory=dict)
    refresh: dict[str, RefreshGrant] = field(default_factory=dict)

    def purge(self, now: float) -> None:
        # Used codes are kept a little past expiry so a replay reads "already redeemed".
        self.pending = {k: v for k, v in self.pending.items() if v.expires_at > now}
        self.codes = {k: v for k, v in self.codes.items() if v.expires_at + 600 > now}
        self.refresh = {k: v for k, v in self.refresh.items() if v.expires_at > now}


class EntraStandIn(StandIn):
    name = "entra"
    title = "Entra ID (identity platform v2)"

    def __init__(self, state: SandboxState) -> None:
        self.tenant_id = TENANT_ID
        self.keys = KeySet(load_or_create_key(state.state_dir / "entra"))
        self.apps = {app.client_id: app for app in APPS}
        secrets_by_app = {
            app.client_id: state.setting(app.secret_setting, app.default_secret or "")
            for app in APPS
            if app.secret_setting
        }
        self._initial_secrets = dict(secrets_by_app)
        self.clients = ClientAuthenticator(self.apps, secrets_by_app)
        self.code_lifetime = CODE_LIFETIME
        self.token_lifetime = TOKEN_LIFETIME
        self.require_pkce = True
        self._stores = _Stores()
        self._lock = threading.Lock()
        super().__init__(state)

    def routes(self) -> list[Rule]:
        return [
            Rule(
                "/<tenant>/v2.0/.well-known/openid-configuration",
                endpoint=self.openid_configuration,
                methods=["GET"],
            ),
            Rule("/<tenant>/discovery/v2.0/keys", endpoint=self.jwks_endpoint, methods=["GET"]),
            Rule(
                "/<tenant>/oauth2/v2.0/authorize", endpoint=self.authorize, methods=["GET", "POST"]
            ),
            Rule("/<tenant>/oauth2/v2.0/token", endpoint=self.token, methods=["POST"]),
            Rule("/<tenant>/oauth2/v2.0/logout", endpoint=self.logout, methods=["GET", "POST"]),
            Rule("/<tenant>/_mint", endpoint=self.mint_endpoint, methods=["POST"]),
        ]

    # -- addresses -----------------------------------------------------------------------------
    @property
    def authority_host(self) -> str:
        """What the app's ENTRA_AUTHORITY_HOST should be: authority = host + '/' + tenant."""
        return self.url()

    @property
    def authority(self) -> str:
        return f"{self.authority_host}/{self.tenant_id}"

    @property
    def issuer(self) -> str:
        return f"{self.authority}/v2.0"

    @property
    def token_endpoint(self) -> str:
        return f"{self.authority}/oauth2/v2.0/token"

    @property
    def authorization_endpoint(self) -> str:
        return f"{self.authority}/oauth2/v2.0/authorize"

    @property
    def jwks_uri(self) -> str:
        return f"{self.authority}/discovery/v2.0/keys"

    def describe(self) -> dict[str, str]:
        return {
            "ENTRA_AUTHORITY_HOST": self.authority_host,
            "authority": self.authority,
            "openid configuration": f"{self.authority}/v2.0/.well-known/openid-configuration",
            "connector client id": CONNECTOR_CLIENT_ID,
            "admin API audience": CONNECTOR_API_AUDIENCE,
        }

    # -- Python API for tests and other stand-ins ---------------------------------------------
    def set_client_secret(self, client_id: str, secret: str) -> None:
        self.clients.secrets[client_id] = secret

    def add_client_certificate(self, client_id: str, cert_pem: bytes) -> None:
        """Register a certificate so the app may authenticate with a client_assertion JWT."""
        self.clients.add_certificate(client_id, x509.load_pem_x509_certificate(cert_pem))

    def jwks(self) -> dict[str, Any]:
        return self.keys.jwks(self.issuer)

    def rotate_key(self, keep_previous: bool = True) -> str:
        """Sign with a fresh key (returns its kid): exercises 'refresh keys on unknown kid'."""
        return self.keys.rotate(keep_previous).kid

    def validate(self, token: str, audience: str | list[str]) -> dict[str, Any]:
        """Claims of a token this stand-in issued (for other stand-ins, e.g. Graph)."""
        return self.keys.verify(token, audience, self.issuer)

    def mint(
        self,
        roles: list[str] | tuple[str, ...] = (),
        user: str | None = None,
        audience: str = CONNECTOR_API_AUDIENCE,
        expires_in: int | None = None,
        scp: str | None = None,
        client_id: str = CONNECTOR_CLIENT_ID,
    ) -> str:
        """A signed access token without a sign-in. With ``user``: a user's token carrying
        ``roles`` (and ``scp``, default the API's delegated scope); without: app-only."""
        lifetime = self.token_lifetime if expires_in is None else int(expires_in)
        now = int(time.time())
        app = self.apps.get(client_id)
        if app is None:
            raise ValueError(f"unknown client id {client_id}")
        if user is None:
            claims = tokens.app_claims(
                self.issuer, self.tenant_id, app, ACR_SECRET, audience, list(roles), now, lifetime
            )
            return self.keys.sign(claims)
        person = directory.user(user)
        if person is None:
            raise ValueError(f"unknown demo user {user!r}; known: {[u.key for u in USERS]}")
        resource = tokens.find_resource(audience)
        scope = " ".join(resource.scopes) if (scp is None and resource) else (scp or "")
        claims = tokens.user_claims(
            self.issuer,
            self.tenant_id,
            app.client_id,
            ACR_SECRET,
            person,
            audience,
            resource.app_id if resource else audience,
            scope,
            list(roles),
            now,
            lifetime,
        )
        return self.keys.sign(claims)

    def on_reset(self) -> None:
        self.code_lifetime = CODE_LIFETIME
        self.token_lifetime = TOKEN_LIFETIME
        self.require_pkce = True
        self.keys.restore()
        self.clients.reset(self._initial_secrets)

    # -- discovery -----------------------------------------------------------------------------
    def openid_configuration(self, request: Request, tenant: str) -> Response:
        if not self._known_tenant(tenant):
            return self._oauth_error(_unknown_tenant(tenant))
        a = self.authority
        return json_response(
            {
                "issuer": self.issuer,
                "authorization_endpoint": self.authorization_endpoint,
                "token_endpoint": self.token_endpoint,
                "jwks_uri": self.jwks_uri,
                "end_session_endpoint": f"{a}/oauth2/v2.0/logout",
                "userinfo_endpoint": f"{self.state.base_url}/graph/oidc/userinfo",
                "token_endpoint_auth_methods_supported": [
                    "client_secret_post",
                    "private_key_jwt",
                    "client_secret_basic",
                ],
                "response_types_supported": ["code"],
                "response_modes_supported": ["query", "fragment", "form_post"],
                "scopes_supported": sorted(tokens.OIDC_SCOPES),
                "subject_types_supported": ["pairwise"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "code_challenge_methods_supported": ["S256"],
                "grant_types_supported": [
                    "authorization_code",
                    "client_credentials",
                    "refresh_token",
                ],
                "claims_supported": [
                    "sub",
                    "iss",
                    "aud",
                    "exp",
                    "iat",
                    "nbf",
                    "name",
                    "nonce",
                    "oid",
                    "preferred_username",
                    "tid",
                    "ver",
                    "email",
                    "roles",
                ],
                "request_uri_parameter_supported": False,
                "tenant_region_scope": "NA",
                "cloud_instance_name": "microsoftonline.com",
                "msgraph_host": "graph.microsoft.com",
            }
        )

    def jwks_endpoint(self, request: Request, tenant: str) -> Response:
        if not self._known_tenant(tenant):
            return self._oauth_error(_unknown_tenant(tenant))
        return json_response(self.jwks())

    # -- authorize -----------------------------------------------------------------------------
    def authorize(self, request: Request, tenant: str) -> Response:
        if not self._known_tenant(tenant):
            return _error_page(_unknown_tenant(tenant))
        if request.method == "POST" and "request_id" in request.form:
            return self._signed_in(request)
        params = request.args if request.method == "GET" else request.form
        try:
            app, redirect_uri = self._check_client_and_redirect(params)
        except OAuthError as exc:
            return _error_page(exc)  # never redirect to an unverified address
        state = params.get("state")
        mode = params.get("response_mode", "query")
        try:
            pending = self._check_authorize(params, app, redirect_uri)
        except OAuthError as exc:
            return _redirect_result(redirect_uri, mode, _error_params(exc, state))
        return self._sign_in_or_prompt_none(params, pending)

    def _check_client_and_redirect(self, params: Any) -> tuple[AppRegistration, str]:
        app = self.apps.get(params.get("client_id", ""))
        if app is None:
            raise OAuthError(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{params.get('client_id')}' was "
                "not found in the directory.",
            )
        redirect_uri = params.get("redirect_uri", "")
        if not _redirect_allowed(app, redirect_uri):
            raise OAuthError(
                400,
                "invalid_request",
                50011,
                f"The redirect URI '{redirect_uri}' specified in the request does "
                f"not match the redirect URIs configured for '{app.client_id}'.",
            )
        return app, redirect_uri

    def _check_authorize(self, params: Any, app: AppRegistration, redirect_uri: str) -> AuthRequest:
        if params.get("response_type") != "code":
            raise OAuthError(
                400,
                "unsupported_response_type",
                700054,
                "The sandbox supports response_type 'code' only.",
            )
        challenge = params.get("code_challenge", "")
        method = params.get("code_challenge_method", "plain" if challenge else "")
        if challenge and method != "S256":
            raise OAuthError(
                400, "invalid_request", 501491, "Invalid code_challenge_method: use S256."
            )
        if not challenge and self.require_pkce:
            raise OAuthError(
                400, "invalid_request", 9002325, "Proof Key for Code Exchange (S256) is required."
            )
        scope = params.get("scope", "")
        tokens.parse_delegated_scope(scope)  # reject bad scopes now, as Entra does
        return AuthRequest(
            app=app,
            redirect_uri=redirect_uri,
            scope=scope,
            state=params.get("state"),
            nonce=params.get("nonce"),
            code_challenge=challenge,
            response_mode=params.get("response_mode", "query"),
            expires_at=time.time() + SIGN_IN_LIFETIME,
        )

    def _sign_in_or_prompt_none(self, params: Any, pending: AuthRequest) -> Response:
        hint = directory.user(params.get("login_hint", "") or "")
        if params.get("prompt") == "none":
            if hint is None:
                err = OAuthError(
                    400,
                    "login_required",
                    50058,
                    "A silent sign-in request was sent but no user is signed in.",
                )
                return _redirect_result(
                    pending.redirect_uri, pending.response_mode, _error_params(err, pending.state)
                )
            return self._issue_code(pending, hint)
        request_id = secrets.token_urlsafe(24)
        with self._lock:
            self._stores.purge(time.time())
            self._stores.pending[request_id] = pending
        page = pages.sign_in_page(
            action=urlsplit(self.authorization_endpoint).path,
            request_id=request_id,
            app_name=pending.app.display_name,
            users=USERS,
            hint=hint.key if hint else None,
        )
        return html_response(page)

    def _signed_in(self, request: Request) -> Response:
        with self._lock:
            pending = self._stores.pending.pop(request.form["request_id"], None)
        if pending is None or pending.expires_at < time.time():
            return _error_page(
                OAuthError(
                    400,
                    "invalid_request",
                    50196,
                    "This sign-in request expired or was already used; start again from the app.",
                )
            )
        person = directory.user(request.form.get("user", ""))
        if person is None:
            return _error_page(
                OAuthError(
                    400, "invalid_request", 50034, "That user account does not exist in the tenant."
                )
            )
        return self._issue_code(pending, person)

    def _issue_code(self, pending: AuthRequest, person: DemoUser) -> Response:
        code = secrets.token_urlsafe(32)
        with self._lock:
            self._stores.codes[code] = AuthCode(
                client_id=pending.app.client_id,
                redirect_uri=pending.redirect_uri,
                scope=pending.scope,
                nonce=pending.nonce,
                code_challenge=pending.code_challenge,
                user=person,
                expires_at=time.time() + self.code_lifetime,
            )
        params = {"code": code}
        if pending.state is not None:
            params["state"] = pending.state
        return _redirect_result(pending.redirect_uri, pending.response_mode, params)

    def logout(self, request: Request, tenant: str) -> Response:
        target = request.values.get("post_logout_redirect_uri", "")
        if target and urlsplit(target).hostname in LOOPBACK_HOSTS:
            return redirect(target, 302)
        return html_response(pages.signed_out_page())

    # -- token ---------------------------------------------------------------------------------
    def token(self, request: Request, tenant: str) -> Response:
        try:
            if not self._known_tenant(tenant):
                raise _unknown_tenant(tenant)
            body = self._grant(request)
        except OAuthError as exc:
            return self._oauth_error(exc)
        return json_response(body, headers=_NO_STORE)

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
        code = self._redeem(
            app, form.get("code", ""), form.get("redirect_uri", ""), form.get("code_verifier")
        )
        return self._user_tokens(
            app, acr, code.user, code.scope, code.nonce, form.get("client_info") == "1"
        )

    def _redeem(
        self, app: AppRegistration, code_value: str, redirect_uri: str, verifier: str | None
    ) -> AuthCode:
        with self._lock:
            code = self._stores.codes.get(code_value)
            _check_code(code, app, redirect_uri, verifier)
            assert code is not None
            code.used = True  # single use; a failed verifier does not burn it
            return code

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

    # -- sandbox-only minting ------------------------------------------------------------------
    def mint_endpoint(self, request: Request, tenant: str) -> Response:
        """POST {"role": "admin"} (or "roles": [...], "user", "audience", "expires_in", "scp",
        "app_only": true) -> {"access_token": ...}. Loopback only; never exists in Entra."""
        if not self._known_tenant(tenant):
            return self._oauth_error(_unknown_tenant(tenant))
        body = read_json(request)
        try:
            roles = _mint_roles(body)
            user = (
                None
                if body.get("app_only")
                else (body.get("user") or directory.ROLE_USERS.get(body.get("role", ""), "admin"))
            )
            token = self.mint(
                roles=roles,
                user=user,
                audience=body.get("audience", CONNECTOR_API_AUDIENCE),
                expires_in=body.get("expires_in"),
                scp=body.get("scp"),
            )
        except (ValueError, TypeError) as exc:
            return json_response({"error": "invalid_request", "error_description": str(exc)}, 400)
        return json_response({"token_type": "Bearer", "access_token": token}, headers=_NO_STORE)

    # -- helpers -------------------------------------------------------------------------------
    def _known_tenant(self, tenant: str) -> bool:
        return tenant.lower() in {self.tenant_id, TENANT_DOMAIN}

    def _oauth_error(self, exc: OAuthError) -> Response:
        return json_response(exc.body(), exc.status, headers=_NO_STORE)


def _mint_roles(body: dict[str, Any]) -> list[str]:
    if "roles" in body:
        roles = body["roles"]
        if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
            raise ValueError("'roles' must be a list of strings")
        return roles
    role = body.get("role", "")
    if role not in directory.ROLE_VALUES:
        raise ValueError(f"'role' must be one of {sorted(directory.ROLE_VALUES)}")
    return [directory.ROLE_VALUES[role]]


def _check_code(
    code: AuthCode | None, app: AppRegistration, redirect_uri: str, verifier: str | None
) -> None:
    if code is None:
        raise OAuthError(
            400, "invalid_grant", 70000, "The provided value for the 'code' parameter is not valid."
        )
    if code.used:
        raise OAuthError(
            400,
            "invalid_grant",
            54005,
            "OAuth2 Authorization code was already redeemed, please retry with a "
            "new valid code or use an existing refresh token.",
        )
    if code.expires_at < time.time():
        raise OAuthError(
            400,
            "invalid_grant",
            70008,
            "The provided authorization code or refresh token has expired.",
        )
    if code.client_id != app.client_id:
        raise OAuthError(400, "invalid_grant", 70000, "The code was issued to a different client.")
    if redirect_uri != code.redirect_uri:
        raise OAuthError(
            400,
            "invalid_grant",
            50148,
            "The redirect_uri does not match the one used to obtain the code.",
        )
    _check_verifier(code, verifier)


def _check_verifier(code: AuthCode, verifier: str | None) -> None:
    if not code.code_challenge:
        return
    if not verifier:
        raise OAuthError(
            400,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'code_verifier'.",
        )
    if not _VERIFIER.match(verifier) or tokens.pkce_challenge(verifier) != code.code_challenge:
        raise OAuthError(
            400,
            "invalid_grant",
            501481,
            "The Code_Verifier does not match the code_challenge supplied in "
            "the authorization request.",
        )


def _redirect_allowed(app: AppRegistration, uri: str) -> bool:
    if not uri:
        return False
    if uri in app.redirect_uris:
        return True
    parts = urlsplit(uri)
    return (
        app.allow_loopback_redirects
        and parts.scheme in ("http", "https")
        and parts.hostname in LOOPBACK_HOSTS
        and not parts.fragment
    )


def _redirect_result(redirect_uri: str, mode: str, params: dict[str, str]) -> Response:
    if mode == "form_post":
        return html_response(pages.form_post_page(redirect_uri, params))
    if mode == "fragment":
        return redirect(f"{redirect_uri}#{urlencode(params)}", 302)
    joiner = "&" if urlsplit(redirect_uri).query else "?"
    return redirect(f"{redirect_uri}{joiner}{urlencode(params)}", 302)


def _error_params(exc: OAuthError, state: str | None) -> dict[str, str]:
    params = {"error": exc.error, "error_description": f"AADSTS{exc.code}: {exc.description}"}
    if state is not None:
        params["state"] = state
    return params


def _error_page(exc: OAuthError) -> Response:
    return html_response(pages.error_page(exc.code, exc.description), exc.status)


def _unknown_tenant(tenant: str) -> OAuthError:
    return OAuthError(
        400,
        "invalid_tenant",
        90002,
        f"Tenant '{tenant}' not found. Check to make sure you have the correct "
        "tenant ID and are signing into the correct cloud.",
    )
