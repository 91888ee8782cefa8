"""One time budget per piece of work, and what a dependency that does not answer becomes.

A person waiting (a clinician with a patient in the room) gets one budget for the whole request
(CONNECTOR_INTERACTIVE_BUDGET_SECONDS, set by functions/_http.py); a timer or queue run gets a
longer one (CONNECTOR_BACKGROUND_BUDGET_SECONDS). Every outbound call reads what is left of it:
connect and read timeouts, the whole exchange's deadline, every retry's wait, every lock and the
wait for another launch's meeting are cut to what remains, so no single step can spend the
person's time twice. The budget travels in a context variable: a thread started for part of the
request must run in a copy of the context (`contextvars.copy_context().run`).

When a dependency does not answer in time (or answers 5xx / 429 past the budget), the caller
turns that into the dependency's own 503 code with `unavailable(...)`: one log line naming the
dependency, the host and how long the person waited, and Retry-After on the answer. The health
report lists dependencies whose last call failed (`recent_failures`).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from lib.web.errors import AppError

log = logging.getLogger(__name__)

# Each dependency's catalogue code: the page says what the person can do about it.
DEPENDENCY_CODES = {
    "storage": "SRV-STORAGE-UNAVAILABLE",
    "ehr": "SRV-EHR-UNAVAILABLE",
    "microsoft": "SRV-MICROSOFT-UNAVAILABLE",
    "sms": "SRV-SMS-UNAVAILABLE",  # Azure Communication Services (lib/sms)
}
RETRY_AFTER = 30  # seconds, when the dependency named none: "try again in a minute"
MAX_RETRY_AFTER = 300  # a dependency asking for longer is passed on capped
# Below this, a call is not worth starting: it could not even connect.
MIN_USEFUL = 0.05


@dataclass
class Budget:
    seconds: float
    kind: str = "interactive"  # or "background"
    started: float = field(default_factory=time.monotonic)

    @property
    def deadline(self) -> float:
        return self.started + self.seconds

    def remaining(self) -> float:
        return max(0.0, self.deadline - time.monotonic())

    def elapsed(self) -> float:
        return time.monotonic() - self.started


_current: ContextVar[Budget | None] = ContextVar("budget", default=None)


@contextlib.contextmanager
def within(seconds: float, kind: str = "interactive") -> Iterator[Budget]:
    """Run the block under a budget of `seconds` (a nested budget never outlives its parent)."""
    outer = _current.get()
    budget = Budget(seconds, kind)
    if outer is not None and outer.remaining() < seconds:
        budget = Budget(outer.remaining(), outer.kind)
    token = _current.set(budget)
    try:
        yield budget
    finally:
        _current.reset(token)


@contextlib.contextmanager
def leaving(seconds: float) -> Iterator[Budget | None]:
    """Run the block under a budget that ends `seconds` before the current one: what must
    follow a failure (saying so in storage) keeps its time. Without a budget: no bound."""
    outer = _current.get()
    if outer is None:
        yield None
        return
    with within(max(outer.remaining() - seconds, 0.0), outer.kind) as inner:
        yield inner


def current() -> Budget | None:
    return _current.get()


def remaining(cap: float) -> float:
    """`cap`, or what is left of the budget when that is less."""
    budget = _current.get()
    return cap if budget is None else min(cap, budget.remaining())


def spent() -> bool:
    """True when too little is left to start another call."""
    budget = _current.get()
    return budget is not None and budget.remaining() < MIN_USEFUL


def may_wait(seconds: float) -> bool:
    """Whether waiting `seconds` (before a retry) still leaves time for the retry itself."""
    budget = _current.get()
    return budget is None or seconds + MIN_USEFUL < budget.remaining()


# --- dependencies that did not answer ----------------------------------------------------------


@dataclass
class _Seen:
    failed_at: float | None = None
    ok_at: float | None = None
    detail: str = ""


_seen: dict[str, _Seen] = {name: _Seen() for name in DEPENDENCY_CODES}
_seen_lock = threading.Lock()


def note_success(dependency: str) -> None:
    with _seen_lock:
        _seen[dependency].ok_at = time.monotonic()


def recent_failures(window: float = 300.0) -> dict[str, str]:
    """Dependencies whose last call failed (within `window` seconds): name -> short detail."""
    now = time.monotonic()
    with _seen_lock:
        return {
            name: seen.detail
            for name, seen in sorted(_seen.items())
            if seen.failed_at is not None
            and now - seen.failed_at < window
            and (seen.ok_at is None or seen.ok_at < seen.failed_at)
        }


def retry_after_header(seconds: float | None) -> dict[str, str]:
    wait = RETRY_AFTER if seconds is None else min(max(1, round(seconds)), MAX_RETRY_AFTER)
    return {"Retry-After": str(wait)}


def unavailable(
    dependency: str,
    detail: str,
    *,
    host: str | None = None,
    started: float | None = None,
    retry_after: float | None = None,
    code: str | None = None,
) -> AppError:
    """The 503 for a dependency that did not answer in time, logged once with its duration.

    `started`: when the failing call began (monotonic); by default the budget's start, so the
    log says how long the person waited. `retry_after`: what the dependency asked for, if any.
    `code`: a more precise code of the same dependency (AUTH-KEYS-UNAVAILABLE for Entra's keys).
    """
    code = code or DEPENDENCY_CODES[dependency]
    budget = _current.get()
    since = started if started is not None else (budget.started if budget else None)
    duration_ms = int((time.monotonic() - since) * 1000) if since is not None else None
    with _seen_lock:
        seen = _seen[dependency]
        seen.failed_at, seen.detail = time.monotonic(), detail[:120]
    fields: dict[str, Any] = {
        "dependency": dependency,
        "dependency_host": host,
        "duration_ms": duration_ms,
        "error_code": code,
        "budget_kind": budget.kind if budget else None,
    }
    log.warning(
        "dependency unavailable: %s%s after %s ms (%s)",
        dependency,
        f" {host}" if host else "",
        duration_ms if duration_ms is not None else "?",
        detail,
        extra=fields,
    )
    return AppError(code, detail, headers=retry_after_header(retry_after))


def acquire(lock: Any, cap: float) -> bool:
    """Take `lock`, waiting no longer than `cap` nor than the budget has left."""
    return bool(lock.acquire(timeout=max(remaining(cap), 0.0)))


# --- SDK-driven HTTP (msal, Graph) ---------------------------------------------------------------


def _capped(timeout: Any, left: float) -> Any:
    if timeout is None:
        return (left, left)
    if isinstance(timeout, tuple):
        return tuple(left if t is None else min(t, left) for t in timeout)
    return min(float(timeout), left)


def bounded_session() -> Any:
    """A requests.Session whose every request obeys the budget: timeouts cut to what is left,
    and the whole exchange under a `Deadline` (a trickling answer cannot outlast it). For the
    libraries that make their own calls (msal) and for Graph; outside a budget it is a plain
    session."""
    import requests

    from lib.net.guard import Deadline, watched_adapter_class

    class BoundedSession(requests.Session):
        def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> Any:
            budget = _current.get()
            if budget is None:
                return super().request(method, url, *args, **kwargs)
            left = budget.remaining()
            if left < MIN_USEFUL:
                raise requests.exceptions.ConnectTimeout("the request's time budget is spent")
            kwargs["timeout"] = _capped(kwargs.get("timeout"), left)
            with Deadline(left) as deadline:
                try:
                    return super().request(method, url, *args, **kwargs)
                except requests.exceptions.RequestException:
                    if deadline.expired:  # the socket was shut under a trickling answer
                        raise requests.exceptions.ReadTimeout("too slow to answer") from None
                    raise

    session = BoundedSession()
    adapter = watched_adapter_class()()
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session
