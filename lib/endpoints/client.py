"""One endpoint as a SMART client: everything the launch and the approval ask of its EHR.

`EndpointClient` owns, for one endpoint: whether launches may use it, its discovery (cached and
pinned to the hosts recorded at validation), the scopes each sign-in asks for, the authorize
request, the token-endpoint authentication, code redemption with id_token verification, and a
FHIR read with the launch's token. SMART Backend Services (write-back) builds on the same
object: `client_auth` and the pinned token endpoint.

An EHR that does not serve (no answer within the budget, a reset, 5xx / 429 past the retries)
at any of these steps is SRV-EHR-UNAVAILABLE (`_ehr_serving`): a launch says "the EHR is not
answering", never a discovery or sign-in problem, which it is not. Validation (the config API)
calls discovery itself and keeps the DISC-* codes, which describe configuration.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol
from urllib.parse import urlencode

from lib.ehr.profiles import Persona, VendorProfile, profile_for
from lib.endpoints.models import ClientSecretBasicConfig, Endpoint
from lib.endpoints.secrets import SECRET_SETTING
from lib.net.budget import note_success, unavailable
from lib.net.http import NotServing, OutboundHttp, host_of
from lib.settings import setting_value
from lib.signin.sessions import SignInSession
from lib.smart import client_auth, scopes
from lib.smart.discovery import Discovery, discover
from lib.smart.id_token import IdTokenVerifier
from lib.smart.keys import KeySet, SigningKey
from lib.smart.pkce import challenge_s256
from lib.smart.tokens import TokenResponse, exchange_code
from lib.web.errors import AppError

log = logging.getLogger(__name__)

# What a sign-in at the EHR is for: a launch (per persona) or an approver proving access.
Purpose = Persona | Literal["approval"]


class OAuthServer(Protocol):
    """Where a code is redeemed: a discovery document, or what validation recorded of it."""

    token_endpoint: str | None
    issuer: str | None
    jwks_uri: str | None


def key_for(keys: KeySet | None, alg: str) -> SigningKey | None:
    """Our signing key for an algorithm (RS384 or ES384), or None."""
    return next((k for k in keys.keys if k.alg == alg), None) if keys else None


def scopes_for(endpoint: Endpoint, purpose: Purpose) -> list[str]:
    """What a sign-in asks for: SMART v2 scopes where the server declares `permission-v2`."""
    v2 = bool(endpoint.validation and endpoint.validation.permission_v2)
    if purpose == "approval":
        return scopes.approval_scopes()
    if purpose == "provider":
        return scopes.provider_launch_scopes(v2=v2)
    return scopes.patient_launch_scopes(v2=v2)


@contextlib.contextmanager
def _ehr_serving(what: str, host: str) -> Iterator[None]:
    """A `NotServing` inside becomes SRV-EHR-UNAVAILABLE, logged with the host and the time."""
    started = time.monotonic()
    try:
        yield
    except NotServing as err:
        detail = f"{what}: {err.detail or err.code}"
        raise unavailable("ehr", detail, host=host, started=started) from None


@dataclass(frozen=True)
class SmartDeps:
    """What every endpoint client shares: one outbound HTTP, one JWKS cache, our keys."""

    http: OutboundHttp
    id_tokens: IdTokenVerifier
    keys: KeySet | None

    def client(self, endpoint: Endpoint) -> EndpointClient:
        return EndpointClient(endpoint, self)


class EndpointClient:
    def __init__(self, endpoint: Endpoint, deps: SmartDeps) -> None:
        self.endpoint = endpoint
        self.profile: VendorProfile = profile_for(endpoint.vendor)
        self._deps = deps

    @property
    def pinned_hosts(self) -> frozenset[str] | None:
        validation = self.endpoint.validation
        return validation.pinned_hosts.all() if validation and validation.pinned_hosts else None

    def discovery(self) -> Discovery:
        """Cached discovery that still names the hosts recorded when the endpoint was validated."""
        base = self.endpoint.fhir_base_url
        with _ehr_serving("discovery", host_of(base)):
            found = discover(self._deps.http, base)
            pinned = self.endpoint.validation.pinned_hosts if self.endpoint.validation else None
            if pinned is not None and found.hosts != pinned:
                found = discover(self._deps.http, base, use_cache=False)  # a stale cache?
                if found.hosts != pinned:
                    raise AppError("DISC-HOSTS-MOVED")
        return found

    # --- the sign-in -----------------------------------------------------------------------------
    def authorize_params(
        self, session: SignInSession, purpose: Purpose, **extra: str
    ) -> dict[str, str]:
        """The authorize request's parameters (PKCE S256, nonce, state = the session key)."""
        return {
            "response_type": "code",
            "client_id": self.endpoint.client_id,
            "redirect_uri": session.redirect_uri,
            **extra,
            "scope": scopes.join(scopes_for(self.endpoint, purpose)),
            "state": session.row_key,
            "code_challenge": challenge_s256(session.code_verifier),
            "code_challenge_method": "S256",
            "nonce": session.nonce,
        }

    def approval_authorize_url(self, session: SignInSession) -> str:
        """A standalone sign-in at the authorize URL recorded by validation (F3)."""
        validation = self.endpoint.validation
        if validation is None or not validation.authorize_endpoint:
            raise AppError("CFG-NOT-APPROVABLE", "Validate the endpoint first.")
        params = self.authorize_params(session, "approval", aud=self.endpoint.fhir_base_url)
        return f"{validation.authorize_endpoint}?{urlencode(params)}"

    def code_from(self, query: Mapping[str, str]) -> str:
        """The code of the EHR's answer at our callback, after the RFC 9207 mix-up check.

        An `iss`, when the EHR sends one, must be the issuer we sent the user to (or, with none
        recorded, a pinned host); the FHIR base is never taken from it. A server that declared
        `authorization_response_iss_parameter_supported` at validation must send it.
        """
        iss = query.get("iss")
        promised = bool(self.endpoint.validation and self.endpoint.validation.iss_parameter)
        if (iss and not self._issuer_matches(iss)) or (promised and not iss):
            raise AppError("LAUNCH-CALLBACK-ISS")
        code = query.get("code")
        if not code:
            raise AppError("LAUNCH-EHR-ERROR", "The EHR sent neither a code nor an error.")
        return code

    def _issuer_matches(self, iss: str) -> bool:
        validation = self.endpoint.validation
        if validation and validation.issuer:
            return iss.rstrip("/") == validation.issuer.rstrip("/")
        return host_of(iss) in (self.pinned_hosts or set())

    def client_auth(self) -> client_auth.ClientAuth:
        """How we authenticate at the token endpoint; a missing secret or key says which."""
        config = self.endpoint.client_auth
        if isinstance(config, ClientSecretBasicConfig):
            if not re.fullmatch(SECRET_SETTING, config.secret_setting):  # named before the rule
                raise AppError("CFG-SECRET-NAME-REFUSED")
            secret = setting_value(config.secret_setting)
            if not secret:
                raise AppError("CFG-SECRET-SETTING-MISSING", f"{config.secret_setting} is not set.")
            return client_auth.ClientSecretBasic(self.endpoint.client_id, secret)
        key = key_for(self._deps.keys, config.alg)
        if key is None:
            raise AppError("CFG-SIGNING-KEY-MISSING", f"No {config.alg} key is configured.")
        return client_auth.PrivateKeyJwt(self.endpoint.client_id, key)

    def redeem(
        self,
        session: SignInSession,
        code: str,
        *,
        server: OAuthServer | None = None,
        hosts: Collection[str] | None = None,
    ) -> tuple[TokenResponse, dict[str, Any]]:
        """The EHR's tokens for `code` and the verified id_token claims.

        `server`: where to redeem; by default the pinned discovery (a launch). The approval
        passes what validation recorded, with the pinned hosts.
        """
        if server is None:
            found = self.discovery()
            server, hosts = found.config, found.hosts.all()
        auth = self.client_auth()
        with _ehr_serving("token", host_of(server.token_endpoint or "")):
            token = exchange_code(
                self._deps.http,
                server.token_endpoint,
                code,
                session.redirect_uri,
                session.code_verifier,
                auth,
                allowed_hosts=hosts,
            )
        if not token.id_token:
            raise AppError("TOKEN-ID-TOKEN-INVALID", "The EHR returned no id_token.")
        with _ehr_serving("id_token keys", host_of(server.jwks_uri or server.issuer or "")):
            claims = self._deps.id_tokens.verify(
                token.id_token,
                client_id=self.endpoint.client_id,
                nonce=session.nonce,
                issuer=server.issuer,
                jwks_uri=server.jwks_uri,
                pinned_hosts=hosts,
            )
        note_success("ehr")
        return token, claims

    # --- FHIR ----------------------------------------------------------------------------------
    def read(self, token: TokenResponse, resource_type: str, fhir_id: str) -> dict[str, Any]:
        """One FHIR read with the launch's token; {} when it fails (a launch loses only detail)."""
        found = self._get(token, f"{resource_type}/{fhir_id}")
        return found if found.get("resourceType") == resource_type else {}

    def search_one(
        self, token: TokenResponse, resource_type: str, params: Mapping[str, str]
    ) -> dict[str, Any]:
        """The first `resource_type` a FHIR search finds with the launch's token; {} if none."""
        bundle = self._get(token, f"{resource_type}?{urlencode(params)}")
        for entry in bundle.get("entry") or []:
            resource = entry.get("resource") if isinstance(entry, dict) else None
            if isinstance(resource, dict) and resource.get("resourceType") == resource_type:
                return resource
        return {}

    def _get(self, token: TokenResponse, path: str) -> dict[str, Any]:
        """A FHIR GET. An error answer costs the launch only detail ({}); no answer at all (the
        budget spent on it) is SRV-EHR-UNAVAILABLE: nothing would be left for the meeting."""
        with _ehr_serving("FHIR read", host_of(self.endpoint.fhir_base_url)):
            try:
                resp = self._deps.http.get(
                    f"{self.endpoint.fhir_base_url}/{path}",
                    headers={
                        "Authorization": f"Bearer {token.access_token}",
                        "Accept": "application/fhir+json",
                    },
                )
                body = resp.json() if resp.status == 200 else {}
            except NotServing:
                raise
            except AppError as err:
                log.info(
                    "FHIR read failed",
                    extra={"error_code": err.code, "endpoint": self.endpoint.id},
                )
                return {}
        return body if isinstance(body, dict) else {}
