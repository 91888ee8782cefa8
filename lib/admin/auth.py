"""Entra ID bearer tokens for the config API: who is calling, and may they do this.

Checks, in order: a Bearer token is present (401); its signature verifies with a key from the
tenant's JWKS (the one JWKS cache type, lib/net/jwks.py: refreshed once when a `kid` is unknown,
for key rotation, at most every 30 s) (401; 503 AUTH-KEYS-UNAVAILABLE when the keys, or a new one,
cannot be had); `iss` is our tenant's v2 issuer and `tid` our tenant
(403: a valid token, but another organization); `aud` is our application (401); `exp` / `nbf`
with a small leeway (401). App roles are checked per action (403).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from lib.endpoints.actor import Actor
from lib.net.budget import unavailable
from lib.net.http import host_of
from lib.net.jwks import JwksCache, KeysUnavailable
from lib.web.errors import AppError
from lib.web.http import Request

if TYPE_CHECKING:  # the settings model is built on first use, not at cold start
    from lib.settings import Settings

LEEWAY_SECONDS = 60
MIN_REFRESH_INTERVAL = 30  # an unknown kid refreshes the keys at most this often


class AppRole(StrEnum):
    """The connector's app roles on its Entra app registration (not a launch's persona)."""

    ADMIN = "Connector.Admin"
    APPROVER = "Connector.Approver"
    READER = "Connector.Reader"


# What each role may also do: an admin reads; an approver reads.
IMPLIES = {
    AppRole.ADMIN: {AppRole.READER},
    AppRole.APPROVER: {AppRole.READER},
    AppRole.READER: set(),
}


@dataclass(frozen=True)
class Principal:
    oid: str
    name: str
    tid: str
    roles: frozenset[str] = field(default_factory=frozenset)

    @property
    def actor(self) -> Actor:
        return Actor(oid=self.oid, name=self.name)

    def has(self, role: AppRole) -> bool:
        return any(role == r or role in IMPLIES.get(AppRole(r), set()) for r in self._known_roles())

    def _known_roles(self) -> list[str]:
        return [r for r in self.roles if r in AppRole._value2member_map_]


def _challenge(error: str, description: str) -> dict[str, str]:
    return {"WWW-Authenticate": f'Bearer error="{error}", error_description="{description}"'}


class AdminAuth:
    def __init__(self, settings: Settings, jwks: JwksCache) -> None:
        """`jwks`: a cache over an `OutboundHttp`, with `min_refresh_seconds` of 30 or so."""
        self._settings = settings
        self._jwks = jwks

    def _signing_key(self, kid: str | None) -> Any:
        """The tenant's RS256 key for `kid`; None when it has no such key (after one refresh)."""
        if not kid:
            return None
        try:
            url = self._jwks.jwks_uri(self._settings.entra_issuer, None)
            return self._jwks.key_for(url, kid, "RS256", None)
        except KeysUnavailable as err:
            raise unavailable(
                "microsoft", err.reason, host=host_of(self._settings.entra_issuer),
                code="AUTH-KEYS-UNAVAILABLE",
            ) from None  # fmt: skip

    def authenticate(self, request: Request) -> Principal:
        token = _bearer(request)
        claims = self._verify(token)
        if claims.get("tid") != self._settings.entra_tenant_id:
            raise AppError("AUTH-WRONG-TENANT")
        name = claims.get("name") or claims.get("preferred_username") or claims.get("azp") or ""
        return Principal(
            oid=str(claims.get("oid") or claims.get("sub")),
            name=str(name),
            tid=claims["tid"],
            roles=frozenset(claims.get("roles") or []),
        )

    def require(self, request: Request, role: AppRole) -> Principal:
        principal = self.authenticate(request)
        if not principal.has(role):
            raise AppError("AUTH-FORBIDDEN-ROLE", f"This action needs the {role.value} role.")
        return principal

    def _verify(self, token: str) -> dict[str, Any]:
        import jwt

        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise _invalid("not a JWT") from None
        if header.get("alg") != "RS256":
            raise _invalid("unexpected algorithm")
        kid = header.get("kid") if isinstance(header.get("kid"), str) else None
        key = self._signing_key(kid)
        if key is None:
            raise _invalid("unknown signing key")
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=["RS256"],
                options={"verify_aud": False, "verify_iss": False, "require": ["exp", "iss"]},
                leeway=LEEWAY_SECONDS,
            )
        except jwt.ExpiredSignatureError:
            raise AppError(
                "AUTH-EXPIRED-TOKEN", headers=_challenge("invalid_token", "expired")
            ) from None
        except jwt.PyJWTError:
            raise _invalid("signature or times") from None
        # Tenant before audience: a token from another tenant is a 403, not a 401.
        if claims.get("iss") != self._settings.entra_issuer or "tid" not in claims:
            if claims.get("tid") and claims.get("tid") != self._settings.entra_tenant_id:
                raise AppError("AUTH-WRONG-TENANT")
            raise _invalid("issuer")
        aud = claims.get("aud")
        audiences = aud if isinstance(aud, list) else [aud]
        if not self._settings.api_audiences & {a for a in audiences if isinstance(a, str)}:
            raise AppError("AUTH-WRONG-AUDIENCE", headers=_challenge("invalid_token", "audience"))
        self._check_access_token(claims)
        return claims

    def _check_access_token(self, claims: dict[str, Any]) -> None:
        """What makes a token an access token for this API, not what an id_token may lack.

        An id_token of the same registration carries `aud` = our client id and may carry
        roles; an access token is either delegated (`scp` holding the API's scope) or app-only
        (`idtyp: app`, or `oid` = `sub`: the caller is the service principal itself).
        """
        if "nonce" in claims or claims.get("idtyp") == "id":
            raise _invalid("an id_token is not an access token")
        scp = claims.get("scp")
        if scp is not None:
            if self._settings.entra_api_scope not in str(scp).split():
                raise _invalid(f"the token lacks the {self._settings.entra_api_scope} scope")
            return
        app_only = claims.get("idtyp") == "app" or (
            claims.get("oid") is not None and claims.get("oid") == claims.get("sub")
        )
        if not app_only:
            raise _invalid("neither a delegated nor an app-only access token")


def _invalid(reason: str) -> AppError:
    return AppError("AUTH-INVALID-TOKEN", headers=_challenge("invalid_token", reason))


def _bearer(request: Request) -> str:
    value = request.headers.get("authorization", "")
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AppError(
            "AUTH-MISSING-TOKEN",
            headers={"WWW-Authenticate": 'Bearer realm="config-api"'},
        )
    return token.strip()
