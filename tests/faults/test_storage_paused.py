"""Storage paused (SIGSTOP) in the middle of a launch: the person gets the storage page within
the interactive budget, the operator sees health degraded, and the first launch after it
resumes works (no poisoned connection, no stuck single-use state)."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator

import pytest

from dev.browser import Browser
from tests.e2e.test_launch import endpoints, launch_url  # noqa: F401 - the fixture, shared

BUDGET = 10.0  # seconds: the storage client's bound (about 7 s) and a margin for a busy machine


@contextlib.contextmanager
def paused(azurite) -> Iterator[None]:
    os.killpg(azurite.proc.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.killpg(azurite.proc.pid, signal.SIGCONT)


@pytest.mark.timeout(90)
def test_a_launch_with_storage_paused_fails_fast_and_recovers(app, azurite, endpoints):  # noqa: F811
    person = Browser(app.sandbox, entra_user="reyes")
    url = launch_url(app, "epic-launch-test", "provider", "epic", clinician="reyes")
    callback = person.to_callback(url)  # the launch start needs no storage: it got this far
    with paused(azurite):
        started = time.monotonic()
        out = person.go(callback)
        took = time.monotonic() - started
        health = app.session().get(app.api("health"), timeout=15)
    assert out.response.status_code == 503 and out.error_code == "SRV-STORAGE-UNAVAILABLE"
    assert out.response.headers.get("Retry-After")
    assert took < BUDGET, f"the storage page took {took:.1f} s"
    assert health.status_code == 503 and health.json()["storage"] == "unreachable"

    fresh = launch_url(app, "epic-launch-test", "provider", "epic", clinician="reyes")
    again = Browser(app.sandbox, entra_user="reyes").go(fresh)  # started again from the EHR
    assert again.response.status_code == 200 and "/api/visit#" in again.url
    assert app.session().get(app.api("health"), timeout=15).json()["status"] == "ok"
