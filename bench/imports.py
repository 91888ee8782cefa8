"""Cold import of function_app against a bare `import azure.functions`, in fresh processes.

The two are measured interleaved in one run (the machine is shared and noisy) and reported as the
ratio of medians. Goal: at most 1.5x; heavy libraries belong where they are used (the warmup
function loads them before a new instance takes traffic: functions/warmup.py).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys

from dev.procs import ROOT
from dev.stack import settings_env

PROBE = "import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"


def _once(module: str) -> float:
    env = {**os.environ, **settings_env(), "PYTHONDONTWRITEBYTECODE": "0"}
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(module=module)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return float(out.stdout.strip().splitlines()[-1])


def run(rounds: int = 15) -> list[tuple[str, str, str]]:
    _once("function_app")  # warm the bytecode cache so both sides read .pyc files
    bare, app = [], []
    for _ in range(rounds):
        bare.append(_once("azure.functions"))
        app.append(_once("function_app"))
    b, a = statistics.median(bare), statistics.median(app)
    return [
        ("import azure.functions (median)", f"{b * 1000:.1f} ms", ""),
        ("import function_app (median)", f"{a * 1000:.1f} ms", ""),
        ("cold import ratio", f"{a / b:.2f}x", "goal <= 1.5x"),
    ]
