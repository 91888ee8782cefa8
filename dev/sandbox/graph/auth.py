"""Who is calling: the bearer token, validated by the sandbox Entra, and its permissions.

App-only tokens (client credentials) carry application permissions in ``roles``; delegated
tokens (a signed-in user) carry ``scp``. Each Graph call names the permissions that allow it, as
the "Permissions" table of its Graph documentation page does.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import jwt
from werkzeug.wrappers import Request

from dev.sandbox.directory import GRAPH_APP_ID, GRAPH_AUDIENCE, TENANT_ID
from dev.sandbox.graph.errors import GraphError


@dataclass(frozen=True)
class Caller:
    claims: dict[str, Any]

    @property
    def app_only(self) -> bool:
        return self.claims.get("idtyp") == "app" or "scp" not in self.claims

    @property
    def roles(self) -> frozenset[str]:
        return frozenset(self.claims.get("roles") or ())

    @property
    def scopes(self) -> frozenset[str]:
        return frozenset(str(self.claims.get("scp") or "").split())

    @property
    def app_id(self) -> str:
        return str(self.claims.get("azp") or self.claims.get("appid") or "")

    @property
    def user_oid(self) -> str | None:
        """The signed-in user of a delegated token; None for app-only."""
        return None if self.app_only else self.claims.get("oid")

    def require(
        self,
        application: Iterable[str],
        delegated: Iterable[str] = (),
        code: str = "Forbidden",
        message: str = "Insufficient privileges to complete the operation.",
    ) -> None:
        """403 unless the token holds one of the permissions allowing this call."""
        held = self.roles if self.app_only else self.scopes
        if held.isdisjoint(application if self.app_only else delegated):
            raise GraphError(403, code, message)


def authenticate(request: Request, entra: Any | None) -> Caller:
    """The caller of a Graph request, or a 401 ``InvalidAuthenticationToken``."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise _invalid("Access token is empty.")
    if entra is None:
        raise _invalid("Access token validation failure (no Entra stand-in is mounted).")
    try:
        claims = entra.validate(token, [GRAPH_AUDIENCE, GRAPH_APP_ID])
    except jwt.ExpiredSignatureError:
        raise _invalid("Lifetime validation failed, the token is expired.") from None
    except jwt.InvalidAudienceError:
        raise _invalid("Access token validation failure. Invalid audience.") from None
    except jwt.InvalidTokenError:
        raise _invalid("Access token validation failure.") from None
    if claims.get("tid") != TENANT_ID:
        raise _invalid("Access token validation failure. Invalid tenant.")
    return Caller(claims)


def _invalid(message: str) -> GraphError:
    return GraphError(401, "InvalidAuthenticationToken", message)
