"""Small helpers for starting local processes: free ports, waiting for a port, clean stops."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float = 20.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before port {port} opened")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


LOOPBACK = ("127.0.0.1", "localhost")


def loopback_skips_proxies() -> None:
    """Everything local (Azurite, the sandbox, the app) is on loopback, and the SDKs and
    requests honour HTTP(S)_PROXY: behind a corporate proxy, or on a CI machine that sets one,
    loopback calls would go to the proxy and fail. Adds loopback to NO_PROXY (children inherit
    it)."""
    for name in ("NO_PROXY", "no_proxy"):
        have = [h.strip() for h in os.environ.get(name, "").split(",") if h.strip()]
        os.environ[name] = ",".join(have + [h for h in LOOPBACK if h not in have])


_PR_SET_PDEATHSIG = 1


def _parent_death_signal() -> object | None:
    """On Linux, a function for the child to call after fork: it gets SIGTERM when the process
    that started it dies, however that died (a test run killed, a CI timeout), so no Azurite,
    sandbox or host outlives its parent. Only from the main thread: the kernel sends it when the
    starting *thread* ends, and a worker thread's end is no reason to stop the child."""
    if (
        not sys.platform.startswith("linux")
        or threading.current_thread() is not threading.main_thread()
    ):
        return None
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    parent = os.getpid()

    def arm() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the parent died before the signal was armed
            os._exit(1)

    return arm


def start_group(cmd: list[str], **kwargs) -> subprocess.Popen:
    """Start a process in its own process group so stop() ends its children too; it also stops
    when this process dies (see `_parent_death_signal`)."""
    arm = _parent_death_signal()
    if arm is not None and "preexec_fn" not in kwargs:
        kwargs["preexec_fn"] = arm
    return subprocess.Popen(cmd, start_new_session=True, **kwargs)


def stop(proc: subprocess.Popen | None, timeout: float = 5.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout)
