"""Independent calls of one request, run side by side.

A launch's storage reads and upstream calls that do not need each other's answers overlap, so a
request costs its longest chain of dependent calls, not their sum. Rules that keep this safe:

- Every call is waited for, whatever happens: no call outlives the request that made it.
- When calls fail, the exception of the first failing call *in argument order* is raised, so the
  caller decides which failure speaks (the single-use check before the token answer it guards).
- Each extra call runs on a thread of its own with a copy of the caller's context (contextvars:
  a request's time budget and log fields follow it). A fresh thread costs tens of microseconds;
  a shared pool could deadlock when an overlapped call overlaps calls of its own.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable
from typing import Any


class _Call(threading.Thread):
    def __init__(self, fn: Callable[[], Any]) -> None:
        super().__init__(name="overlap", daemon=True)
        self._fn = fn
        self._context = contextvars.copy_context()
        self.result: Any = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = self._context.run(self._fn)
        except BaseException as exc:  # handed to the caller, raised on its thread
            self.error = exc


def together(*calls: Callable[[], Any]) -> tuple[Any, ...]:
    """Run `calls` at the same time; their results in order, once all have finished.

    The first call runs on the caller's thread.
    """
    if not calls:
        return ()
    others = [_Call(fn) for fn in calls[1:]]
    for call in others:
        call.start()
    first: Any = None
    first_error: BaseException | None = None
    try:
        first = calls[0]()
    except BaseException as exc:
        first_error = exc
    for call in others:
        call.join()
    errors = [first_error, *(call.error for call in others)]
    for error in errors:
        if error is not None:
            raise error
    return (first, *(call.result for call in others))
