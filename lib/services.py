"""The composition root: every service, built once per process from the settings.

Triggers call `services()`; tests build their own `Services` against Azurite and the sandbox.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lib.settings import Settings, get_settings
from lib.web.errors import AppError

if TYPE_CHECKING:
    from lib.admin.approval import ApprovalService
    from lib.admin.auth import AdminAuth
    from lib.admin.endpoints import EndpointService
    from lib.sessions import SessionStore
    from lib.smart.http import OutboundHttp
    from lib.smart.id_token import IdTokenVerifier
    from lib.smart.keys import KeySet
    from lib.storage import TableStore
    from lib.teams.meetings import MeetingService
    from lib.visits.store import VisitStore


@dataclass
class Services:
    settings: Settings
    store: TableStore
    http: OutboundHttp
    keys: KeySet | None
    auth: AdminAuth
    sessions: SessionStore
    endpoints: EndpointService
    approvals: ApprovalService
    id_tokens: IdTokenVerifier
    visits: VisitStore

    @functools.cached_property
    def meetings(self) -> MeetingService:
        """Built on first use: msal and the Graph client are not needed by the config API."""
        from lib.teams.graph import GraphClient
        from lib.teams.meetings import MeetingService

        s = self.settings
        if not s.entra_client_id or s.entra_client_secret is None:
            raise AppError("GRAPH-FAILED", "ENTRA_CLIENT_ID / ENTRA_CLIENT_SECRET are not set.")
        graph = GraphClient(
            authority=f"{s.entra_authority_host}/{s.entra_tenant_id}",
            client_id=s.entra_client_id or "",
            client_secret=s.entra_client_secret.get_secret_value() if s.entra_client_secret else "",
            graph_base=s.graph_base_url,
        )
        return MeetingService(graph, join_hosts=s.join_hosts)


def build(settings: Settings, store: TableStore | None = None) -> Services:
    from lib.admin.approval import ApprovalService
    from lib.admin.auth import AdminAuth
    from lib.admin.endpoints import EndpointService
    from lib.admin.validation import validate_record
    from lib.sessions import SessionStore
    from lib.smart.http import OutboundHttp
    from lib.smart.id_token import IdTokenVerifier
    from lib.storage import default_store
    from lib.visits.store import VisitStore

    store = store or default_store()
    http = OutboundHttp(local_mode=settings.local_mode)
    keys = load_keys(settings)
    sessions = SessionStore(store)
    endpoints = EndpointService(store, lambda record: validate_record(record, http, keys))
    id_tokens = IdTokenVerifier(http)  # one JWKS cache for approvals and launches
    return Services(
        settings=settings,
        store=store,
        http=http,
        keys=keys,
        auth=AdminAuth(settings),
        sessions=sessions,
        endpoints=endpoints,
        approvals=ApprovalService(endpoints, sessions, http, keys, id_tokens),
        id_tokens=id_tokens,
        visits=VisitStore(store),
    )


def load_keys(settings: Settings) -> KeySet | None:
    from lib.smart.keys import KeySet

    if settings.signing_keys is None or not settings.signing_keys.get_secret_value().strip():
        return None
    return KeySet.from_pems(split_pem(settings.signing_keys.get_secret_value()))


def split_pem(text: str) -> list[str]:
    """PEM blocks of a setting with several keys (literal \\n accepted, as app settings do)."""
    import re

    text = text.replace("\\n", "\n")
    return re.findall(r"-----BEGIN [A-Z ]+-----.+?-----END [A-Z ]+-----", text, flags=re.S)


@functools.cache
def services() -> Services:
    return build(get_settings())
