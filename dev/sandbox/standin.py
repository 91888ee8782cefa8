"""The plug-in contract for stand-ins.

A stand-in is a subclass of ``StandIn`` with a ``name`` (its path prefix: ``/entra``, ``/graph``,
and its line in dev/sandbox/origins.py: its own address, port and certificate) and a
``routes()`` list of werkzeug ``Rule``s whose endpoints are bound methods taking
``(request, **url_values)`` and returning a ``Response``. Rules are written *without* the prefix.
Any module under ``dev/sandbox/`` that defines such a subclass is mounted automatically, so
adding a stand-in never means editing the server. Journal, latency and faults are applied by
the server around every route; a stand-in only speaks its protocol.

A stand-in may also offer sandbox-only controls (mint a launch, register a client, flip a
quirk) through ``control_routes()``: they are mounted under ``/_sandbox/{name}/`` by the control
panel (on the control origin and on every party's), so, like every control call, they are never
journaled, delayed or faulted.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

if TYPE_CHECKING:
    from dev.sandbox.state import SandboxState

Handler = Callable[..., Response]


class StandIn:
    name: ClassVar[str] = ""  # path prefix without slashes; empty marks an abstract base
    title: ClassVar[str] = ""  # one line for the index page and the CLI
    # True for a party whose real API sits at the root of its host (Communication Services:
    # /sms, and its SDKs sign the host and path): its origin routes every path to it.
    serves_root: ClassVar[bool] = False

    def __init__(self, state: SandboxState) -> None:
        self.state = state
        self.url_map = Map(self.routes(), strict_slashes=False, merge_slashes=False)
        self.control_map = Map(self.control_routes(), strict_slashes=False, merge_slashes=False)

    # -- to override -------------------------------------------------------------------------
    def routes(self) -> list[Rule]:
        raise NotImplementedError

    def control_routes(self) -> list[Rule]:
        """Sandbox-only controls, mounted at ``/_sandbox/{name}/...`` (none by default)."""
        return []

    def configure_connector(self, **where: Any) -> None:
        """Where our app runs (``redirect_uri``, ``jwks_url``, ``launch_base``, secrets...), for
        stand-ins that redirect to or call it; each takes what it needs and ignores the rest.
        Unlike per-test tweaks this survives ``on_reset``. Default: nothing to do."""

    def describe(self) -> dict[str, str]:
        """Label -> URL lines printed by the CLI (and listed on the index page)."""
        return {self.name: self.url()}

    def on_reset(self) -> None:
        """Drop per-test tweaks (lifetimes, toggles); called by ``/_sandbox/reset``."""

    def start(self) -> None:
        """Called once the server listens (``base_url`` is known); start helpers here."""

    def stop(self) -> None:
        """Called before the server stops."""

    # -- used by the server ------------------------------------------------------------------
    def dispatch(self, request: Request, path: str) -> Response:
        """Route ``path`` (already stripped of the prefix) to a handler."""
        return _dispatch(self.url_map, request, f"/{self.name}", path)

    def dispatch_control(self, request: Request, path: str) -> Response:
        """Route ``path`` (stripped of ``/_sandbox/{name}``) to a control handler."""
        return _dispatch(self.control_map, request, f"/_sandbox/{self.name}", path)

    # -- helpers for subclasses --------------------------------------------------------------
    @property
    def origin(self) -> str:
        """This stand-in's own origin, ``https://127.0.0.N:PORT`` (known once it listens)."""
        return self.state.origins[self.name]

    def url(self, path: str = "") -> str:
        """Absolute URL of ``path`` under this stand-in, on its own origin."""
        return f"{self.origin}/{self.name}{path}"

    def url_of(self, other: str, path: str = "") -> str:
        """Absolute URL of ``path`` under another stand-in (``graph``), on that one's origin."""
        return f"{self.state.origins[other]}/{other}{path}"

    @property
    def control_url(self) -> str:
        """Where this stand-in's controls are: ``/_sandbox/{name}`` on the control origin."""
        return f"{self.state.base_url}/_sandbox/{self.name}"


def _dispatch(url_map: Map, request: Request, script_name: str, path: str) -> Response:
    adapter = url_map.bind(
        request.host,
        script_name=script_name,
        url_scheme="https",
        path_info=path or "/",
        default_method=request.method,
    )
    try:
        handler, values = adapter.match(path or "/", method=request.method)
        return handler(request, **values)
    except HTTPException as exc:
        return exc.get_response(request.environ)


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        json.dumps(data),
        status=status,
        headers=headers,
        content_type="application/json; charset=utf-8",
    )


def html_response(body: str, status: int = 200) -> Response:
    return Response(body, status=status, content_type="text/html; charset=utf-8")


def read_json(request: Request) -> dict[str, Any]:
    """The JSON object body, or {} when there is none (control calls may send nothing)."""
    if not request.get_data():
        return {}
    data = request.get_json(force=True, silent=True)
    return data if isinstance(data, dict) else {}
