"""MeetingStore: the Graph stand-in's meetings in memory (records: meetings.py), the
createOrGet index, rosters, and the listeners every roster change is handed to, in order,
after the lock is released."""

from __future__ import annotations

import dataclasses
import logging
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from dev.sandbox.graph.meetings import (
    IN_MEETING,
    LEFT,
    LOBBY,
    Listener,
    OnlineMeeting,
    Participant,
    RosterChange,
    RosterError,
    normalize_role,
)

log = logging.getLogger("dev.sandbox.graph")


class MeetingStore(Mapping[str, OnlineMeeting]):
    """Meetings by id (read like a dict), the createOrGet index, rosters and listeners."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._meetings: dict[str, OnlineMeeting] = {}
        self._by_external: dict[tuple[str, str], str] = {}
        self._pending: deque[RosterChange] = deque()
        self._deliver_lock = threading.Lock()
        self._local = threading.local()  # marks a thread already delivering (listener re-entry)
        self.listeners: list[Listener] = []

    # -- Mapping ----------------------------------------------------------------------------------
    def __getitem__(self, meeting_id: str) -> OnlineMeeting:
        with self._lock:
            return self._meetings[meeting_id]

    def __iter__(self) -> Iterator[str]:
        with self._lock:
            return iter(list(self._meetings))

    def __len__(self) -> int:
        with self._lock:
            return len(self._meetings)

    # -- meetings ---------------------------------------------------------------------------------
    def create_or_get(
        self, organizer_oid: str, external_id: str, make: Callable[[], OnlineMeeting]
    ) -> tuple[OnlineMeeting, bool]:
        """The meeting for (organizer, externalId); ``make`` builds it when there is none."""
        key = (organizer_oid, external_id)
        with self._lock:
            existing = self._by_external.get(key)
            if existing is not None and existing in self._meetings:
                return self._meetings[existing], False
            meeting = make()
            self._meetings[meeting.id] = meeting
            self._by_external[key] = meeting.id
            return meeting, True

    def add(self, meeting: OnlineMeeting) -> None:
        with self._lock:
            self._meetings[meeting.id] = meeting

    def find(self, organizer_oid: str, meeting_id: str) -> OnlineMeeting | None:
        """A meeting only through its organizer, as Graph's /users/{id}/onlineMeetings/{id}."""
        with self._lock:
            meeting = self._meetings.get(meeting_id)
            return meeting if meeting and meeting.organizer_oid == organizer_oid else None

    def matching(self, predicate: Callable[[OnlineMeeting], bool]) -> list[OnlineMeeting]:
        with self._lock:
            return [m for m in self._meetings.values() if predicate(m)]

    def update(self, meeting_id: str, apply: Callable[[OnlineMeeting], None]) -> OnlineMeeting:
        with self._lock:
            meeting = self._meetings[meeting_id]
            apply(meeting)
            return meeting

    def delete(self, meeting_id: str) -> bool:
        with self._lock:
            meeting = self._meetings.pop(meeting_id, None)
            if meeting is None:
                return False
            if meeting.external_id is not None:
                self._by_external.pop((meeting.organizer_oid, meeting.external_id), None)
            return True

    def read(self, meeting_id: str, fn: Callable[[OnlineMeeting], Any]) -> Any:
        """``fn(meeting)`` under the lock (a consistent view to render); RosterError if unknown."""
        with self._lock:
            return fn(self._meeting(meeting_id))

    def snapshot(self, meeting_id: str) -> dict[str, Any] | None:
        with self._lock:
            meeting = self._meetings.get(meeting_id)
            return meeting.roster_json() if meeting else None

    def clear(self) -> None:
        with self._lock:
            self._meetings.clear()
            self._by_external.clear()

    # -- roster -----------------------------------------------------------------------------------
    def join(
        self, meeting_id: str, role: str, name: str, user_id: str | None = None
    ) -> Participant:
        """Someone opens the meeting: straight in, or into the lobby."""
        role = normalize_role(role)
        name = (name or "").strip()[:100] or {"organizer": "Organizer", "member": "Member"}.get(
            role, "Guest"
        )
        with self._lock:
            meeting = self._meeting(meeting_id)
            if role == "organizer":
                user_id = meeting.organizer_oid
            elif role == "guest":
                user_id = None
            now = time.time()
            state = IN_MEETING if meeting.bypasses_lobby(role, user_id) else LOBBY
            person = Participant(
                id=secrets.token_hex(8),
                name=name,
                role=role,
                state=state,
                joined_at=now,
                user_id=user_id,
            )
            meeting.roster.append(person)
            self._changed(meeting, person, None, now)
            result = dataclasses.replace(person)
        self._deliver()
        return result

    def admit(self, meeting_id: str, participant_id: str, by: str | None = None) -> Participant:
        """Let someone in from the lobby; ``by`` (a participant id) must be allowed to admit."""
        with self._lock:
            meeting = self._meeting(meeting_id)
            person = self._person(meeting, participant_id)
            if by is not None:
                admitter = self._person(meeting, by)
                if not meeting.can_admit(admitter):
                    raise RosterError(403, "only organizers and presenters in the meeting admit")
            if person.state != LOBBY:
                raise RosterError(409, f"{person.name} is not waiting in the lobby")
            now = time.time()
            person.state, person.admitted_at, person.admitted_by = IN_MEETING, now, by or "sandbox"
            self._changed(meeting, person, LOBBY, now)
            result = dataclasses.replace(person)
        self._deliver()
        return result

    def leave(self, meeting_id: str, participant_id: str) -> Participant:
        """Someone leaves (from the lobby or the meeting); leaving twice changes nothing."""
        with self._lock:
            meeting = self._meeting(meeting_id)
            person = self._person(meeting, participant_id)
            if person.state != LEFT:
                now = time.time()
                previous = person.state
                person.state, person.left_at = LEFT, now
                self._changed(meeting, person, previous, now)
            result = dataclasses.replace(person)
        self._deliver()
        return result

    def participant(self, meeting_id: str, participant_id: str) -> Participant:
        with self._lock:
            return dataclasses.replace(self._person(self._meeting(meeting_id), participant_id))

    # -- internals --------------------------------------------------------------------------------
    def _meeting(self, meeting_id: str) -> OnlineMeeting:
        meeting = self._meetings.get(meeting_id)
        if meeting is None:
            raise RosterError(404, "no such meeting")
        return meeting

    @staticmethod
    def _person(meeting: OnlineMeeting, participant_id: str) -> Participant:
        for person in meeting.roster:
            if person.id == participant_id:
                return person
        raise RosterError(404, "no such participant in this meeting")

    def _changed(
        self, meeting: OnlineMeeting, person: Participant, previous: str | None, now: float
    ) -> None:
        meeting.version += 1
        inside = any(p.state == IN_MEETING for p in meeting.roster)
        call = None
        if inside:
            if meeting.started_at is None or meeting.ended_at is not None:
                call = "started"  # the first one in, or the first one in again after an end
            meeting.started_at = meeting.started_at or now
            meeting.ended_at = None
        elif meeting.started_at is not None and previous == IN_MEETING:
            meeting.ended_at = now
            call = "ended"
        self._pending.append(
            RosterChange(
                meeting_id=meeting.id,
                organizer_oid=meeting.organizer_oid,
                join_web_url=meeting.join_web_url,
                participant=dataclasses.replace(person),
                previous=previous,
                state=person.state,
                at=now,
                version=meeting.version,
                call=call,
            )
        )

    def _deliver(self) -> None:
        # Whoever holds the delivery lock drains the queue, so listeners see changes in order.
        # A change a listener makes itself is delivered by the loop it is called from.
        if getattr(self._local, "delivering", False):
            return
        self._local.delivering = True
        try:
            with self._deliver_lock:
                while True:
                    with self._lock:
                        if not self._pending:
                            return
                        change = self._pending.popleft()
                        listeners = list(self.listeners)
                    for listener in listeners:
                        try:
                            listener(change)
                        except Exception:
                            log.exception("graph roster listener %r failed", listener)
        finally:
            self._local.delivering = False
