"""Claims of Entra v2 tokens (access tokens, app-only and delegated, and id_tokens).

Pure functions: the stand-in supplies the clock, issuer and keys.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from dev.sandbox.directory import (
    CONNECTOR_CLIENT_ID,
    GRAPH_AUDIENCE,
    GRAPH_PUBLISHER_APP_ID,
    GRAPH_PUBLISHER_OBJECT_ID,
    RESOURCES,
    AppRegistration,
    DemoUser,
    Resource,
)
from dev.sandbox.entra.errors import OAuthError
from dev.sandbox.entra.keys import b64url

OIDC_SCOPES = frozenset({"openid", "profile", "email", "offline_access"})


def find_resource(identifier: str) -> Resource | None:
    """By identifier URI, app id or audience; `api://{app id}` works as Entra allows."""
    wanted = identifier.rstrip("/").lower()
    for r in RESOURCES:
        names = {r.identifier_uri, r.app_id, r.audience, f"api://{r.app_id}"}
        if wanted in {n.rstrip("/").lower() for n in names}:
            return r
    return None


def graph() -> Resource:
    resource = find_resource(GRAPH_AUDIENCE)
    assert resource is not None
    return resource


@dataclass(frozen=True)
class ScopeRequest:
    """A delegated scope string split into OIDC scopes and one resource's permissions."""

    oidc: frozenset[str]
    resource: Resource
    names: tuple[str, ...]

    def granted(self) -> str:
        """The `scope` of the token response: full names for custom APIs, bare for Graph."""
        prefix = "" if self.resource.audience == GRAPH_AUDIENCE else self.resource.identifier_uri
        full = [f"{prefix}/{n}" if prefix else n for n in self.names]
        return " ".join(full + sorted(self.oidc - {"offline_access"}))


def parse_delegated_scope(scope: str) -> ScopeRequest:
    oidc, per_resource = _split(scope.split())
    if len(per_resource) > 1:
        raise OAuthError(
            400,
            "invalid_scope",
            28000,
            "Provided value for the input parameter scope is not valid because "
            "it contains more than one resource.",
        )
    if not per_resource:  # only openid/profile: Entra hands out a Graph token
        return ScopeRequest(frozenset(oidc), graph(), ("User.Read",))
    ((identifier, names),) = per_resource.items()
    resource = find_resource(identifier)
    if resource is None:
        raise _unknown_resource(identifier)
    if ".default" in names:
        names = [s for s in resource.scopes if s not in OIDC_SCOPES]
    unknown = [n for n in names if n not in resource.scopes]
    if unknown and resource.audience != GRAPH_AUDIENCE:  # Graph has too many to list
        raise OAuthError(
            400,
            "invalid_scope",
            65005,
            f"The application asked for scope '{unknown[0]}' that doesn't exist "
            f"on the resource '{resource.app_id}'.",
        )
    return ScopeRequest(frozenset(oidc), resource, tuple(dict.fromkeys(names)))


def _split(scopes: Iterable[str]) -> tuple[set[str], dict[str, list[str]]]:
    oidc: set[str] = set()
    per_resource: dict[str, list[str]] = {}
    for scope in scopes:
        if scope in OIDC_SCOPES:
            oidc.add(scope)
            continue
        identifier, _, name = scope.rpartition("/")
        key = identifier or GRAPH_AUDIENCE  # a bare name such as User.Read means Graph
        per_resource.setdefault(key.rstrip("/"), []).append(name)
    return oidc, per_resource


def parse_default_scope(scope: str) -> Resource:
    """client_credentials accepts exactly one `{resource}/.default`."""
    scopes = scope.split()
    if len(scopes) != 1 or not scopes[0].endswith("/.default"):
        raise OAuthError(
            400,
            "invalid_scope",
            1002012,
            f"The provided value for scope '{scope}' is not valid. Client "
            "credential flows must have a scope value with /.default suffixed "
            "to the resource identifier (application ID URI).",
        )
    identifier = scopes[0].removesuffix("/.default")
    resource = find_resource(identifier)
    if resource is None:
        raise _unknown_resource(identifier)
    return resource


def _unknown_resource(identifier: str) -> OAuthError:
    return OAuthError(
        400,
        "invalid_resource",
        500011,
        f"The resource principal named {identifier} was not found in the tenant.",
    )


def pairwise_sub(object_id: str, app_id: str) -> str:
    """Entra's `sub` differs per user and application; stable for a given pair."""
    return b64url(hashlib.sha256(f"{object_id}:{app_id}".encode()).digest())


def _common(issuer: str, tenant_id: str, audience: str, now: int, lifetime: int) -> dict:
    return {
        "aud": audience,
        "iss": issuer,
        "iat": now,
        "nbf": now,
        "exp": now + lifetime,
        "tid": tenant_id,
        "uti": secrets.token_urlsafe(16),
        "ver": "2.0",
    }


def app_claims(
    issuer: str,
    tenant_id: str,
    app: AppRegistration,
    acr: str,
    resource_audience: str,
    roles: Sequence[str],
    now: int,
    lifetime: int,
) -> dict:
    claims = _common(issuer, tenant_id, resource_audience, now, lifetime)
    claims.update(
        {
            "azp": app.client_id,
            "azpacr": acr,
            "idtyp": "app",
            "oid": app.object_id,
            "sub": app.object_id,
        }
    )
    if roles:
        claims["roles"] = list(roles)
    return claims


def graph_validation_claims(
    issuer: str,
    tenant_id: str,
    audience: str,
    now: int,
    lifetime: int,
    version: str = "2.0",
    publisher: str = GRAPH_PUBLISHER_APP_ID,
) -> dict:
    """A validationToken of Graph's rich notifications: an app-only token the publisher (Graph
    Change Tracking) got for the subscribing app (`aud`). v2.0 names the publisher in `azp`
    under the tenant's v2 issuer; v1.0 in `appid` under `https://sts.windows.net/{tenant}/`."""
    claims = _common(issuer, tenant_id, audience, now, lifetime)
    claims.update({"oid": GRAPH_PUBLISHER_OBJECT_ID, "sub": GRAPH_PUBLISHER_OBJECT_ID})
    if version == "1.0":
        claims.update({"iss": f"https://sts.windows.net/{tenant_id}/", "idp":
                       f"https://sts.windows.net/{tenant_id}/", "appid": publisher,
                       "appidacr": "2", "ver": "1.0"})  # fmt: skip
    else:
        claims.update({"azp": publisher, "azpacr": "2"})
    return claims


def user_claims(
    issuer: str,
    tenant_id: str,
    client_id: str,
    acr: str,
    user: DemoUser,
    audience: str,
    resource_app_id: str,
    scp: str,
    roles: Sequence[str],
    now: int,
    lifetime: int,
) -> dict:
    claims = _common(issuer, tenant_id, audience, now, lifetime)
    claims.update(
        {
            "azp": client_id,
            "azpacr": acr,
            "name": user.name,
            "oid": user.object_id,
            "preferred_username": user.upn,
            "sub": pairwise_sub(user.object_id, resource_app_id),
        }
    )
    if scp:
        claims["scp"] = scp
    if roles:
        claims["roles"] = list(roles)
    return claims


def id_token_claims(
    issuer: str,
    tenant_id: str,
    client_id: str,
    user: DemoUser,
    nonce: str | None,
    email: bool,
    roles: Sequence[str],
    now: int,
    lifetime: int,
) -> dict:
    claims = _common(issuer, tenant_id, client_id, now, lifetime)
    claims.update(
        {
            "name": user.name,
            "oid": user.object_id,
            "preferred_username": user.upn,
            "sub": pairwise_sub(user.object_id, client_id),
        }
    )
    if nonce:
        claims["nonce"] = nonce
    if email:
        claims["email"] = user.upn
    if roles:
        claims["roles"] = list(roles)
    return claims


def client_info(user: DemoUser, tenant_id: str) -> str:
    """What msal asks for with client_info=1: base64url JSON of uid and utid."""
    raw = json.dumps({"uid": user.object_id, "utid": tenant_id}).encode()
    return b64url(raw)


def user_roles(user: DemoUser, resource_app_id: str) -> tuple[str, ...]:
    """App roles assigned to a user; the demo assigns them on the connector API only."""
    return user.app_roles if resource_app_id == CONNECTOR_CLIENT_ID else ()
