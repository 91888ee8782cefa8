"""`make run`: Azurite + the sandbox + the local Functions host, seeded, with the URLs to click.

Each part runs as its own process group; Ctrl-C (or SIGTERM) stops all of them, so nothing is
left listening afterwards.
"""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

from dev.procs import loopback_skips_proxies
from dev.sandbox.origins import CONTROL
from dev.settings import sync
from dev.stack import AZURITE_PORTS, STATE, TENANT, Stack, start_local


def main() -> int:
    sync()
    loopback_skips_proxies()
    stack: Stack | None = None

    def shutdown(*_: object) -> None:
        if stack is not None:
            stack.stop()

    signal.signal(signal.SIGTERM, lambda *_: (shutdown(), sys.exit(0)))
    # A shell that starts us in the background sets SIGINT to "ignore"; Ctrl-C must still work.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        print("starting Azurite, the sandbox and the app ...", flush=True)
        stack, health = start_local()  # stops what it started if a part fails
        print_urls(stack.url, stack.sandbox.origins, health, stack.seeded)
        while stack.alive():
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


def print_urls(app_url: str, origins: dict[str, str], health: dict, seeded: list[str]) -> None:
    ca = Path(STATE / "certs" / "sandbox-ca.pem")
    epic, cerner = origins["epic"], origins["cerner"]
    print(
        f"""
EHR virtual-visit connector is running
  (version {health.get("version")}, storage {health.get("storage")})

  Admin portal            {app_url}/api/portal   (sign in as the admin, approver or reader)
  App (Functions host)    {app_url}/api/health
  Config API (OpenAPI)    {app_url}/api/openapi.json
  Sandbox index           {origins[CONTROL]}/   (every party, its origin and controls)
  Admin token             .venv/bin/python -m dev.token --role admin
  Sandbox CA certificate  {ca}   (trust it once in your browser, or click through)
  Storage (Azurite)       127.0.0.1:{AZURITE_PORTS[0]}-{AZURITE_PORTS[2]}  (data in .azurite/)
""",
        flush=True,
    )
    print(
        "  Clinician journeys ('Begin virtual visit' in the EHR; ?open=iframe or ?open=popup\n"
        "  opens the launch inside the EHR's page or in a new window):\n"
        f"    Epic-like schedule      {epic}/epic/schedule\n"
        f"    Cerner-like schedule    {cerner}/cerner/schedule\n"
        "  Texts: 'Send scheduling message', 'Reschedule', 'Cancel' on a schedule push signed\n"
        "  SIU S12 / S13 / S15 to the app; the texts arrive on the patients' phones below.\n"
        "  Patient journeys (portal 'Begin virtual visit'):\n"
        f"    Epic-like MyChart       {epic}/epic/mychart\n"
        f"    Cerner-like portal      {cerner}/cerner/portal\n"
        "  The other parties, each on its own origin:\n"
        f"    Entra ID                {origins['entra']}/entra/{TENANT}/v2.0/"
        ".well-known/openid-configuration\n"
        f"    Microsoft Graph         {origins['graph']}/graph/_meetings  (meetings, rosters)\n"
        f"    Patients' phones        {origins['acs']}/phone  (texts the app sent; reply STOP)\n"
        "  Set up in the app (config API, see README):"
    )
    for line in seeded:
        print(f"    {line}")
    print("\nCtrl-C stops everything.", flush=True)


if __name__ == "__main__":
    sys.exit(main())
