"""`make run`: Azurite + the sandbox + the local Functions host, seeded, with the URLs to click.

Each part runs as its own process group; Ctrl-C (or SIGTERM) stops all of them, so nothing is
left listening afterwards.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

from dev.azurite import Azurite, start_azurite
from dev.procs import ROOT, start_group, stop, wait_for_port
from dev.settings import LOCAL, load_values, sync

APP_PORT = 7071
SANDBOX_PORT = 7443
AZURITE_PORTS = (10000, 10001, 10002)  # what UseDevelopmentStorage=true points at
STATE = ROOT / ".local"


def _python(*args: str) -> list[str]:
    return [sys.executable, *args]


def _app_env() -> dict[str, str]:
    env = {**os.environ, **load_values(LOCAL)}
    # The sandbox's CA, absolute: this machine may already export a system CA bundle.
    env["REQUESTS_CA_BUNDLE"] = str(STATE / "certs" / "sandbox-ca.pem")
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def _health(url: str, timeout: float = 30.0) -> dict:
    import requests

    deadline = time.monotonic() + timeout
    while True:
        try:
            resp = requests.get(url, timeout=3)
            if resp.status_code == 200:
                return resp.json()
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} did not answer 200 within {timeout:.0f}s")
        time.sleep(0.2)


def _seed(app_url: str, sandbox_url: str) -> list[str]:
    """Register (and approve) the sandbox EHRs through the app's config API."""
    from dev.seed import seed
    from dev.token import mint_token

    ca = str(STATE / "certs" / "sandbox-ca.pem")
    return seed(
        app_url, sandbox_url, ca, lambda role: mint_token(role, url=sandbox_url, state_dir=STATE)
    )


def main() -> int:
    sync()
    procs: list = []
    azurite: Azurite | None = None

    def shutdown(*_: object) -> None:
        for proc in reversed(procs):
            stop(proc)
        if azurite is not None:
            azurite.stop()

    signal.signal(signal.SIGTERM, lambda *_: (shutdown(), sys.exit(0)))
    # A shell that starts us in the background sets SIGINT to "ignore"; Ctrl-C must still work.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        print("starting Azurite, the sandbox and the app ...", flush=True)
        azurite = start_azurite(ROOT / ".azurite", AZURITE_PORTS, quiet=True)
        sandbox = start_group(
            _python("-m", "dev.sandbox", "--port", str(SANDBOX_PORT), "--state-dir", str(STATE),
                    "--quiet"),
            cwd=ROOT, env=_app_env(),
        )  # fmt: skip
        procs.append(sandbox)
        wait_for_port(SANDBOX_PORT, 30, sandbox)
        host = start_group(
            _python("-m", "dev.host", "--port", str(APP_PORT)), cwd=ROOT, env=_app_env()
        )
        procs.append(host)
        wait_for_port(APP_PORT, 60, host)
        app_url, sandbox_url = f"http://127.0.0.1:{APP_PORT}", f"https://127.0.0.1:{SANDBOX_PORT}"
        health = _health(f"{app_url}/api/health")
        seeded = _seed(app_url, sandbox_url)
        print_urls(app_url, sandbox_url, health, seeded)
        while all(p.poll() is None for p in procs):
            time.sleep(0.5)
        print("a process stopped; shutting down", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nstopping ...")
        return 0
    except (RuntimeError, TimeoutError, OSError) as exc:
        print(f"make run failed: {exc}", file=sys.stderr)
        return 1
    finally:
        shutdown()


def print_urls(app_url: str, sandbox_url: str, health: dict, seeded: list[str]) -> None:
    ca = Path(STATE / "certs" / "sandbox-ca.pem")
    print(
        f"""
EHR virtual-visit connector is running
  (version {health.get("version")}, storage {health.get("storage")})

  App (Functions host)    {app_url}/api/health
  Config API (OpenAPI)    {app_url}/api/openapi.json
  Sandbox index           {sandbox_url}/
  Admin token             .venv/bin/python -m dev.token --role admin
  Sandbox CA certificate  {ca}   (trust it once in your browser, or click through)
  Storage (Azurite)       127.0.0.1:{AZURITE_PORTS[0]}-{AZURITE_PORTS[2]}  (data in .azurite/)
""",
        flush=True,
    )
    print(
        "  Clinician journeys ('Begin virtual visit' in the EHR):\n"
        f"    Epic-like schedule      {sandbox_url}/epic/schedule\n"
        f"    Cerner-like schedule    {sandbox_url}/cerner/schedule\n"
        "  Patient journeys (portal 'Begin virtual visit'):\n"
        f"    Epic-like MyChart       {sandbox_url}/epic/mychart\n"
        f"    Cerner-like portal      {sandbox_url}/cerner/portal\n"
        "  Endpoints registered in the app (config API, see README):"
    )
    for line in seeded:
        print(f"    {line}")
    print("\nCtrl-C stops everything.", flush=True)


if __name__ == "__main__":
    sys.exit(main())
