"""The request's time budget (lib/net/budget.py) and what reads it."""

from __future__ import annotations

import logging
import threading
import time
from types import SimpleNamespace

import pytest

from lib.net import budget
from lib.net.budget import leaving, may_wait, remaining, spent, unavailable, within
from lib.storage import StorageUnavailable
from lib.storage.account import budget_hook


def test_without_a_budget_nothing_is_cut():
    assert budget.current() is None
    assert remaining(7.0) == 7.0 and may_wait(100.0) and not spent()


def test_a_budget_cuts_timeouts_and_waits_to_what_is_left():
    with within(2.0) as b:
        assert remaining(5.0) <= 2.0 and remaining(0.5) == 0.5
        assert may_wait(1.0) and not may_wait(1.99)
        assert b.kind == "interactive"
    assert budget.current() is None


def test_a_nested_budget_never_outlives_its_parent():
    with within(1.0), within(30.0, "background") as inner:
        assert inner.remaining() <= 1.0
    with within(5.0), leaving(4.5) as inner:
        assert inner is not None and inner.remaining() <= 0.5
    with leaving(3.0) as none:
        assert none is None


def test_a_spent_budget_starts_nothing():
    with within(0.01):
        time.sleep(0.02)
        assert spent() and remaining(3.0) == 0.0


def test_a_budget_is_per_context():
    seen: list[object] = []
    with within(5.0):
        thread = threading.Thread(target=lambda: seen.append(budget.current()))
        thread.start()
        thread.join()
    assert seen == [None]  # a plain thread does not inherit it: copy the context


def test_unavailable_logs_the_dependency_and_the_time(caplog):
    caplog.set_level(logging.WARNING)
    with within(10.0):
        err = unavailable("ehr", "token: too slow", host="ehr.example.org", retry_after=7.4)
    assert (err.code, err.status, err.headers) == ("SRV-EHR-UNAVAILABLE", 503, {"Retry-After": "7"})
    (record,) = [r for r in caplog.records if r.name == "lib.net.budget"]
    assert "dependency unavailable: ehr ehr.example.org after" in record.getMessage()
    assert record.dependency == "ehr" and record.duration_ms >= 0
    assert budget.recent_failures()["ehr"] == "token: too slow"
    budget.note_success("ehr")
    assert "ehr" not in budget.recent_failures()


@pytest.mark.parametrize(("asked", "header"), [(None, "30"), (0.2, "1"), (9999, "300")])
def test_retry_after_is_passed_on_within_bounds(asked, header):
    assert unavailable("microsoft", "x", retry_after=asked).headers == {"Retry-After": header}


def test_every_dependency_code_is_a_503_in_the_catalogue():
    from lib.web.errors import CATALOGUE

    assert all(CATALOGUE[code].status == 503 for code in budget.DEPENDENCY_CODES.values())


def request_with(**options):
    return SimpleNamespace(context=SimpleNamespace(options=dict(options)))


def test_the_storage_hook_cuts_each_try_to_the_budget():
    hook = budget_hook(2, 3)
    outside = request_with()
    hook(outside)
    assert outside.context.options == {}  # no budget: the client's own timeouts
    with within(1.0):
        cut = request_with(connection_timeout=2)
        hook(cut)
        assert cut.context.options["connection_timeout"] <= 1.0
        assert cut.context.options["read_timeout"] <= 1.0
    with within(30.0):
        kept = request_with()
        hook(kept)
        assert kept.context.options == {"connection_timeout": 2, "read_timeout": 3}
    with within(0.01):
        time.sleep(0.02)
        with pytest.raises(StorageUnavailable):
            hook(request_with())


@pytest.mark.parametrize("sent", ["²", "٣", "9" * 40, "-1", "1.5"])
def test_a_retry_after_that_is_no_plain_number_or_date_is_none(sent):
    from lib.net.retry import retry_after_seconds

    assert retry_after_seconds(sent) is None
    assert retry_after_seconds(" 7 ") == 7.0
