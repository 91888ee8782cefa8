"""lib/net/overlap.py: independent calls side by side, every one waited for, errors in order."""

from __future__ import annotations

import contextvars
import threading
import time

import pytest

from lib.net.overlap import together

REQUEST = contextvars.ContextVar("request", default=None)


def test_results_in_argument_order_and_calls_overlap():
    barrier = threading.Barrier(3, timeout=5)  # passes only if all three run at once

    def call(value):
        def run():
            barrier.wait()
            return value

        return run

    assert together(call(1), call(2), call(3)) == (1, 2, 3)


def test_the_first_failing_call_in_argument_order_speaks_after_all_finished():
    finished = []

    def slow_ok():
        time.sleep(0.2)
        finished.append("slow")
        return "ok"

    def fails_first_in_time():
        raise KeyError("token answer")

    def fails_later():
        time.sleep(0.1)
        raise ValueError("state used")

    with pytest.raises(ValueError, match="state used"):
        together(fails_later, fails_first_in_time, slow_ok)
    assert finished == ["slow"]  # nothing outlives the request


def test_the_caller_context_follows_each_call():
    REQUEST.set("req-1")
    seen = together(REQUEST.get, REQUEST.get, lambda: threading.current_thread().name)
    assert seen[:2] == ("req-1", "req-1")
    assert seen[2] == "overlap"


def test_no_calls_no_threads():
    assert together() == ()
