"""Start the Azurite storage emulator (the real one, from npm) for the local run and the tests."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from dev.procs import ROOT, free_port, start_group, stop, wait_for_port

AZURITE_BIN = ROOT / "node_modules" / ".bin" / "azurite"
# The well-known development account key Azurite accepts (public, documented by Microsoft).
DEV_ACCOUNT = "devstoreaccount1"
DEV_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


@dataclass
class Azurite:
    proc: subprocess.Popen
    blob_port: int
    queue_port: int
    table_port: int

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={DEV_ACCOUNT};AccountKey={DEV_KEY};"
            f"BlobEndpoint=http://127.0.0.1:{self.blob_port}/{DEV_ACCOUNT};"
            f"QueueEndpoint=http://127.0.0.1:{self.queue_port}/{DEV_ACCOUNT};"
            f"TableEndpoint=http://127.0.0.1:{self.table_port}/{DEV_ACCOUNT};"
        )

    def stop(self) -> None:
        stop(self.proc)


def start_azurite(
    location: Path | None = None, ports: tuple[int, int, int] | None = None, quiet: bool = True
) -> Azurite:
    """Start Azurite on loopback; in memory unless a data folder is given."""
    if not AZURITE_BIN.exists():
        raise RuntimeError("Azurite is not installed: run `npm ci` (make does it for you).")
    blob, queue, table = ports or (free_port(), free_port(), free_port())
    cmd = [
        str(AZURITE_BIN),
        "--blobHost",
        "127.0.0.1",
        "--blobPort",
        str(blob),
        "--queueHost",
        "127.0.0.1",
        "--queuePort",
        str(queue),
        "--tableHost",
        "127.0.0.1",
        "--tablePort",
        str(table),
        # The current queue SDK sends an API version newer than Azurite 3.35 knows.
        "--skipApiVersionCheck",
        "--disableTelemetry",
        "--loose",
    ]
    if location is None:
        cmd.append("--inMemoryPersistence")
    else:
        location.mkdir(parents=True, exist_ok=True)
        cmd += ["--location", str(location)]
    out = subprocess.DEVNULL if quiet else None
    proc = start_group(cmd, stdout=out, stderr=out, cwd=ROOT)
    try:
        for port in (blob, queue, table):
            wait_for_port(port, 30, proc)
    except Exception:
        stop(proc)
        raise
    return Azurite(proc, blob, queue, table)
