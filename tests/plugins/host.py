"""Local Functions host fixtures: run `python -m dev.host` as a subprocess on a free port.

    def test_something(start_host, azurite):
        host = start_host(app_dir, env={"AzureWebJobsStorage": azurite.connection_string})
        requests.get(f"{host.url}/api/health")

Every host started through the fixture is stopped at the end of the session (or earlier with
host.stop()). The host's output goes to a log file, readable with host.log().
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from dev.procs import ROOT, free_port, start_group, stop, wait_for_port


@dataclass
class RunningHost:
    proc: subprocess.Popen
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> None:
        stop(self.proc)


def launch_host(
    app_dir: Path,
    log_path: Path,
    env: Mapping[str, str] | None = None,
    settings: Path | None = None,
    args: tuple[str, ...] = (),
    port: int | None = None,
) -> RunningHost:
    """Start dev.host for app_dir and return once it listens (or raise with its log).

    `port`: when the app must know its own URL in advance (redirect URIs it registers).
    """
    port = port or free_port()
    cmd = [sys.executable, "-m", "dev.host", "--app-dir", str(app_dir), "--port", str(port)]
    if settings is not None:
        cmd += ["--settings", str(settings)]
    with log_path.open("wb") as log_file:
        proc = start_group(
            [*cmd, *args],
            cwd=ROOT,
            env={**os.environ, **(env or {})},
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    host = RunningHost(proc, port, log_path)
    try:
        wait_for_port(port, 30, proc)
    except Exception as exc:
        host.stop()
        raise RuntimeError(f"dev.host did not start:\n{host.log()}") from exc
    return host


@pytest.fixture(scope="session")
def start_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., RunningHost]]:
    """A factory: start_host(app_dir, env=None, settings=None, args=()) -> RunningHost."""
    hosts: list[RunningHost] = []
    logs = tmp_path_factory.mktemp("host-logs")

    def start(app_dir: Path, **kwargs) -> RunningHost:
        host = launch_host(Path(app_dir), logs / f"host-{len(hosts)}.log", **kwargs)
        hosts.append(host)
        return host

    yield start
    for host in hosts:
        host.stop()
