"""dev/azurite.py and the session's watch on it: ports Azurite picks itself, reasons when it
cannot start, and a test run that stops at once, saying why, when Azurite stops under it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from dev.azurite import start_azurite
from dev.procs import ROOT
from tests.plugins.azurite import answering, round_trip


def test_azurite_picks_its_own_ports_and_a_restart_can_take_them_again(tmp_path: Path):
    first = start_azurite(tmp_path / "data")
    try:
        ports = (first.blob_port, first.queue_port, first.table_port)
        assert len(set(ports)) == 3 and all(ports)
        round_trip(first.connection_string)
        assert answering(first) is None and first.state() == "running"
    finally:
        first.stop()
    assert first.state().startswith(("killed by SIGTERM", "exited with"))
    again = start_azurite(tmp_path / "data", ports=ports)
    try:
        assert (again.blob_port, again.queue_port, again.table_port) == ports
        round_trip(again.connection_string)
    finally:
        again.stop()


def test_a_port_already_taken_is_refused_with_what_azurite_said():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(RuntimeError) as refused:
            start_azurite(ports=(0, 0, port), timeout=20)
    assert "what it printed" in str(refused.value)
    assert str(port) in str(refused.value)


INNER_TESTS = """
import os, signal

def test_storage_goes_away(azurite):
    os.killpg(azurite.proc.pid, signal.SIG{sig})
    {wait}
    assert False, "storage is gone"

def test_then_storage_is_there(azurite):
    from tests.plugins.azurite import round_trip
    round_trip(azurite.connection_string)
"""


def inner_run(folder: Path, tests: str, plugin: str = "azurite", **env: str) -> tuple[int, str]:
    """A pytest run of its own over ``tests``, with one of the suite's plugins."""
    (folder / "conftest.py").write_text(f'pytest_plugins = ["tests.plugins.{plugin}"]\n')
    (folder / "test_inner.py").write_text(textwrap.dedent(tests))
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", str(folder)],
        cwd=folder, env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    return run.returncode, run.stdout + run.stderr


def test_an_azurite_that_died_is_started_again_with_its_data_and_the_summary_says_so(tmp_path):
    code, said = inner_run(tmp_path, INNER_TESTS.format(sig="KILL", wait="azurite.proc.wait(10)"))
    assert code == 1, said
    assert "storage is gone" in said and "1 failed, 1 passed" in said
    assert "Azurite was started again" in said and "Azurite had stopped (killed by SIGKILL)" in said


def test_a_run_stops_at_the_first_failure_once_azurite_no_longer_answers(tmp_path: Path):
    code, said = inner_run(tmp_path, INNER_TESTS.format(sig="STOP", wait="pass"))
    assert code == 2, said  # interrupted
    assert "the session's Azurite is unusable after" in said and "did not answer" in said
    assert "storage is gone" in said  # the failure itself is still reported
    assert "1 failed" in said and "passed" not in said  # the second test never ran


def test_the_suite_stops_once_its_budget_is_spent(tmp_path: Path):
    slow = "import time\n\ndef test_a():\n    time.sleep(0.3)\n\ndef test_b():\n    pass\n"
    code, said = inner_run(tmp_path, slow, "budget", TEST_BUDGET_MINUTES="0.001")
    assert code == 2, said  # interrupted
    assert "over its budget" in said and "1 passed" in said
