"""The `graph-tasks` queue: Graph work that nobody waits for, and must not be lost.

A notification is answered in milliseconds (Graph wants 2xx within seconds, or it slows its
deliveries to us), and a launch never waits for Graph's subscriptions: what they ask for goes
on this queue as a `GraphTask`, and `functions/graph_tasks.py` does it under the background
budget. At least once, like every queue: each task is idempotent (a subscription made twice is
found the second time; a record or a reconciliation makes events with deterministic ids). A task
that fails raises, the queue retries it, and after maxDequeueCount it waits in
`graph-tasks-poison`.

`GraphFollower` is the visit timeline's listener that sends them: a visit's first people make
its meeting subscription; its end removes it and asks for the attendance report.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from lib.storage import QueueSender
from lib.telemetry import TRACEPARENT, stamped
from lib.visits.timeline import Applied

log = logging.getLogger(__name__)

GRAPH_TASKS_QUEUE = "graph-tasks"
TaskKind = Literal["subscribe", "unsubscribe", "renew", "recreate", "reconcile", "record"]
_ID = r"^[A-Za-z0-9_.:-]{1,128}$"


class GraphTask(BaseModel):
    """One piece of Graph work. Ids only: a visit key, a subscription or call record id."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    task: TaskKind
    visit_key: str | None = Field(default=None, pattern=_ID)
    subscription_id: str | None = Field(default=None, pattern=_ID)
    record_id: str | None = Field(default=None, pattern=_ID)
    traceparent: str | None = Field(default=None, pattern=TRACEPARENT)  # the sender's trace

    @classmethod
    def from_text(cls, text: str | bytes) -> GraphTask:
        return cls.model_validate(json.loads(text))


class GraphTasks:
    def __init__(self, queue: Callable[[], QueueSender]) -> None:
        self._queue = queue

    def send(self, task: GraphTask, delay_seconds: int | None = None) -> None:
        self._queue().send(
            stamped(task).model_dump_json(exclude_none=True), delay_seconds=delay_seconds
        )
        log.info("graph task queued", extra={"task": task.task, "visit": task.visit_key})


class GraphFollower:
    """Listens to the visit timeline (called after each applied event, duplicates included)."""

    def __init__(self, tasks: GraphTasks, reconcile_delay: int) -> None:
        self._tasks = tasks
        self._reconcile_delay = reconcile_delay

    def __call__(self, applied: Applied) -> None:
        event = applied.event
        if event.kind == "arrived":
            # Someone is on the way in: the meeting's subscription must exist before they reach
            # the lobby (made once; a second arrival finds it).
            self._tasks.send(GraphTask(task="subscribe", visit_key=event.visit_key))
        elif event.kind == "ended" and event.source == "graph":
            self._tasks.send(GraphTask(task="unsubscribe", visit_key=event.visit_key))
            # Graph publishes the attendance report minutes after the meeting ends.
            self._tasks.send(
                GraphTask(task="reconcile", visit_key=event.visit_key),
                delay_seconds=self._reconcile_delay or None,
            )
