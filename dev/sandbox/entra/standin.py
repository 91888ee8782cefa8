"""Entra ID (Microsoft identity platform v2) at ``/entra/{tenant}/...``.

Authority: ``{base}/entra/{tenant}``; msal builds discovery as ``{authority}/v2.0/.well-known/
openid-configuration`` and the issuer is ``{base}/entra/{tenant id}/v2.0``.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

import jwt as pyjwt
from cryptography import x509
from werkzeug.routing import Rule
from werkzeug.wrappers import Request, Response

from dev.sandbox import directory, oauth
from dev.sandbox.directory import (
    APPS,
    CONNECTOR_API_AUDIENCE,
    CONNECTOR_CLIENT_ID,
    GRAPH_PUBLISHER_APP_ID,
    TENANT_DOMAIN,
    TENANT_ID,
    USERS,
)
from dev.sandbox.entra import tokens
from dev.sandbox.entra.authorize import AuthorizeSurface, AuthRequest, CodeGrant
from dev.sandbox.entra.clients import ACR_SECRET, ClientAuthenticator
from dev.sandbox.entra.errors import OAuthError, unknown_tenant
from dev.sandbox.entra.keys import KeySet, generate_key, load_or_create_key
from dev.sandbox.entra.token import Stores, TokenSurface
from dev.sandbox.oauth import CODE_LIFETIME, AuthorizationStore
from dev.sandbox.standin import StandIn, json_response, read_json

if TYPE_CHECKING:
    from dev.sandbox.state import SandboxState

TOKEN_LIFETIME = 3600
GRAPH_VALIDATION_LIFETIME = 8 * 3600  # Graph's validation tokens live for hours, and repeat


class EntraStandIn(AuthorizeSurface, TokenSurface, StandIn):
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
        self._stores = Stores()
        self.authorizations: AuthorizationStore[AuthRequest, CodeGrant] = AuthorizationStore()
        self._lock = threading.Lock()
        super().__init__(state)

    def dispatch(self, request: Request, path: str) -> Response:
        response = super().dispatch(request, path)
        if response.mimetype == "text/html":
            # Like login.microsoftonline.com: the sign-in pages refuse to be framed, so an app
            # opened in an EHR iframe cannot show them there.
            response.headers["X-Frame-Options"] = "DENY"
            response.headers["Content-Security-Policy"] = "frame-ancestors 'none'"
        return response

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
            "origin": self.origin,
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

    def graph_validation_token(
        self,
        audience: str,
        *,
        version: str = "2.0",
        expires_in: int = GRAPH_VALIDATION_LIFETIME,
        publisher: str = GRAPH_PUBLISHER_APP_ID,
        forged: bool = False,
    ) -> str:
        """The validationToken Graph puts on rich notifications for the app `audience`: signed
        by this tenant's active key (``forged``: by a key of nobody's, under the active kid)."""
        now = int(time.time())
        claims = tokens.graph_validation_claims(
            self.issuer, self.tenant_id, audience, now, expires_in, version, publisher
        )
        if not forged:
            return self.keys.sign(claims)
        kid = self.keys.active.kid
        return pyjwt.encode(claims, generate_key().private_key, algorithm="RS256",
                            headers={"kid": kid, "x5t": kid, "typ": "JWT"})  # fmt: skip

    def on_reset(self) -> None:
        self.code_lifetime = CODE_LIFETIME
        self.token_lifetime = TOKEN_LIFETIME
        self.require_pkce = True
        self.keys.restore()
        self.clients.reset(self._initial_secrets)

    # -- discovery -----------------------------------------------------------------------------
    def openid_configuration(self, request: Request, tenant: str) -> Response:
        if not self._known_tenant(tenant):
            return self._oauth_error(unknown_tenant(tenant))
        a = self.authority
        return json_response(
            {
                "issuer": self.issuer,
                "authorization_endpoint": self.authorization_endpoint,
                "token_endpoint": self.token_endpoint,
                "jwks_uri": self.jwks_uri,
                "end_session_endpoint": f"{a}/oauth2/v2.0/logout",
                "userinfo_endpoint": self.url_of("graph", "/oidc/userinfo"),
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
            return self._oauth_error(unknown_tenant(tenant))
        return json_response(self.jwks())

    # -- sandbox-only minting ------------------------------------------------------------------
    def mint_endpoint(self, request: Request, tenant: str) -> Response:
        """POST {"role": "admin"} (or "roles": [...], "user", "audience", "expires_in", "scp",
        "app_only": true) -> {"access_token": ...}. Loopback only; never exists in Entra."""
        if not self._known_tenant(tenant):
            return self._oauth_error(unknown_tenant(tenant))
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
        return oauth.token_json({"token_type": "Bearer", "access_token": token})

    # -- helpers -------------------------------------------------------------------------------
    def _known_tenant(self, tenant: str) -> bool:
        return tenant.lower() in {self.tenant_id, TENANT_DOMAIN}

    def _oauth_error(self, exc: OAuthError) -> Response:
        return oauth.error_json(exc.body(), exc.status)


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
