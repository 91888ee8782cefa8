"""The connector's app registration at Microsoft Entra ID, and the one msal app builder.

Graph's app-only token (graph.py) and the clinicians' one-time sign-in (lib/launch/microsoft.py)
both need an msal confidential client for the same registration; this is where it is made, so
authority handling, instance discovery and timeouts are decided once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


def confidential_client(
    authority: str, client_id: str, secret: str, *, timeout: float | None = None
) -> Any:
    """An msal ConfidentialClientApplication with its own in-memory token cache.

    msal asks for `offline_access` with every sign-in by default; we never refresh a user's
    token (we only need who signed in), so no refresh token is ever minted for us.
    """
    import msal  # heavy: only when Entra is first used

    return msal.ConfidentialClientApplication(
        client_id,
        client_credential=secret,
        authority=authority,
        instance_discovery=False,  # our authority is exact (and local in the sandbox)
        exclude_scopes=["offline_access"],
        timeout=timeout,
    )


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
