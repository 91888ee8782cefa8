"""What the sandbox's webhook senders share (Event Grid's for SMS events, Graph's notifications):
a queue drained by a thread of its own, started on first use, and a count of what is neither
delivered nor given up yet, which tests wait on (`wait_idle`)."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from typing import Any


class Outbox:
    def __init__(self, name: str, run: Callable[[Outbox], None]) -> None:
        """`run(outbox)` drains it (on its own thread): `get()` each item, `finished()` once one
        is delivered or given up, `put(item, new=False)` to retry one."""
        self._name, self._run = name, run
        self._queue: queue.Queue[Any] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._idle = threading.Condition()
        self._pending = 0

    def put(self, item: Any, *, new: bool = True) -> None:
        """Queue `item`; `new` counts it as pending (a retry of one already counted is not)."""
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, args=(self,), name=self._name)
            self._thread.daemon = True
            self._thread.start()
        if new:
            with self._idle:
                self._pending += 1
        self._queue.put(item)

    def get(self) -> Any:
        return self._queue.get()

    def finished(self) -> None:
        with self._idle:
            self._pending -= 1
            self._idle.notify_all()

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """True once everything queued was delivered or given up (for tests)."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    def stop(self) -> None:
        """Ends the thread after what is queued (its `run` stops on a None item)."""
        if self._thread is not None:
            self._queue.put(None)
