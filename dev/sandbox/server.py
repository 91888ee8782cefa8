"""One threaded HTTPS server per origin: each stand-in on its own (dev/sandbox/origins.py), under
its path prefix, and a control origin for the index page and ``/_sandbox/``."""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import pkgutil
import socket
import ssl
import struct
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from dev.procs import ROOT
from dev.sandbox.certs import load_or_create_ca, server_ssl_context
from dev.sandbox.control import ControlPanel, fault_response
from dev.sandbox.origins import CONTROL, origin, place
from dev.sandbox.standin import StandIn, json_response
from dev.sandbox.state import Fault, Faults, Journal, JournalEntry, SandboxState

log = logging.getLogger("dev.sandbox")

DEFAULT_STATE_DIR = ROOT / ".local"
SETTINGS_ENV_PREFIX = "SANDBOX_"
OTHER_HOST_NAME = "localhost"  # SANDBOX_ENTRA_CLIENT_SECRET=... -> ENTRA_CLIENT_SECRET


class SandboxApp:
    """The WSGI app of one origin: its stand-in (``home``) wrapped in latency, faults and the
    journal, and the control plane; another stand-in's path is a 404 naming its origin."""

    def __init__(self, state: SandboxState, control: ControlPanel, home: str = CONTROL) -> None:
        self.state = state
        self.control = control
        self.home = home

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        request = Request(environ)
        return self.handle(request)(environ, start_response)

    def handle(self, request: Request) -> Response:
        name, _, rest = request.path.lstrip("/").partition("/")
        stand_in = self.state.stand_ins.get(name)
        if stand_in is None:
            home = self.state.stand_ins.get(self.home)
            if home is not None and home.serves_root and name != "_sandbox":
                return self.serve(home, request, request.path)  # e.g. ACS's /sms
            return self.control.dispatch(request)
        if name != self.home and not self._other_host_name(request):
            return json_response(
                {
                    "error": "wrong_origin",
                    "message": f"/{name} is served at {stand_in.origin}, not on this origin.",
                },
                404,
            )
        return self.serve(stand_in, request, "/" + rest)

    def _other_host_name(self, request: Request) -> bool:
        """``localhost`` on the control origin's port answers for every stand-in: the "other host
        name" of the moved-host variants and quirks (dev/sandbox/ehr/variants.py)."""
        return self.home == CONTROL and request.host.rsplit(":", 1)[0] == OTHER_HOST_NAME

    def serve(self, stand_in: StandIn, request: Request, rest: str) -> Response:
        started = time.monotonic()
        delay = self.state.latency.for_stand_in(stand_in.name)
        if delay > 0:
            time.sleep(delay)
        fault = self.state.faults.take(request.method, request.path)
        if fault is None:
            response = self._call(stand_in, request, rest)
        elif fault.kind == "hang":
            time.sleep(fault.seconds)
            response = _drop_connection(request)
        elif fault.kind == "reset":
            response = _drop_connection(request)
        elif fault.kind == "trickle":
            response = _trickled(self._call(stand_in, request, rest), fault.seconds)
        else:
            if fault.after:
                self._call(stand_in, request, rest)  # side effects happen; the answer is lost
            time.sleep(fault.delay)
            response = fault_response(fault)
        self._record(stand_in, request, response, started, fault is not None)
        return response

    def _call(self, stand_in: StandIn, request: Request, rest: str) -> Response:
        try:
            return stand_in.dispatch(request, rest)
        except Exception:
            # A bug in a stand-in must show up loudly in the test output, not as a hang.
            log.exception(
                "stand-in %s failed on %s %s", stand_in.name, request.method, request.path
            )
            return json_response({"error": "sandbox_bug", "stand_in": stand_in.name}, 500)

    def _record(
        self, stand_in: StandIn, request: Request, response: Response, started: float, faulted: bool
    ) -> None:
        elapsed_ms = (time.monotonic() - started) * 1000
        self.state.journal.record(
            JournalEntry(
                stand_in=stand_in.name,
                method=request.method,
                path=request.path,
                query_keys=tuple(sorted(request.args.keys())),
                time=time.time(),
                status=response.status_code,
                duration_ms=round(elapsed_ms, 3),
                faulted=faulted,
            )
        )
        # Path only: query strings and bodies can carry codes and tokens.
        log.info(
            "%s %s %s -> %d (%.0f ms)%s",
            stand_in.name,
            request.method,
            request.path,
            response.status_code,
            elapsed_ms,
            " [fault]" if faulted else "",
        )


NO_ANSWER = 444  # what the journal records for a connection closed without an answer (nginx's)


def _drop_connection(request: Request) -> Response:
    """Close the client's connection with a reset (no answer); what werkzeug then tries to write
    fails quietly, as for any client that went away."""
    sock = request.environ.get("werkzeug.socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.shutdown(socket.SHUT_RDWR)
    return Response(b"", status=NO_ANSWER)


def _trickled(response: Response, gap: float) -> Response:
    """The same answer, its body one byte every `gap` seconds (headers at once)."""
    body = response.get_data()

    def drip() -> Iterator[bytes]:
        for i in range(len(body)):
            yield body[i : i + 1]
            time.sleep(gap)

    trickle = Response(drip(), status=response.status_code, headers=list(response.headers))
    trickle.headers["Content-Length"] = str(len(body))
    return trickle


class _QuietHandler(WSGIRequestHandler):
    # Idle keep-alive connections must not hold a thread forever.
    timeout = 120
    # Small answers must leave at once: with Nagle on, each one waited for a delayed ACK (about
    # 12 ms a call), which distorted every latency the benchmarks measure through the sandbox.
    disable_nagle_algorithm = True
    # Keep connections open between calls, as real EHRs and Microsoft do: a fresh TLS handshake
    # per call is a cost of the stand-in, not of the connector.
    protocol_version = "HTTP/1.1"

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """SandboxApp logs requests itself, without query strings."""

    def log(self, type: str, message: str, *args: Any) -> None:
        # TLS failures from clients that do not trust the CA are expected in tests.
        log.debug("http: " + message, *args)


def discover_stand_ins() -> list[type[StandIn]]:
    """Every StandIn subclass with a name, in any module under dev/sandbox/."""
    package = importlib.import_module("dev.sandbox")
    for module in pkgutil.walk_packages(package.__path__, prefix="dev.sandbox."):
        if not module.name.endswith("__main__"):
            importlib.import_module(module.name)
    found: dict[str, type[StandIn]] = {}
    for cls in _subclasses(StandIn):
        if cls.name and found.setdefault(cls.name, cls) is not cls:
            raise RuntimeError(f"two stand-ins claim /{cls.name}: {found[cls.name]} and {cls}")
    return [found[name] for name in sorted(found)]


def _subclasses(cls: type) -> Iterator[type]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


class Sandbox:
    """A running sandbox. Stand-ins are reachable as attributes: ``sandbox.entra``.
    ``url`` is the control origin; ``origins`` maps each party to its own."""

    def __init__(self, state: SandboxState, servers: dict[str, BaseWSGIServer], ca_file: Path):
        self.state = state
        self.servers = servers
        self.ca_file = ca_file
        self.origins = {
            name: origin(server.server_address[0], server.server_address[1])
            for name, server in servers.items()
        }
        self.url = self.origins[CONTROL]
        self.port: int = servers[CONTROL].server_address[1]
        self._threads = [
            threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.1},
                name=f"sandbox:{name}:{server.server_address[1]}",
                daemon=True,
            )
            for name, server in servers.items()
        ]

    @property
    def journal(self) -> Journal:
        return self.state.journal

    @property
    def faults(self) -> Faults:
        return self.state.faults

    @property
    def stand_ins(self) -> dict[str, StandIn]:
        return self.state.stand_ins

    @property
    def entra(self) -> Any:  # EntraStandIn; Any keeps this module free of stand-in imports
        return self.state.stand_ins["entra"]

    def __getattr__(self, name: str) -> StandIn:
        # Only called for names not found normally; guard against use before __init__ ran.
        state = self.__dict__.get("state")
        if state is not None and name in state.stand_ins:
            return state.stand_ins[name]
        raise AttributeError(name)

    def inject(self, path: str = "", **kwargs: Any) -> Fault:
        """``faults.add``: ``sandbox.inject('/graph/*', status=429, retry_after=2)``,
        ``sandbox.inject(family='ehr-token', kind='hang', seconds=20, duration=5)``."""
        return self.state.faults.add(path, **kwargs)

    def configure_connector(self, **where: Any) -> None:
        """Point the stand-ins at a running connector (tests run it on a random port), e.g.
        ``redirect_uri=``, ``jwks_url=``, ``launch_base=``, ``epic_secret=``; kept across resets.
        Same as ``POST /_sandbox/connector``."""
        self.state.configure_connector(**where)

    # EHR conveniences for the app's tests (the stand-ins live in dev/sandbox/ehr/).
    def ehr_base(self, vendor: str, dstu2: bool = False) -> str:
        """The FHIR R4 base of ``epic`` or ``cerner`` (Epic's DSTU2 base with ``dstu2``)."""
        ehr = self.state.stand_ins[vendor]
        base = ehr.dstu2_base if dstu2 else ehr.fhir_base  # type: ignore[attr-defined]
        if not base:
            raise ValueError(f"{vendor} has no DSTU2 base")
        return base

    def variant_base(self, kind: str, vendor: str = "epic") -> str:
        """A misbehaving FHIR base (dev/sandbox/ehr/variants.py), e.g. ``no-s256``."""
        return self.state.stand_ins[vendor].variant_base(kind)  # type: ignore[attr-defined]

    def ehr_standalone_sign_in(self, authorize_url: str, user: str | None = None) -> Any:
        """Sign in at the EHR whose authorize URL this is and follow the redirects back to the
        app; returns the app's final ``requests.Response``."""
        found = urlsplit(authorize_url)
        at = f"{found.scheme}://{found.netloc}"
        name = next((n for n, o in self.origins.items() if o == at), None)
        if found.hostname == OTHER_HOST_NAME:  # the other host name: the path says who
            name = found.path.strip("/").split("/")[0]
        if name not in self.state.stand_ins:
            raise ValueError(f"{at} is no stand-in's origin")
        return self.state.stand_ins[name].standalone_sign_in(authorize_url, user)  # type: ignore[attr-defined]

    def set_latency(self, seconds: float, per_stand_in: Mapping[str, float] | None = None) -> None:
        self.state.set_latency(seconds, per_stand_in)

    def reset(self) -> None:
        self.state.reset()

    def env(self) -> dict[str, str]:
        """Environment a client process needs to trust the sandbox."""
        return {"REQUESTS_CA_BUNDLE": str(self.ca_file)}

    def start(self) -> None:
        for thread in self._threads:
            thread.start()
        for stand_in in self.state.stand_ins.values():
            stand_in.start()

    def stop(self) -> None:
        for stand_in in self.state.stand_ins.values():
            stand_in.stop()
        for server in self.servers.values():
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_sandbox(
    port: int = 0,
    state_dir: Path | str | None = None,
    latency: float = 0.0,
    settings: Mapping[str, str] | None = None,
    stand_ins: Iterable[str] | None = None,
) -> Sandbox:
    """Start the HTTPS sandbox in background threads, one server per origin; returns once they
    listen. ``port=0`` puts every origin on a free port of its own address; any other ``port``
    is the control origin's, and each party takes its fixed port (dev/sandbox/origins.py).

    ``settings`` (merged over ``SANDBOX_*`` environment variables) configure stand-ins, e.g.
    ``{"ENTRA_CLIENT_SECRET": "..."}``. ``stand_ins`` limits which are mounted (default: all).
    """
    state_dir = Path(state_dir) if state_dir else DEFAULT_STATE_DIR
    state = SandboxState(state_dir=state_dir, settings=_settings(settings), initial_latency=latency)
    state.set_latency(latency)
    wanted = set(stand_ins) if stand_ins is not None else None
    for cls in discover_stand_ins():
        if wanted is None or cls.name in wanted:
            state.stand_ins[cls.name] = cls(state)
    ca, ca_file = load_or_create_ca(state_dir)
    control = ControlPanel(state, ca_file)
    servers: dict[str, BaseWSGIServer] = {}
    try:
        for name in [*state.stand_ins, CONTROL]:  # control last: it listening means all do
            where = place(name)
            bind_port = 0 if port == 0 else (port if name == CONTROL else where.port)
            server = make_server(
                where.address,
                bind_port,
                SandboxApp(state, control, name),
                threaded=True,
                request_handler=_QuietHandler,
            )
            servers[name] = server
            names = (where.address, OTHER_HOST_NAME) if name == CONTROL else (where.address,)
            _enable_tls(server, server_ssl_context(ca, names))
    except OSError:
        for server in servers.values():
            server.server_close()
        raise
    sandbox = Sandbox(state, servers, ca_file)
    state.origins = dict(sandbox.origins)
    state.base_url = sandbox.url
    sandbox.start()
    return sandbox


def _enable_tls(server: BaseWSGIServer, ctx: ssl.SSLContext) -> None:
    # Handshake lazily in the per-connection thread: werkzeug's own wrapping shakes hands in
    # accept(), so one silent client (a browser preconnect) would stall every other request.
    server.socket = ctx.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    server.ssl_context = ctx


def _settings(explicit: Mapping[str, str] | None) -> dict[str, str]:
    merged = {
        k.removeprefix(SETTINGS_ENV_PREFIX): v
        for k, v in os.environ.items()
        if k.startswith(SETTINGS_ENV_PREFIX)
    }
    merged.update(explicit or {})
    return merged
