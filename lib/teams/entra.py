"""The connector's app registration at Microsoft Entra ID, and the one msal app builder.

Graph's app-only token (graph.py) and the clinicians' one-time sign-in (lib/launch/microsoft.py)
both need an msal confidential client for the same registration; this is where it is made, so
authority handling, instance discovery and timeouts are decided once.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
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
