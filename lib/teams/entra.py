"""The connector's app registration at Microsoft Entra ID, and the one msal app builder.

Graph's app-only token (graph.py) and the clinicians' one-time sign-in (lib/launch/microsoft.py)
both need an msal confidential client for the same registration; this is where it is made, so
authority handling, instance discovery and timeouts are decided once.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from lib.net.budget import bounded_session, unavailable
from lib.net.http import host_of
from lib.web.errors import AppError


def confidential_client(
    authority: str, client_id: str, secret: str, *, timeout: float | None = None
) -> Any:
    """An msal ConfidentialClientApplication with its own in-memory token cache.

    msal asks for `offline_access` with every sign-in by default; we never refresh a user's
    token (we only need who signed in), so no refresh token is ever minted for us. Its HTTP
    goes through a `bounded_session`: under a request's budget, no msal call outlasts it.
    """
    import msal  # heavy: only when Entra is first used

    with entra_serving("authority metadata", authority):  # msal fetches it here
        return msal.ConfidentialClientApplication(
            client_id,
            client_credential=secret,
            authority=authority,
            instance_discovery=False,  # our authority is exact (and local in the sandbox)
            exclude_scopes=["offline_access"],
            timeout=timeout,
            http_client=bounded_session(),
        )


@contextlib.contextmanager
def entra_serving(what: str, url: str) -> Iterator[None]:
    """msal failing to reach Entra ID (no answer, reset, too slow, 5xx) becomes
    SRV-MICROSOFT-UNAVAILABLE, logged with the host and the time; other errors pass."""
    import requests

    started = time.monotonic()
    try:
        yield
    except AppError:
        raise
    except (requests.exceptions.RequestException, OSError) as exc:
        detail = f"Entra {what}: {type(exc).__name__}"
        raise unavailable("microsoft", detail, host=host_of(url), started=started) from None


@dataclass(frozen=True)
class EntraApp:
    host: str  # ENTRA_AUTHORITY_HOST
    tenant_id: str
    client_id: str | None
    secret: str | None = field(default=None, repr=False)

    @property
    def authority(self) -> str:
        return f"{self.host}/{self.tenant_id}"

    @property
    def configured(self) -> bool:
        return bool(self.client_id and self.secret)

    def client(self, *, timeout: float | None = None) -> Any:
        return confidential_client(
            self.authority, self.client_id or "", self.secret or "", timeout=timeout
        )

    # --- a person's sign-in (auth code + PKCE through msal): the clinician's, the portal's ----
    def sign_in_flow(
        self, scopes: list[str], *, redirect_uri: str, state: str, error_code: str
    ) -> dict[str, Any]:
        """The msal flow of a new sign-in, to keep in its sign-in session; its `auth_uri` is
        where the browser goes. `error_code`: what the caller's person is told on failure."""
        return self._user_client(error_code).initiate_auth_code_flow(
            scopes, redirect_uri=redirect_uri, state=state, prompt="select_account"
        )

    def signed_in(
        self, flow: dict[str, Any], query: Mapping[str, str], *, error_code: str, what: str
    ) -> dict[str, Any]:
        """The id_token claims of a finished sign-in (msal checks the answer against its flow),
        refused unless the account is in our tenant and has an object id."""
        with entra_serving(what, self.authority):
            result = self._user_client(error_code).acquire_token_by_auth_code_flow(
                flow, dict(query)
            )
        if "error" in result:
            raise AppError(error_code, str(result.get("error"))[:60])
        claims = result.get("id_token_claims") or {}
        if claims.get("tid") != self.tenant_id or not claims.get("oid"):
            raise AppError(error_code, "The account is not in this organization.")
        return claims

    def _user_client(self, error_code: str) -> Any:
        if not self.configured:
            raise AppError(error_code, "ENTRA_CLIENT_ID / ENTRA_CLIENT_SECRET not set.")
        return self.client()  # throwaway: nothing from a person's sign-in is kept
