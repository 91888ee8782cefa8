"""Visits and their events, in Table Storage.

What is stored, and only this: the visit key (a keyed hash of endpoint + appointment), the
meeting id and join URL, times, the department label, the organizer's Entra object id, since when
an opener has been making the meeting; events (who connected when, by persona). No names, no
patient ids, no appointment ids in clear.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from typing import TypeVar

from lib.storage import (
    ConcurrencyConflict,
    CreateResult,
    Entity,
    Rows,
    StorageError,
    TableStore,
)
from lib.visits.events import VisitEventMessage, VisitState

VISITS = "Visits"
EVENTS = "VisitEvents"


class Visit(Entity):
    """PartitionKey: the visit key; RowKey `visit`."""

    endpoint_id: str
    organizer_oid: str
    meeting_id: str | None = None
    join_url: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    department: str | None = None
    created_at: datetime
    created_by_role: str
    # Set while the launch that claimed the visit (or took it over) makes its meeting: the others
    # wait for that meeting instead of asking Graph themselves (lib/visits/opening.py). Cleared
    # when the meeting is attached or that launch gives up; a crashed one leaves it, and the
    # wait for it is bounded from this time.
    opening_since: datetime | None = None
    # From scheduling intake (lib/sms): the appointment's version as the EHR last sent it (a
    # reschedule raises it, so older texts' join links stop working) and its cancellation.
    schedule_version: int | None = None
    cancelled_at: datetime | None = None
    schedule_sent_at: datetime | None = None  # the last applied message's own time

    @property
    def key(self) -> str:
        return self.partition_key


class VisitEvent(Entity):
    """PartitionKey: the visit key; RowKey `{ms}-{id}` so a partition reads in time order."""

    event_id: str
    kind: str  # arrived, lobby, joined, left, ended (lib/visits/events.py)
    role: str  # the persona: provider or patient, or "visit" (the stored name stays "role")
    at: datetime  # when it happened
    source: str  # launch, join, sms, graph, ...
    participant: str | None = None  # a keyed hash, when the source tells people apart

    def message(self) -> VisitEventMessage:
        return VisitEventMessage(
            event_id=self.event_id,
            visit_key=self.partition_key,
            kind=LEGACY_KINDS.get(self.kind, self.kind),  # type: ignore[arg-type]
            role=self.role,  # type: ignore[arg-type]
            at=self.at,
            source=self.source,  # type: ignore[arg-type]
            participant=self.participant,
        )


# Kinds written before the event model (`{persona}.connected` when a launch sent them on).
LEGACY_KINDS = {
    "provider.connected": "arrived",
    "patient.connected": "arrived",
    "provider.disconnected": "left",
    "patient.disconnected": "left",
    "visit.ended": "ended",
}


class VisitStateRow(Entity, VisitState):
    """PartitionKey: the visit key; RowKey `state`. Written only under its ETag
    (lib/visits/timeline.py), always as the fold of the visit's events."""


E = TypeVar("E", bound=Entity)


class VisitRows:
    """A visit's partition in Visits, read in one round trip: its row, its state, and what later
    steps keep beside it (the write-back row, the report pointer, call quality). The timeline
    reads it once per event and hands it to every listener, instead of a read per row each."""

    def __init__(self, visit_key: str, rows: Rows) -> None:
        self.key = visit_key
        self._rows = rows

    @property
    def visit(self) -> Visit | None:
        return self._rows.get(Visit, "visit")

    @property
    def state_row(self) -> VisitStateRow | None:
        return self._rows.get(VisitStateRow, "state")

    def state(self) -> VisitState:
        """The stored state (a visit without events yet: the empty one)."""
        row = self.state_row
        return VisitState.model_validate(row.model_dump()) if row else VisitState()

    def get(self, model: type[E], row_key: str) -> E | None:
        return self._rows.get(model, row_key)


class VisitStore:
    def __init__(self, store: TableStore) -> None:
        self._store = store
        self._visits = store.table(VISITS, Visit)
        self._events = store.table(EVENTS, VisitEvent)
        self._states = store.table(VISITS, VisitStateRow)

    # --- visits ---------------------------------------------------------------------------------
    def get(self, visit_key: str) -> Visit | None:
        return self._visits.get(visit_key, "visit")

    def rows(self, visit_key: str) -> VisitRows:
        """Every row of the visit's partition (its row, state, and the rows kept beside them)."""
        return VisitRows(visit_key, self._store.partition_rows(VISITS, visit_key))

    def claim(self, visit: Visit) -> CreateResult[Visit]:
        """Create-if-absent: the first launch of an appointment decides its organizer."""
        return self._visits.create(visit)

    def attach_meeting(
        self,
        visit: Visit,
        meeting_id: str,
        join_url: str,
        times: tuple[datetime | None, datetime | None] | None = None,
    ) -> Visit:
        """Record the meeting once; a concurrent launch that got there first wins, same meeting.

        `times`: the visit's start / end, when they were learnt only while the meeting was made.
        """
        if visit.meeting_id == meeting_id and visit.join_url == join_url:
            return visit
        update: dict = {"meeting_id": meeting_id, "join_url": join_url, "opening_since": None}
        if times is not None:
            update |= {"start": times[0], "end": times[1]}
        try:
            return self._visits.update(visit.model_copy(update=update))
        except ConcurrencyConflict:
            return self.get(visit.key) or visit

    def reassign(self, visit: Visit, organizer_oid: str) -> tuple[Visit, bool]:
        """Give a visit without a meeting to another organizer (ETag: one concurrent takeover).

        Returns the visit and whether this call took it over (and so now makes its meeting);
        when another launch changed it first, the visit as that launch left it.
        """
        update = {"organizer_oid": organizer_oid, "opening_since": datetime.now(UTC)}
        try:
            return self._visits.update(visit.model_copy(update=update)), True
        except ConcurrencyConflict:
            return self.get(visit.key) or visit, False

    def update(self, visit: Visit, **changes: object) -> Visit:
        """The visit with ``changes``, only if unchanged since read (ConcurrencyConflict)."""
        return self._visits.update(visit.model_copy(update=changes))

    def give_up_opening(self, visit: Visit) -> None:
        """The opener of `visit` failed: whoever waits for its meeting stops waiting now.

        Best effort under the ETag it claimed with: a row changed meanwhile is someone else's.
        """
        # On a failure to write, the waiters' bound still holds; the opener's own error counts.
        with contextlib.suppress(StorageError):
            self._visits.update(visit.model_copy(update={"opening_since": None}))

    # --- events: written only by the visit-events queue function (lib/visits/timeline.py); a
    # source sends them with `VisitEvents.emit`, never here, so the state sees every one --------
    def events(self, visit_key: str) -> list[VisitEvent]:
        return list(self._events.partition(visit_key))

    def record(self, event: VisitEventMessage) -> bool:
        """Store `event` once: its row key comes from the event itself, so the same event again
        (a queue's redelivery, Graph's, a replay) finds its row. Returns whether it was new."""
        row_key = f"{int(event.at.timestamp() * 1000):013d}-{event.event_id}"
        row = VisitEvent(
            partition_key=event.visit_key,
            row_key=row_key,
            event_id=event.event_id,
            kind=event.kind,
            role=event.role,
            at=event.at,
            source=event.source,
            participant=event.participant,
        )
        return self._events.create(row).created

    def messages(self, visit_key: str) -> list[VisitEventMessage]:
        return [e.message() for e in self.events(visit_key)]

    # --- state: what the events add up to -------------------------------------------------------
    def state(self, visit_key: str) -> VisitStateRow | None:
        return self._states.get(visit_key, "state")

    def save_state(self, visit_key: str, state: VisitState, etag: str | None) -> VisitStateRow:
        """Write the state under the ETag it was read with (none: create it). Raises
        `ConcurrencyConflict` when another writer got there first."""
        fields = state.model_dump(include=set(VisitState.model_fields))
        row = VisitStateRow(partition_key=visit_key, row_key="state", **fields)
        if etag is None:
            created = self._states.create(row)
            if not created.created:
                raise ConcurrencyConflict("Visits: state created meanwhile")
            return created.entity
        return self._states.update(row, etag=etag)
