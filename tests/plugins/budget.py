"""The whole suite has a time budget, well inside CI's limit.

The suite takes about ten minutes here. If something makes every test slow (a stuck emulator,
a service that no longer answers), the run stops once the budget is spent and prints its summary,
so the failures and their reasons are seen, instead of CI killing a silent run at its limit.
``TEST_BUDGET_MINUTES`` changes it (0: no budget)."""

from __future__ import annotations

import os
import time

import pytest

DEFAULT_MINUTES = 40.0
_started = time.monotonic()


def budget_minutes() -> float:
    return float(os.environ.get("TEST_BUDGET_MINUTES", DEFAULT_MINUTES))


_sessions: list[pytest.Session] = []


def pytest_sessionstart(session: pytest.Session) -> None:
    global _started
    _started = time.monotonic()
    _sessions.append(session)


def pytest_runtest_logfinish(nodeid: str, location) -> None:
    budget = budget_minutes()
    spent = (time.monotonic() - _started) / 60
    if budget and spent > budget and _sessions:
        # Stop as -x does, so the summary of the failures so far is printed.
        _sessions[0].shouldstop = (
            f"the suite has run {spent:.1f} min, over its budget of {budget:g} min "
            f"(last test: {nodeid}); something made the tests slow: see the failures"
        )
