"""What every fault test checks besides the person's page: the operator's log line and health."""

from __future__ import annotations

import pytest
import requests

# The app's interactive budget (CONNECTOR_INTERACTIVE_BUDGET_SECONDS, default 10 s) and the
# margin a loaded machine needs on top of it.
BUDGET = 10.0
SLACK = 5.0


def health(app) -> dict:
    return requests.get(app.api("health"), timeout=20, verify=app.verify).json()


def logged_since(app, mark: int) -> str:
    """What the host logged after `mark` (the log's length then)."""
    return app.host.log()[mark:]


@pytest.fixture
def faults(app):
    """The session sandbox with no faults before and after the test."""
    app.sandbox.faults.reset()
    yield app.sandbox
    app.sandbox.faults.reset()
