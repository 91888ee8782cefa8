"""Start the Azurite storage emulator (the real one, from npm) for the local run and the tests."""

from __future__ import annotations

import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from dev.procs import ROOT, start_group, stop

AZURITE_BIN = ROOT / "node_modules" / ".bin" / "azurite"
# The well-known development account key Azurite accepts (public, documented by Microsoft).
DEV_ACCOUNT = "devstoreaccount1"
DEV_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
# What Azurite prints once a service listens; with port 0 it is the only way to learn the port.
_LISTENING = re.compile(
    r"Azurite (Blob|Queue|Table) service is successfully listening at \S+:(\d+)"
)
SERVICES = ("Blob", "Queue", "Table")


@dataclass
class Azurite:
    proc: subprocess.Popen
    blob_port: int
    queue_port: int
    table_port: int
    location: Path | None = None  # its data folder; None: in memory
    # Its last lines of output, for the reason when it stops or misbehaves (a test run says it).
    output: deque[str] = field(default_factory=lambda: deque(maxlen=200))

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={DEV_ACCOUNT};AccountKey={DEV_KEY};"
            f"BlobEndpoint=http://127.0.0.1:{self.blob_port}/{DEV_ACCOUNT};"
            f"QueueEndpoint=http://127.0.0.1:{self.queue_port}/{DEV_ACCOUNT};"
            f"TableEndpoint=http://127.0.0.1:{self.table_port}/{DEV_ACCOUNT};"
        )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def state(self) -> str:
        """``running``, ``exited with N`` or ``killed by SIGNAME``."""
        code = self.proc.poll()
        if code is None:
            return "running"
        if code < 0:
            return f"killed by {signal.Signals(-code).name}"
        return f"exited with {code}"

    def tail(self, lines: int = 30) -> str:
        return "\n".join(list(self.output)[-lines:]) or "(it printed nothing)"

    def stop(self) -> None:
        stop(self.proc)

    def restart(self, pause: float = 0.0) -> None:
        """Stop it and start it again on the same ports and data folder, so every client and
        connection string made for it stays valid (after ``pause`` seconds of outage)."""
        self.stop()
        time.sleep(pause)
        ports = (self.blob_port, self.queue_port, self.table_port)
        again = start_azurite(self.location, ports)
        self.proc, self.output = again.proc, again.output


def start_azurite(
    location: Path | None = None,
    ports: tuple[int, int, int] | None = None,
    quiet: bool = True,
    timeout: float = 30.0,
) -> Azurite:
    """Start Azurite on loopback; in memory unless a data folder is given. Without ``ports``
    it binds port 0 and reports the ports it got: no window in which another process can take
    a port picked in advance (the free_port race)."""
    if not AZURITE_BIN.exists():
        raise RuntimeError("Azurite is not installed: run `npm ci` (make does it for you).")
    blob, queue_port, table = ports or (0, 0, 0)
    cmd = [str(AZURITE_BIN)]
    for service, port in zip(SERVICES, (blob, queue_port, table), strict=True):
        cmd += [f"--{service.lower()}Host", "127.0.0.1", f"--{service.lower()}Port", str(port)]
    cmd += [
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
    proc = start_group(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=ROOT, text=True, bufsize=1
    )
    output: deque[str] = deque(maxlen=200)
    listening: queue.Queue[tuple[str, int]] = queue.Queue()
    threading.Thread(
        target=_drain, args=(proc, output, listening, quiet), name="azurite-output", daemon=True
    ).start()
    try:
        found = _wait_listening(proc, listening, timeout)
    except (RuntimeError, TimeoutError) as e:
        stop(proc)
        said = "\n".join(output) or "(it printed nothing)"
        raise RuntimeError(f"{e}; what it printed:\n{said}") from None
    return Azurite(proc, found["Blob"], found["Queue"], found["Table"], location, output)


def _drain(proc: subprocess.Popen, output: deque, listening: queue.Queue, quiet: bool) -> None:
    """Read Azurite's output for as long as it runs, so its pipe never fills and blocks it."""
    for line in proc.stdout:
        line = line.rstrip()
        output.append(line)
        if not quiet:
            print(line, file=sys.stderr)
        if m := _LISTENING.search(line):
            listening.put((m.group(1), int(m.group(2))))


def _wait_listening(proc: subprocess.Popen, listening: queue.Queue, timeout: float) -> dict:
    found: dict[str, int] = {}
    deadline = time.monotonic() + timeout
    while len(found) < len(SERVICES):
        if proc.poll() is not None and listening.empty():
            raise RuntimeError(f"Azurite exited with {proc.returncode} before it listened")
        try:
            service, port = listening.get(timeout=min(0.2, max(0.0, deadline - time.monotonic())))
        except queue.Empty:
            if time.monotonic() >= deadline:
                raise TimeoutError(f"Azurite did not listen within {timeout}s") from None
            continue
        found[service] = port
    return found
