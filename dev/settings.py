"""Create local.settings.json from the sample, or add the settings the sample gained since.

Never overwrites a value a developer has set; a value still equal to an earlier sample's
default (``RETIRED``) follows the sample. `python -m dev.settings` (make does it).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from dev.procs import ROOT

SAMPLE = ROOT / "local.settings.sample.json"
LOCAL = ROOT / "local.settings.json"
# Sample defaults that moved: when every sandbox party shared one origin (before origins.py),
# and when the local app was served over plain http.
RETIRED = {
    "ENTRA_AUTHORITY_HOST": "https://127.0.0.1:7443/entra",
    "GRAPH_BASE_URL": "https://127.0.0.1:7443/graph",
    "CONNECTOR_PUBLIC_URL": "http://127.0.0.1:7071",
}


def sync(local: Path = LOCAL, sample: Path = SAMPLE) -> list[str]:
    """Returns the names added."""
    wanted = json.loads(sample.read_text())
    current = (
        json.loads(local.read_text())
        if local.exists()
        else {k: v for k, v in wanted.items() if k != "Documentation"}
    )
    values = current.setdefault("Values", {})
    added = [k for k in wanted["Values"] if k not in values]
    for name in added:
        values[name] = wanted["Values"][name]
    for name, old in RETIRED.items():
        if values.get(name) == old and wanted["Values"].get(name, old) != old:
            values[name] = wanted["Values"][name]
            added.append(f"{name} (moved)")
    current.setdefault("Host", wanted.get("Host", {}))
    if not values.get("CONNECTOR_SIGNING_KEYS"):
        values["CONNECTOR_SIGNING_KEYS"] = generate_signing_keys()
        added.append("CONNECTOR_SIGNING_KEYS (generated)")
    if not values.get("GRAPH_NOTIFICATION_CERTIFICATE"):
        from lib.notifications.certificate import generate_pem

        values["GRAPH_NOTIFICATION_CERTIFICATE"] = generate_pem()
        added.append("GRAPH_NOTIFICATION_CERTIFICATE (generated)")
    local.write_text(json.dumps(current, indent=2) + "\n")
    os.utime(local)  # newer than the sample: make stays quiet next time
    return added


def generate_signing_keys() -> str:
    """A local RSA key (RS384) and P-384 key (ES384), PEM, for private_key_jwt."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    keys = [rsa.generate_private_key(65537, 2048), ec.generate_private_key(ec.SECP384R1())]
    return "".join(
        k.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        for k in keys
    )


def load_values(local: Path = LOCAL) -> dict[str, str]:
    data = json.loads(local.read_text()) if local.exists() else {}
    return {k: str(v) for k, v in data.get("Values", {}).items()}


if __name__ == "__main__":
    created = not LOCAL.exists()
    names = sync()
    if created:
        print(f"created {LOCAL.name} from the sample")
    elif names:
        print(f"{LOCAL.name}: added {', '.join(names)} from the sample")
