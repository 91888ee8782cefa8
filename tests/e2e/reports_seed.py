"""Demo visits in the running app, through the visit-events queue (dev/demo.py), and the wait
until the host's queue function has applied every one of their events."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
import requests

from dev.demo import seed_demo_visits


def report_range(endpoint: str, days: int) -> dict[str, str]:
    today = datetime.now(UTC).date()
    # the demo's days are Chicago days; an endpoint not registered has its rows on UTC days
    return {"endpoint": endpoint, "from": (today - timedelta(days=days + 2)).isoformat(),
            "to": today.isoformat()}  # fmt: skip


def seed_and_wait(app, endpoint: str, days: int, per_day: int) -> list[dict]:
    """The seeded visits as the reports API gives them, once they stop changing."""
    from lib.bootstrap import build
    from lib.settings import load_settings

    # Up to yesterday: these endpoints write nothing back, and the newest keep their reference.
    svc = build(load_settings(app.env))
    made = seed_demo_visits(svc, [endpoint], days, per_day=per_day, last=1)
    admin, last, deadline = app.session("admin"), None, time.monotonic() + 90
    params = {**report_range(endpoint, days), "pageSize": 1000}
    while time.monotonic() < deadline:  # until every event is applied: two reads alike
        try:
            got = admin.get(app.api("reports/visits"), params=params, timeout=20).json()
        except requests.Timeout:
            continue
        if len(got["items"]) == made and got == last:
            return got["items"]
        last = got
        time.sleep(1.5)
    log = app.host.log()
    pytest.fail(f"the demo visits were not all projected: {last}\nhost log: {log[-4000:]}")
