"""Local Functions host fixtures: run `python -m dev.host` as a subprocess on a free port.

    def test_something(start_host, azurite):
        host = start_host(app_dir, env={"AzureWebJobsStorage": azurite.connection_string})
        requests.get(f"{host.url}/api/health")

Every host started through the fixture is stopped at the end of the session (or earlier with
host.stop()). The host's output goes to a log file, readable with host.log(). Launching lives
in dev/stack.py, shared with `make run` and bench/.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dev.stack import RunningHost, launch_host


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
