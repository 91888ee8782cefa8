"""Entra ID bearer tokens for the config API: who is calling, and may they do this.

Checks, in order: a Bearer token is present (401); its signature verifies with a key from the
tenant's JWKS (refreshed once when a `kid` is unknown, for key rotation) (401); `iss` is our
tenant's v2 issuer and `tid` our tenant (403: a valid token, but another organization); `aud` is
our application (401); `exp` / `nbf` with a small leeway (401). Roles are checked per action (403).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from lib.settings import Settings
from lib.web.errors import AppError
from lib.web.http import Request

LEEWAY_SECONDS = 60
JWKS_TTL_SECONDS = 3600
MIN_REFRESH_INTERVAL = 30  # an unknown kid refreshes the keys at most this often


class Role(StrEnum):
    ADMIN = "Connector.Admin"
    APPROVER = "Connector.Approver"
    READER = "Connector.Reader"


# What each role may also do: an admin reads; an approver reads.
IMPLIES = {Role.ADMIN: {Role.READER}, Role.APPROVER: {Role.READER}, Role.READER: set()}


@dataclass(frozen=True)
class Principal:
    oid: str
    name: str
    tid: str
    roles: frozenset[str] = field(default_factory=frozenset)

    def has(self, role: Role) -> bool:
        return any(role == r or role in IMPLIES.get(Role(r), set()) for r in self._known_roles())

    def _known_roles(self) -> list[str]:
        return [r for r in self.roles if r in Role._value2member_map_]


def _challenge(error: str, description: str) -> dict[str, str]:
    return {"WWW-Authenticate": f'Bearer error="{error}", error_description="{description}"'}


class JwksCache:
    """The tenant's signing keys, fetched from its OpenID configuration."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._keys: dict[str, Any] = {}
        self._fetched_at = 0.0
        self._lock = threading.Lock()

    def key(self, kid: str | None) -> Any:
        if not self._keys or time.monotonic() - self._fetched_at > JWKS_TTL_SECONDS:
            self._refresh()
        if kid not in self._keys and time.monotonic() - self._fetched_at > MIN_REFRESH_INTERVAL:
            self._refresh()  # rotated keys: one refresh, rate-limited against kid spraying
        return self._keys.get(kid)

    def _refresh(self) -> None:
        import jwt
        import requests

        base = f"{self._settings.entra_authority_host}/{self._settings.entra_tenant_id}"
        with self._lock:
            try:
                conf = requests.get(f"{base}/v2.0/.well-known/openid-configuration", timeout=5)
                conf.raise_for_status()
                jwks = requests.get(conf.json()["jwks_uri"], timeout=5)
                jwks.raise_for_status()
                keys = jwt.PyJWKSet.from_dict(jwks.json()).keys
            except (requests.RequestException, ValueError, KeyError, jwt.PyJWTError) as exc:
                if self._keys:
                    return  # keep serving with the keys we have
                raise AppError("AUTH-KEYS-UNAVAILABLE", type(exc).__name__) from None
            self._keys = {k.key_id: k.key for k in keys if k.key_id}
            self._fetched_at = time.monotonic()


class AdminAuth:
    def __init__(self, settings: Settings, jwks: JwksCache | None = None) -> None:
        self._settings = settings
        self._jwks = jwks or JwksCache(settings)

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

    def require(self, request: Request, role: Role) -> Principal:
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
        key = self._jwks.key(header.get("kid"))
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
        if "nonce" in claims or claims.get("idtyp") == "id":
            # An id_token of the same app registration (the clinicians' sign-in) is no access
            # token: it carries `aud` = client id and may carry roles, so refuse it explicitly.
            raise _invalid("an id_token is not an access token")
        # Tenant before audience: a token from another tenant is a 403, not a 401.
        if claims.get("iss") != self._settings.entra_issuer or "tid" not in claims:
            if claims.get("tid") and claims.get("tid") != self._settings.entra_tenant_id:
                raise AppError("AUTH-WRONG-TENANT")
            raise _invalid("issuer")
        aud = claims.get("aud")
        audiences = aud if isinstance(aud, list) else [aud]
        if self._settings.entra_api_audience not in audiences:
            raise AppError("AUTH-WRONG-AUDIENCE", headers=_challenge("invalid_token", "audience"))
        return claims


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
