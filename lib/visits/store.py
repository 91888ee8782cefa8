"""Visits, their events, and the clinicians' EHR-to-Microsoft mapping, in Table Storage.

What is stored, and only this: the visit key (a keyed hash of endpoint + appointment), the
meeting id and join URL, times, the department label, the organizer's Entra object id; events
(who connected when, by role); the mapping of a keyed hash of the EHR user id to an Entra object
id. No names, no patient ids, no appointment ids in clear.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Literal

from lib.storage import ConcurrencyConflict, CreateResult, Entity, TableStore

VISITS = "Visits"
EVENTS = "VisitEvents"
MAPPINGS = "UserMappings"

Role = Literal["provider", "patient"]


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

    @property
    def key(self) -> str:
        return self.partition_key


class VisitEvent(Entity):
    """PartitionKey: the visit key; RowKey `{ms}-{id}` so a partition reads in time order."""

    event_id: str
    kind: str  # provider.connected, patient.connected, ... .disconnected, visit.ended
    role: str
    at: datetime
    source: str  # launch, join, graph


class UserMapping(Entity):
    """PartitionKey: endpoint id; RowKey: keyed hash of the EHR user id."""

    entra_oid: str
    created_at: datetime


class VisitStore:
    def __init__(self, store: TableStore) -> None:
        self._visits = store.table(VISITS, Visit)
        self._events = store.table(EVENTS, VisitEvent)
        self._mappings = store.table(MAPPINGS, UserMapping)

    # --- visits ---------------------------------------------------------------------------------
    def get(self, visit_key: str) -> Visit | None:
        return self._visits.get(visit_key, "visit")

    def claim(self, visit: Visit) -> CreateResult[Visit]:
        """Create-if-absent: the first launch of an appointment decides its organizer."""
        return self._visits.create(visit)

    def attach_meeting(self, visit: Visit, meeting_id: str, join_url: str) -> Visit:
        """Record the meeting once; a concurrent launch that got there first wins, same meeting."""
        if visit.meeting_id == meeting_id and visit.join_url == join_url:
            return visit
        try:
            return self._visits.update(
                visit.model_copy(update={"meeting_id": meeting_id, "join_url": join_url})
            )
        except ConcurrencyConflict:
            return self.get(visit.key) or visit

    def reassign(self, visit: Visit, organizer_oid: str) -> Visit:
        """Give a visit without a meeting to another organizer (ETag: one concurrent takeover)."""
        try:
            return self._visits.update(visit.model_copy(update={"organizer_oid": organizer_oid}))
        except ConcurrencyConflict:
            return self.get(visit.key) or visit

    # --- events ---------------------------------------------------------------------------------
    def record(self, visit_key: str, kind: str, role: Role, source: str) -> VisitEvent:
        now = datetime.now(UTC)
        event_id = uuid.uuid4().hex
        event = VisitEvent(
            partition_key=visit_key,
            row_key=f"{int(now.timestamp() * 1000):013d}-{event_id[:12]}",
            event_id=event_id,
            kind=kind,
            role=role,
            at=now,
            source=source,
        )
        return self._events.create(event).entity

    def events(self, visit_key: str) -> list[VisitEvent]:
        return list(self._events.partition(visit_key))

    def presence(self, visit_key: str) -> dict[str, str]:
        """Each role's latest state: connected / disconnected / not connected."""
        state = {"provider": "not connected", "patient": "not connected"}
        for event in self.events(visit_key):  # time order: the last one wins
            if event.kind.endswith(".connected"):
                state[event.role] = "connected"
            elif event.kind.endswith(".disconnected"):
                state[event.role] = "disconnected"
        return state

    # --- clinicians' mapping ---------------------------------------------------------------------
    def mapping(self, endpoint_id: str, user_hash: str) -> str | None:
        found = self._mappings.get(endpoint_id, user_hash)
        return found.entra_oid if found else None

    def mappings(self, endpoint_id: str, entra_oid: str | None = None) -> list[UserMapping]:
        if entra_oid:
            return list(self._mappings.partition(endpoint_id, "entra_oid eq @oid", oid=entra_oid))
        return list(self._mappings.partition(endpoint_id))

    def forget(self, endpoint_id: str, user_hash: str) -> UserMapping | None:
        """Remove a mapping (the clinician signs in to Microsoft again on their next launch)."""
        try:
            found = self._mappings.get(endpoint_id, user_hash)
        except ValueError:
            return None
        if found is not None:
            self._mappings.delete(endpoint_id, user_hash)
        return found

    def remember(self, endpoint_id: str, user_hash: str, entra_oid: str) -> None:
        self._mappings.upsert(
            UserMapping(
                partition_key=endpoint_id,
                row_key=user_hash,
                entra_oid=entra_oid,
                created_at=datetime.now(UTC),
            )
        )
