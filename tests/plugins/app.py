"""The real connector on the local host, wired to Azurite and the sandbox (session-scoped)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import requests

from dev.procs import free_port
from dev.settings import generate_signing_keys
from tests.helpers import settings_env

EPIC_SECRET = "epic-e2e-secret-0123456789"
CERNER_SECRET = "cerner-e2e-secret-0123456789"


@dataclass
class App:
    url: str
    host: object
    sandbox: object
    storage: str  # the app's storage connection string (Azurite)

    def api(self, path: str) -> str:
        return f"{self.url}/api/{path.lstrip('/')}"

    def token(self, role: str, user: str | None = None, **kw) -> str:
        users = {"admin": "admin", "approver": "approver", "reader": "reader"}
        roles = {"admin": "Connector.Admin", "approver": "Connector.Approver",
                 "reader": "Connector.Reader"}  # fmt: skip
        return self.sandbox.entra.mint(roles=[roles[role]], user=user or users[role], **kw)

    def session(self, role: str | None = None, user: str | None = None) -> requests.Session:
        s = requests.Session()
        s.trust_env = False
        if role:
            s.headers["Authorization"] = f"Bearer {self.token(role, user)}"
        return s


def app_env(storage: str, sandbox, url: str, prefix: str) -> dict[str, str]:
    """The app's settings against this Azurite and sandbox (also used by bench/launch.py)."""
    return settings_env(
        AzureWebJobsStorage=storage,
        CONNECTOR_PUBLIC_URL=url,
        ENTRA_AUTHORITY_HOST=f"{sandbox.url}/entra",
        REQUESTS_CA_BUNDLE=str(sandbox.ca_file),
        CONNECTOR_SIGNING_KEYS=generate_signing_keys(),
        EPIC_CLIENT_SECRET=EPIC_SECRET,
        CERNER_CLIENT_SECRET=CERNER_SECRET,
        CONNECTOR_TABLE_PREFIX=prefix,
        GRAPH_BASE_URL=f"{sandbox.url}/graph",
    )


@pytest.fixture(scope="session")
def app(start_host, azurite, sandbox, tmp_path_factory) -> App:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    empty = tmp_path_factory.mktemp("app") / "local.settings.json"
    empty.write_text('{"Values": {}}')
    env = app_env(azurite.connection_string, sandbox, url, "e2e")
    sandbox_point_ehrs_at(sandbox, url)
    host = start_host(".", env=env, settings=empty, port=port)
    return App(url, host, sandbox, azurite.connection_string)


def sandbox_point_ehrs_at(sandbox, app_url: str) -> None:
    """Tell the sandbox EHRs our redirect URI, JWKS URL and client secrets for this run."""
    sandbox.configure_connector(
        redirect_uri=f"{app_url}/api/launch/callback",
        jwks_url=f"{app_url}/api/.well-known/jwks.json",
        epic_secret=EPIC_SECRET,
        cerner_secret=CERNER_SECRET,
        launch_base=f"{app_url}/api/launch",
    )
