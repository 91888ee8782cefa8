"""The real connector on the local host, wired to Azurite and the sandbox (session-scoped).

The wiring (the app's settings, pointing the sandbox EHRs at it, launching the host) lives in
dev/stack.py, shared with `make run` and bench/."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
import requests

from dev.stack import start_app


@dataclass
class App:
    url: str
    host: object
    sandbox: object
    storage: str  # the app's storage connection string (Azurite)
    env: dict[str, str] = field(default_factory=dict)  # the app's settings

    @property
    def verify(self) -> str:
        """For a bare ``requests`` call to the app: its certificate is from the sandbox CA."""
        return str(self.sandbox.ca_file)

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
        s.verify = str(self.sandbox.ca_file)  # the app's https certificate is from the sandbox CA
        if role:
            s.headers["Authorization"] = f"Bearer {self.token(role, user)}"
        return s


@pytest.fixture(scope="session")
def app(azurite, sandbox, tmp_path_factory) -> Iterator[App]:
    folder = tmp_path_factory.mktemp("app")
    host, env = start_app(azurite.connection_string, sandbox, folder, "e2e")
    yield App(host.url, host, sandbox, azurite.connection_string, env)
    host.stop()
