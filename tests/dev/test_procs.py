"""dev/procs.py: what tests and `make run` start never outlives the process that started it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from dev.procs import ROOT, loopback_skips_proxies

PARENT = """
import sys, time
from dev.procs import start_group
child = start_group([sys.executable, "-c", "import time; time.sleep(60)"])
print(child.pid, flush=True)
time.sleep(60)
"""


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:  # a zombie is gone, only not yet reaped
        return stat.read().split(")")[-1].split()[0] != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal")
def test_a_child_stops_when_its_parent_is_killed():
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    child = int(parent.stdout.readline())
    assert alive(child)
    parent.send_signal(signal.SIGKILL)  # no cleanup runs: as when CI kills a run
    parent.wait(10)
    deadline = time.monotonic() + 10
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(child)


def test_loopback_is_added_to_no_proxy_once_and_what_was_there_stays(monkeypatch):
    monkeypatch.setenv("NO_PROXY", "corp.example, localhost")
    monkeypatch.delenv("no_proxy", raising=False)
    loopback_skips_proxies()
    loopback_skips_proxies()
    assert os.environ["NO_PROXY"] == "corp.example,localhost,127.0.0.1"
    assert os.environ["no_proxy"] == "127.0.0.1,localhost"
