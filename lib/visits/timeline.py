"""Applying visit events: the queue's consumer side, and the launch's producer side.

`VisitTimeline.apply` stores the event once (its row key comes from the event, so a redelivery
finds it) and then writes the visit's state as the fold of *all* its stored events, under the
state row's ETag. Because the state is recomputed from the events rather than patched:

- order does not matter: a late "arrived" lands in its place in time, not on top;
- the same event twice changes nothing (one row, one fold);
- two workers applying two events of one visit at once: the one whose ETag went stale reads the
  state and events again and folds again, and the second fold includes both events (its read of
  the events comes after the other's write of the state, which came after that one's event row).

A worker that dies between the event row and the state write leaves the state one fold behind;
the queue redelivers the message, `record` finds the row, and the fold is written then.

What follows from a visit's state (the EHR write-back, the report projections) listens: after
the state is written, each listener is called with an `Applied`: the event, the visit's new
state, and the visit's partition as the apply read it (one read shared by all listeners, where
each used to read the visit and its own row itself). On every delivery, duplicates included.
So a listener runs at least once per event and must be idempotent (write what the state says,
not a delta); one that raises gives the message back to the queue, whose redelivery folds
nothing new and calls the listeners again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from lib.storage import ConcurrencyConflict, QueueSender, StorageUnavailable
from lib.telemetry import stamped
from lib.visits.events import Kind, Role, Source, VisitEventMessage, VisitState, fold
from lib.visits.store import Visit, VisitRows, VisitStore

log = logging.getLogger(__name__)

VISIT_EVENTS_QUEUE = "visit-events"
# ETag rounds before giving the message back to the queue (which retries it later). One visit
# has a handful of writers at most (two people, Graph), so a few rounds always suffice in practice.
MAX_ROUNDS = 8


class VisitEvents:
    """Sends events on: the one way every source (launch, join links, Graph) records them."""

    def __init__(self, queue: Callable[[], QueueSender]) -> None:
        self._queue = queue  # built on first use: the config API never sends events

    def ready(self) -> None:
        """Open the queue before traffic (warmup): the first launch's event is one round trip."""
        self._queue().ready()

    def publish(self, event: VisitEventMessage) -> None:
        self._queue().send(stamped(event).to_text())
        log.info("visit event queued", extra=_fields(event))

    def emit(self, visit_key: str, kind: Kind, role: Role, source: Source) -> VisitEventMessage:
        event = VisitEventMessage.new(visit_key, kind, role, source)
        self.publish(event)
        return event


@dataclass(frozen=True)
class Applied:
    """What a listener is given once an event is applied (see the module's docstring)."""

    event: VisitEventMessage
    state: VisitState  # the fold of every event the visit has, as now stored
    state_etag: str | None  # the stored state row's ETag: whether it changed since, at a glance
    rows: VisitRows  # the visit's partition as read by the apply (its state row: before it)

    @property
    def visit(self) -> Visit | None:
        return self.rows.visit


# Called after each applied event (see the module's docstring).
Listener = Callable[[Applied], None]


class VisitTimeline:
    def __init__(self, visits: VisitStore, listeners: Sequence[Listener] = ()) -> None:
        self._visits = visits
        self._listeners = tuple(listeners)

    def apply(self, event: VisitEventMessage) -> VisitState:
        """Record `event` and bring the visit's state up to date with every event it has."""
        new = self._visits.record(event)
        for _ in range(MAX_ROUNDS):
            rows = self._visits.rows(event.visit_key)
            row = rows.state_row
            state = fold(self._visits.messages(event.visit_key))
            current = VisitState.model_validate(row.model_dump()) if row else None
            if current == state:
                etag = row.etag if row else None
                break
            try:
                etag = self._visits.save_state(
                    event.visit_key, state, row.etag if row else None
                ).etag
                break
            except ConcurrencyConflict:
                continue  # another event of this visit was applied meanwhile: fold again
        else:
            # Left to the queue: the message becomes visible again and is applied then.
            raise StorageUnavailable(f"visit state still contended after {MAX_ROUNDS} rounds")
        log.info("visit event applied", extra=_fields(event) | {"duplicate": not new})
        applied = Applied(event, state, etag, rows)
        for listener in self._listeners:
            listener(applied)
        return state


def _fields(event: VisitEventMessage) -> dict[str, object]:
    """What a log line may say of an event (all of it: nothing in it identifies anyone)."""
    return {
        "event_id": event.event_id,
        "visit": event.visit_key,
        "kind": event.kind,
        "role": event.role,
        "source": event.source,
    }
