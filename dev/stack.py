"""Azurite + the sandbox + the app on the local host (+ seeding): the one way they start together.

- `make run` (dev/run.py): ``start_local()``, on the fixed ports, with data kept in ``.azurite/``
  and ``.local/``, the sandbox as its own process and the app's settings from local.settings.json.
- bench/: ``running()``, everything on free ports, Azurite in memory, state in a temporary folder.
- the tests (tests/plugins/): session fixtures start Azurite and the sandbox, then ``start_app``
  puts the app on them; ``settings_env`` is a complete settings environment for lib's tests.

Each part is stopped in reverse order, also when a later one fails to start.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dev.azurite import Azurite, start_azurite
from dev.procs import ROOT, free_port, start_group, stop, wait_for_port
from dev.sandbox.origins import CONTROL, PLACES, fixed_origin

if TYPE_CHECKING:
    from dev.sandbox import Sandbox

# make run's fixed addresses: what local.settings.sample.json and the sandbox defaults name
# (each sandbox party on its own loopback address and port: dev/sandbox/origins.py).
APP_PORT = 7071
# The app is served over https, like in Azure, with a leaf of the sandbox's CA for this address:
# its browser-binding cookie is then `SameSite=None; Secure; Partitioned`, which a browser keeps
# inside an EHR's cross-site iframe (a plain-http Lax cookie it neither stores nor sends there).
APP_ADDRESS = "127.0.0.1"
SANDBOX_PORT = PLACES[CONTROL].port
AZURITE_PORTS = (10000, 10001, 10002)  # what UseDevelopmentStorage=true points at
STATE = ROOT / ".local"

TENANT = "7d3c1c5e-0b1a-4c1e-9f00-00000000e7c0"
AUDIENCE = "api://evc-connector-local"
# The client secrets the app and the sandbox EHRs share in tests and benchmarks.
EPIC_SECRET = "epic-e2e-secret-0123456789"
CERNER_SECRET = "cerner-e2e-secret-0123456789"
SMS_EVENTS_SECRET = "sms-events-e2e-secret-0123456789"


# -- the app's settings ---------------------------------------------------------------------------


# base64 of b"test-only-sealing-key-0123456789" (32 bytes): obviously not a production key.
SEALING_KEY = "dGVzdC1vbmx5LXNlYWxpbmcta2V5LTAxMjM0NTY3ODk="


def settings_env(**overrides: str) -> dict[str, str]:
    """A complete, valid settings environment; storage defaults to an unreachable address."""
    env = {
        "AzureWebJobsStorage": "UseDevelopmentStorage=true",
        "CONNECTOR_PUBLIC_URL": f"https://{APP_ADDRESS}:{APP_PORT}",
        "CONNECTOR_LOCAL_MODE": "true",
        "CONNECTOR_HASH_KEY": "test-hash-key-0123456789abcdef0123456789",
        "CONNECTOR_LOG_LEVEL": "INFO",
        "CONNECTOR_SEALING_KEYS": SEALING_KEY,
        "ENTRA_TENANT_ID": TENANT,
        "ENTRA_AUTHORITY_HOST": f"{fixed_origin('entra')}/entra",
        "ENTRA_API_AUDIENCE": AUDIENCE,
        "ENTRA_CLIENT_ID": "5f0c4a1e-7a1b-4c2d-8e3f-00000000c0e1",
        "ENTRA_CLIENT_SECRET": "local-dev-secret-not-for-production",
        "SMS_TIMER_SCHEDULE": "0 * * * * *",
        "GRAPH_TIMER_SCHEDULE": "0 */15 * * * *",
        "GRAPH_RECONCILE_DELAY_SECONDS": "1",
    }
    env.update(overrides)
    return env


def app_env(storage: str, sandbox: Sandbox, url: str, prefix: str) -> dict[str, str]:
    """The app's settings against this Azurite and this (in-process) sandbox, at ``url``.
    Each party's address comes from its stand-in, not from the sandbox's one origin."""
    from dev.settings import generate_signing_keys
    from lib.notifications.certificate import generate_pem

    return settings_env(
        GRAPH_NOTIFICATION_CERTIFICATE=generate_pem(),
        AzureWebJobsStorage=storage,
        CONNECTOR_PUBLIC_URL=url,
        ENTRA_AUTHORITY_HOST=sandbox.entra.authority_host,
        REQUESTS_CA_BUNDLE=str(sandbox.ca_file),
        CONNECTOR_SIGNING_KEYS=generate_signing_keys(),
        EHR_SECRET_EPIC=EPIC_SECRET,
        EHR_SECRET_CERNER=CERNER_SECRET,
        CONNECTOR_TABLE_PREFIX=prefix,
        GRAPH_BASE_URL=sandbox.graph.base,
        ACS_CONNECTION_STRING=sandbox.acs.connection_string,
        SMS_EVENTS_SECRET=SMS_EVENTS_SECRET,
    )


def local_app_env(state_dir: Path = STATE) -> dict[str, str]:
    """make run's environment for the sandbox and the app: local.settings.json's values."""
    from dev.settings import LOCAL, load_values

    env = {**os.environ, **load_values(LOCAL)}
    # The sandbox's CA, absolute: this machine may already export a system CA bundle.
    env["REQUESTS_CA_BUNDLE"] = str(state_dir / "certs" / "sandbox-ca.pem")
    env.setdefault("PYTHONUNBUFFERED", "1")
    # The sandbox's Event Grid delivers SMS events to the app's webhook, with its secret.
    public, secret = env.get("CONNECTOR_PUBLIC_URL", ""), env.get("SMS_EVENTS_SECRET", "")
    if public and secret:
        env.setdefault("SANDBOX_ACS_EVENTS_URL", f"{public}/api/sms/events?secret={secret}")
    return env


def point_sandbox_at(sandbox: Sandbox, app_url: str) -> None:
    """Tell the sandbox EHRs our redirect URI, JWKS URL and client secrets for this run."""
    sandbox.configure_connector(
        redirect_uri=f"{app_url}/api/launch/callback",
        jwks_url=f"{app_url}/api/.well-known/jwks.json",
        epic_secret=EPIC_SECRET,
        cerner_secret=CERNER_SECRET,
        launch_base=f"{app_url}/api/launch",
        scheduling_base=f"{app_url}/api/scheduling",
        sms_events_url=f"{app_url}/api/sms/events?secret={SMS_EVENTS_SECRET}",
    )


# -- processes ------------------------------------------------------------------------------------


@dataclass
class RunningHost:
    """``python -m dev.host`` in its own process group."""

    proc: subprocess.Popen
    port: int
    log_path: Path | None  # None: the output goes to our own stdout
    scheme: str = "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{APP_ADDRESS}:{self.port}"

    def log(self) -> str:
        if self.log_path is None:
            return ""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> None:
        stop(self.proc)


def launch_host(
    app_dir: Path,
    log_path: Path | None,
    env: Mapping[str, str] | None = None,
    settings: Path | None = None,
    args: tuple[str, ...] = (),
    port: int | None = None,
    timeout: float = 30,
    tls: tuple[Path, Path] | None = None,
) -> RunningHost:
    """Start dev.host for app_dir and return once it listens (or raise with its log).

    `port`: when the app must know its own URL in advance (redirect URIs it registers).
    `tls`: certificate and key files: the host serves https (see ``app_certificate``).
    """
    port = port or free_port()
    cmd = [sys.executable, "-m", "dev.host", "--app-dir", str(app_dir), "--port", str(port)]
    if settings is not None:
        cmd += ["--settings", str(settings)]
    if tls is not None:
        cmd += ["--cert", str(tls[0]), "--key", str(tls[1])]
    with contextlib.ExitStack() as files:
        out: Any = None
        if log_path is not None:
            out = files.enter_context(log_path.open("wb"))
        proc = start_group(
            [*cmd, *args],
            cwd=ROOT,
            env={**os.environ, **(env or {})},
            stdout=out,
            stderr=subprocess.STDOUT if out is not None else None,
        )
    host = RunningHost(proc, port, log_path, "https" if tls else "http")
    try:
        wait_for_port(port, timeout, proc)
    except Exception as exc:
        host.stop()
        raise RuntimeError(f"dev.host did not start:\n{host.log()}") from exc
    return host


@dataclass
class SandboxProcess:
    """``python -m dev.sandbox`` in its own process group (make run), on the fixed origins."""

    proc: subprocess.Popen
    port: int
    ca_file: Path
    state_dir: Path

    @property
    def url(self) -> str:
        """The control origin (index page, ``/_sandbox/``)."""
        return f"https://{PLACES[CONTROL].address}:{self.port}"

    @property
    def origins(self) -> dict[str, str]:
        return {CONTROL: self.url} | {n: fixed_origin(n) for n in PLACES if n != CONTROL}

    def stop(self) -> None:
        stop(self.proc)


def launch_sandbox(port: int, state_dir: Path, env: Mapping[str, str]) -> SandboxProcess:
    cmd = [sys.executable, "-m", "dev.sandbox", "--port", str(port), "--state-dir",
           str(state_dir), "--quiet"]  # fmt: skip
    proc = start_group(cmd, cwd=ROOT, env=dict(env))
    sandbox = SandboxProcess(proc, port, state_dir / "certs" / "sandbox-ca.pem", state_dir)
    try:
        wait_for_port(port, 30, proc)  # the control origin binds last
    except Exception:
        sandbox.stop()
        raise
    return sandbox


def start_app(
    storage: str,
    sandbox: Sandbox,
    folder: Path,
    prefix: str,
    app_dir: Path = ROOT,
    overrides: Mapping[str, str] | None = None,
    telemetry: bool = False,
) -> tuple[RunningHost, dict[str, str]]:
    """The app on dev.host on a free port, against this Azurite and sandbox, with the sandbox
    EHRs pointed at it; settings only from the environment (``folder`` keeps an empty
    local.settings.json and the host's log), ``overrides`` over the defaults; ``telemetry``:
    traces to the sandbox's Application Insights. Returns the host and the app's settings."""
    port = free_port()
    url = f"https://{APP_ADDRESS}:{port}"
    empty = folder / "local.settings.json"
    empty.write_text('{"Values": {}}')
    env = {**app_env(storage, sandbox, url, prefix), **(overrides or {})}
    if telemetry:
        env.update(telemetry_env(sandbox))
    point_sandbox_at(sandbox, url)
    tls = app_certificate(sandbox.ca_file, folder / "tls")
    host = launch_host(app_dir, folder / "host.log", env=env, settings=empty, port=port, tls=tls)
    return host, env


def telemetry_env(sandbox: Sandbox) -> dict[str, str]:
    """Traces to the sandbox's Application Insights ingestion, every one of them (the
    distro's default keeps 5 traces a second) and exported within a second; the SDK's calls to
    Microsoft (its usage reports, its remote settings) off: this machine has no internet."""
    return {
        "APPLICATIONINSIGHTS_CONNECTION_STRING": sandbox.insights.connection_string,
        "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true",
        "APPLICATIONINSIGHTS_CONTROLPLANE_DISABLED": "true",
        "OTEL_TRACES_SAMPLER": "parentbased_always_on",
        "OTEL_BSP_SCHEDULE_DELAY": "250",
    }


def app_certificate(ca_file: Path, folder: Path) -> tuple[Path, Path]:
    """The app's https certificate and key: a fresh leaf of the sandbox's CA for its address,
    so whatever trusts the sandbox (msal, requests, a browser told to) trusts the app too."""
    from dev.sandbox.certs import issue_server_files

    return issue_server_files(ca_file, (APP_ADDRESS,), folder)


def wait_healthy(url: str, ca_file: Path, timeout: float = 30.0) -> dict:
    """The app's /api/health answer once it is 200 (``ca_file``: what its certificate is from)."""
    import requests

    deadline = time.monotonic() + timeout
    while True:
        try:
            resp = requests.get(url, timeout=3, verify=str(ca_file))
            if resp.status_code == 200:
                return resp.json()
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} did not answer 200 within {timeout:.0f}s")
        time.sleep(0.2)


# -- the stack ------------------------------------------------------------------------------------


@dataclass
class Stack:
    azurite: Azurite
    sandbox: Any  # Sandbox (in-process: tests, bench) or SandboxProcess (make run)
    host: RunningHost
    env: dict[str, str]  # the app's settings, to build its services in-process when digging
    seeded: list[str] = field(default_factory=list)  # one line per sandbox endpoint
    _parts: contextlib.ExitStack = field(default_factory=contextlib.ExitStack, repr=False)

    @property
    def url(self) -> str:
        return self.host.url

    @property
    def storage(self) -> str:
        return self.azurite.connection_string

    def seed(self, token: Callable[[str], str]) -> list[str]:
        """Register (and approve) the sandbox EHRs through the app's config API."""
        from dev.seed import seed

        self.seeded = seed(self.url, self.sandbox.origins, str(self.sandbox.ca_file), token)
        return self.seeded

    def seed_visits(self, days: int) -> int:
        """Demo visits for the sandbox endpoints, through the visit-events queue (dev/demo.py)."""
        from dev.demo import seed_demo_visits
        from dev.seed import SANDBOX_ENDPOINT_IDS
        from lib.bootstrap import build
        from lib.settings import load_settings

        return seed_demo_visits(build(load_settings(self.env)), SANDBOX_ENDPOINT_IDS, days)

    def seed_sms(self, token: Callable[[str], str]) -> list[str]:
        """Texts on for both sandbox endpoints, as `make run` leaves them: the sandbox's number
        linked, the interface engine's certificate uploaded, reminders SANDBOX_SMS_REMINDERS
        minutes before (default 10,2: a demo sees them soon)."""
        from dev.sandbox.acs.numbers import SEED_NUMBER
        from dev.sandbox.ehr.scheduling import key_pair
        from dev.seed import DEMO_REMINDERS, sandbox_endpoints, seed_sms

        state_dir = getattr(self.sandbox, "state_dir", None) or self.sandbox.state.state_dir
        _, certificate = key_pair(Path(state_dir))
        wanted = os.environ.get("SANDBOX_SMS_REMINDERS", "")
        reminders = tuple(int(m) for m in wanted.split(",") if m.strip()) or DEMO_REMINDERS
        ids = [e["id"] for e in sandbox_endpoints(self.sandbox.origins)]
        lines = seed_sms(
            self.url,
            str(self.sandbox.ca_file),
            token,
            ids,
            number=SEED_NUMBER,
            certificate=certificate,
            reminders=reminders,
        )
        self.seeded += lines
        return lines

    def alive(self) -> bool:
        """Whether the processes of the stack still run (make run watches them)."""
        procs = [self.host.proc, getattr(self.sandbox, "proc", None)]
        return all(p.poll() is None for p in procs if p is not None)

    def stop(self) -> None:
        self._parts.close()


def start_local(
    app_port: int = APP_PORT,
    sandbox_port: int = SANDBOX_PORT,
    azurite_ports: tuple[int, int, int] = AZURITE_PORTS,
    state_dir: Path = STATE,
) -> tuple[Stack, dict]:
    """make run's stack, seeded: returns it with the app's health answer."""
    from dev.token import mint_token

    with contextlib.ExitStack() as parts:  # stops what started if a later part fails
        azurite = start_azurite(ROOT / ".azurite", azurite_ports, quiet=True)
        parts.callback(azurite.stop)
        env = local_app_env(state_dir)
        sandbox = launch_sandbox(sandbox_port, state_dir, env)
        parts.callback(sandbox.stop)
        tls = app_certificate(sandbox.ca_file, state_dir / "certs" / "app")
        host = launch_host(ROOT, None, env=env, port=app_port, timeout=60, tls=tls)
        parts.callback(host.stop)
        stack = Stack(azurite, sandbox, host, env)
        health = wait_healthy(f"{stack.url}/api/health", sandbox.ca_file)
        entra = sandbox.origins["entra"]
        stack.seed(lambda role: mint_token(role, url=entra, state_dir=state_dir))
        stack.seed_sms(lambda role: mint_token(role, url=entra, state_dir=state_dir))
        from lib.settings import load_settings

        days = load_settings(env).demo_visit_days  # the app ignores it: the local run seeds
        if days:
            made = stack.seed_visits(days)
            stack.seeded.append(f"demo visits: {made} over {days} days, via the visit-events queue")
        stack._parts = parts.pop_all()
    return stack, health


@contextlib.contextmanager
def running(
    prefix: str = "stack",
    seed: bool = True,
    app: Callable[[Path], Path] | None = None,
    overrides: Mapping[str, str] | None = None,
    telemetry: bool = False,
) -> Iterator[Stack]:
    """Azurite + sandbox + app on free ports, seeded; all stopped on the way out, whatever
    happened. ``prefix`` names the app's tables; ``app`` lays out the folder the host serves,
    given the stack's temporary folder (default: the project itself; bench/ adds probes);
    ``overrides``: app settings over the defaults (the privacy suite logs at DEBUG);
    ``telemetry``: the app traces to the sandbox's Application Insights (``sandbox.insights``)."""
    from dev.sandbox import start_sandbox
    from dev.sandbox.directory import ROLE_VALUES

    with (
        tempfile.TemporaryDirectory(prefix=f"{prefix}-stack-") as tmp,
        contextlib.ExitStack() as on,
    ):
        folder = Path(tmp)
        azurite = start_azurite()
        on.callback(azurite.stop)
        sandbox = start_sandbox(port=0, state_dir=folder / "sandbox")
        on.callback(sandbox.stop)
        app_dir = app(folder) if app else ROOT
        host, env = start_app(
            azurite.connection_string, sandbox, folder, prefix, app_dir, overrides, telemetry
        )
        on.callback(host.stop)
        stack = Stack(azurite, sandbox, host, env)
        if seed:

            def token(role: str) -> str:
                return sandbox.entra.mint(roles=[ROLE_VALUES[role]], user=role)

            lines = stack.seed(token)
            if not all(line.endswith(": active") for line in lines):
                raise RuntimeError(f"seeding failed: {lines}")
        yield stack
