"""Chaos: launches at a steady rate while storage pauses, then while the EHR's token endpoint hangs.

200 provider launches (a clinician already signed in, into an existing visit: launch URL ->
authorize -> callback -> visit page, as dev/browser.py's person does), started at a fixed rate
whatever the earlier ones are doing (open loop, as clinicians arrive). In the middle, Azurite is
paused (SIGSTOP) for 5 s; later the sandbox EHR's token endpoint hangs for 5 s (a fault with a
duration, dev/sandbox/state.py). Reported per phase (by when the launch started): outcomes
(success, or the coded 503 / 502 page), p50 / p99 / max of the time to the answer, and after each
fault clears, how long until the first success and whether the first launch started after the
clear succeeded. Goals: no 500, nothing slower than the interactive budget + 1 s, the first
launch after a fault succeeds.

`python -m bench chaos` runs it alone (about a minute and a half); `make bench` runs it with the
others. Everything is on free ports and stopped at the end (dev/stack.py).
"""

from __future__ import annotations

import contextlib
import os
import signal
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from urllib.parse import urlencode

from dev.browser import Browser
from dev.stack import Stack
from dev.stack import running as stack_running

LAUNCHES = 200
RATE = 4.0  # launches started per second
STORAGE_AT, EHR_AT, FAULT_FOR = 12.0, 30.0, 5.0  # seconds into the run
BUDGET = 10.0  # CONNECTOR_INTERACTIVE_BUDGET_SECONDS, the app's default
ENDPOINT, CLINICIAN = "epic-sandbox-test", "reyes"  # dev/seed.py's Epic endpoint


@dataclass
class Result:
    started: float  # seconds into the run
    took: float
    status: int
    code: str | None

    @property
    def ok(self) -> bool:
        return self.status == 200


def launch_url(stack: Stack) -> str:
    minted = stack.sandbox.epic.mint_launch("provider", clinician=CLINICIAN)
    query = urlencode({"iss": minted.iss, "launch": minted.token})
    return f"{stack.url}/api/launch/{ENDPOINT}/provider?{query}"


def one_launch(stack: Stack, t0: float) -> Result:
    started = time.monotonic()
    try:
        out = Browser(stack.sandbox, entra_user=CLINICIAN).go(launch_url(stack))
        status, code = out.response.status_code, out.error_code
    except Exception as exc:  # a dropped connection: no answer at all
        status, code = 0, type(exc).__name__
    return Result(started - t0, time.monotonic() - started, status, code)


@contextlib.contextmanager
def storage_paused(stack: Stack) -> Iterator[None]:
    os.killpg(stack.azurite.proc.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.killpg(stack.azurite.proc.pid, signal.SIGCONT)


def at(t0: float, when: float, do: Callable[[], None]) -> threading.Thread:
    def run() -> None:
        time.sleep(max(0.0, t0 + when - time.monotonic()))
        do()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def chaos(stack: Stack) -> tuple[list[Result], dict[str, tuple[float, float]]]:
    """The run: every launch's result, and each fault's (start, clear) in seconds into it."""
    warm = Browser(stack.sandbox, entra_user=CLINICIAN).go(launch_url(stack))  # signs in once
    if warm.response.status_code != 200:
        raise RuntimeError(f"warm-up launch failed: {warm.response.status_code}")
    windows: dict[str, tuple[float, float]] = {}
    t0 = time.monotonic()

    def pause_storage() -> None:
        begun = time.monotonic() - t0
        with storage_paused(stack):
            time.sleep(FAULT_FOR)
        windows["storage paused"] = (begun, time.monotonic() - t0)

    def hang_ehr() -> None:
        begun = time.monotonic() - t0
        stack.sandbox.inject(
            family="ehr-token", kind="hang", seconds=BUDGET + 5, duration=FAULT_FOR
        )
        time.sleep(FAULT_FOR)
        windows["EHR token hung"] = (begun, time.monotonic() - t0)

    faults = [at(t0, STORAGE_AT, pause_storage), at(t0, EHR_AT, hang_ehr)]
    results: list[Result] = []
    lock = threading.Lock()

    def launch() -> None:
        got = one_launch(stack, t0)
        with lock:
            results.append(got)

    threads = [at(t0, i / RATE, launch) for i in range(LAUNCHES)]
    for thread in [*threads, *faults]:
        thread.join()
    return sorted(results, key=lambda r: r.started), windows


def _pct(values: list[float], q: float) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def report(results: list[Result], windows: dict[str, tuple[float, float]]) -> list[tuple]:
    rows: list[tuple[str, str, str]] = []
    outcomes = Counter("ok" if r.ok else f"{r.status} {r.code}" for r in results)
    rows.append(("chaos launches", str(len(results)), f"{RATE:g}/s; " + ", ".join(
        f"{k}: {v}" for k, v in sorted(outcomes.items()))))  # fmt: skip
    rows.append(("chaos answers of 500 / none", str(sum(r.status in (0, 500) for r in results)),
                 "goal 0"))  # fmt: skip
    slow = [r for r in results if r.took > BUDGET + 1]
    rows.append(("chaos answers > budget + 1 s", str(len(slow)), f"goal 0 (budget {BUDGET:g} s)"))
    for name, (begun, cleared) in windows.items():
        during = [r.took for r in results if begun <= r.started < cleared]
        if during:
            note = f"{len(during)} launches; max {max(during):.2f} s"
            p50, p99 = _pct(during, 50), _pct(during, 99)
            rows.append((f"chaos {name}: p50 / p99", f"{p50:.2f}/{p99:.2f} s", note))
        after = [r for r in results if r.started >= cleared]
        first_ok = next((r for r in after if r.ok), None)
        gap = f"{first_ok.started + first_ok.took - cleared:.2f} s" if first_ok else "never"
        first = "yes" if after and after[0].ok else "no"
        rows.append((f"chaos {name}: clear -> success", gap, f"first launch after it ok: {first}"))
    calm = [
        r.took for r in results if not any(b <= r.started < c + BUDGET for b, c in windows.values())
    ]
    if calm:
        rows.append(("chaos calm: p50 / p99", f"{_pct(calm, 50):.2f}/{_pct(calm, 99):.2f} s",
                     f"{len(calm)} launches outside the faults"))  # fmt: skip
    return rows


def run() -> list[tuple[str, str, str]]:
    with stack_running("chaos") as stack:
        results, windows = chaos(stack)
    return report(results, windows)
