"""Online meetings and their rosters, in memory.

A meeting is what ``createOrGet`` made; its roster is who opened the meeting page and what became
of them (lobby, in the meeting, left). Every roster change is handed to ``listeners`` in order:
that is the hook for change notifications (meeting call events, call records) to come.

Thread-safe: one lock guards every meeting; listeners run after the lock is released, in the
order the changes happened (whichever thread made the change delivers the queue), so a listener
may call back into the store.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import logging
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("dev.sandbox.graph")

# lobbyBypassScope and onlineMeetingPresenters of Graph v1.0.
LOBBY_SCOPES = (
    "organizer",
    "organization",
    "organizationAndFederated",
    "everyone",
    "invited",
    "organizationExcludingGuests",
)
PRESENTERS = ("everyone", "organization", "roleIsPresenter", "organizer")

# Who opens the meeting page: the organizer, a member of the organization, or an anonymous guest.
ROLES = ("organizer", "member", "guest")
_ROLE_ALIASES = {
    "organizer": "organizer",
    "member": "member",
    "organization": "member",
    "presenter": "member",
    "attendee": "member",
    "guest": "guest",
    "anonymous": "guest",
    "patient": "guest",
}
LOBBY, IN_MEETING, LEFT = "lobby", "in-meeting", "left"


class RosterError(Exception):
    """A roster action that cannot happen (unknown meeting or person, not allowed, wrong state)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def normalize_role(role: str) -> str:
    found = _ROLE_ALIASES.get((role or "").strip().lower())
    if found is None:
        raise RosterError(400, f"role must be one of {', '.join(ROLES)}")
    return found


def iso(ts: float | None) -> str | None:
    """Epoch seconds as Graph writes times: UTC, seven fractional digits, ``Z``."""
    if ts is None:
        return None
    return graph_time(dt.datetime.fromtimestamp(ts, dt.UTC))


def graph_time(value: dt.datetime) -> str:
    value = value.astimezone(dt.UTC)
    return f"{value:%Y-%m-%dT%H:%M:%S}.{value.microsecond:06d}0Z"


@dataclass
class Participant:
    id: str
    name: str
    role: str  # organizer | member | guest
    state: str  # lobby | in-meeting | left
    joined_at: float  # when they opened the meeting (into the lobby or straight in)
    user_id: str | None = None  # Entra object id (organizer, members); None for guests
    admitted_at: float | None = None
    admitted_by: str | None = None  # participant id, or "sandbox" for the Python API
    left_at: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "role": self.role,
            "state": self.state,
            "userId": self.user_id,
            "joinedAt": iso(self.joined_at),
            "admittedAt": iso(self.admitted_at),
            "admittedBy": self.admitted_by,
            "leftAt": iso(self.left_at),
        }


@dataclass(frozen=True)
class RosterChange:
    """One roster change, as listeners get it. ``previous`` is None for a join."""

    meeting_id: str
    organizer_oid: str
    join_web_url: str
    participant: Participant  # a snapshot taken at the change
    previous: str | None
    state: str
    at: float
    version: int  # the meeting's roster version after this change

    @property
    def kind(self) -> str:
        if self.previous is None:
            return "joined-lobby" if self.state == LOBBY else "joined"
        return "admitted" if self.state == IN_MEETING else "left"


Listener = Callable[[RosterChange], None]


@dataclass
class OnlineMeeting:
    id: str
    organizer_oid: str
    organizer_upn: str
    external_id: str | None
    subject: str
    start: dt.datetime
    end: dt.datetime
    created: dt.datetime
    thread_id: str
    join_web_url: str
    join_meeting_id: str
    passcode: str
    lobby_scope: str
    dial_in_bypass: bool
    allowed_presenters: str
    entry_exit_announced: bool
    attendees: list[dict[str, Any]] = field(default_factory=list)
    # Other patchable settings, as Graph names them (allowMeetingChat, recordAutomatically...).
    options: dict[str, Any] = field(default_factory=dict)
    roster: list[Participant] = field(default_factory=list)
    version: int = 0
    started_at: float | None = None  # first time anyone was in the meeting
    ended_at: float | None = None  # the last person in the meeting left

    def attendee_ids(self) -> set[str]:
        ids = set()
        for a in self.attendees:
            user = ((a.get("identity") or {}).get("user") or {}) if isinstance(a, dict) else {}
            if user.get("id"):
                ids.add(str(user["id"]))
        return ids

    def bypasses_lobby(self, role: str, user_id: str | None) -> bool:
        """Who enters directly under ``lobbyBypassSettings.scope`` (guests are anonymous)."""
        if role == "organizer":
            return True
        scope = self.lobby_scope
        if scope == "everyone":
            return True
        if role == "guest":
            return False
        if scope == "organizer":
            return False
        if scope == "invited":
            return user_id is not None and user_id in self.attendee_ids()
        return True  # organization, organizationAndFederated, organizationExcludingGuests

    def can_admit(self, person: Participant) -> bool:
        """Organizers and presenters admit people from the lobby, once they are in."""
        if person.state != IN_MEETING:
            return False
        if person.role == "organizer":
            return True
        if person.role == "member":
            return self.allowed_presenters in ("everyone", "organization")
        return self.allowed_presenters == "everyone"

    def to_graph(self, base: str) -> dict[str, Any]:
        """The onlineMeeting resource as Graph v1.0 returns it."""
        return {
            "@odata.context": (
                f"{base}/v1.0/$metadata#users('{self.organizer_oid}')/onlineMeetings/$entity"
            ),
            "id": self.id,
            "creationDateTime": graph_time(self.created),
            "startDateTime": graph_time(self.start),
            "endDateTime": graph_time(self.end),
            "subject": self.subject,
            "externalId": self.external_id,
            "joinUrl": self.join_web_url,  # deprecated twin of joinWebUrl, still returned
            "joinWebUrl": self.join_web_url,
            "joinMeetingIdSettings": {
                "isPasscodeRequired": True,
                "joinMeetingId": self.join_meeting_id,
                "passcode": self.passcode,
            },
            "videoTeleconferenceId": None,
            "isBroadcast": False,
            "isEntryExitAnnounced": self.entry_exit_announced,
            "allowedPresenters": self.allowed_presenters,
            "lobbyBypassSettings": {
                "scope": self.lobby_scope,
                "isDialInBypassEnabled": self.dial_in_bypass,
            },
            **self.options,
            "audioConferencing": None,
            "broadcastSettings": None,
            "chatInfo": {"threadId": self.thread_id, "messageId": "0", "replyChainMessageId": None},
            "participants": {
                "organizer": {
                    "upn": self.organizer_upn,
                    "role": "presenter",
                    "identity": {
                        "user": {
                            "id": self.organizer_oid,
                            "displayName": None,
                            "identityProvider": "AAD",
                        }
                    },
                },
                "attendees": list(self.attendees),
            },
        }

    def roster_json(self) -> dict[str, Any]:
        """The sandbox-only view tests and the meeting page read (not a Graph resource)."""
        return {
            "id": self.id,
            "externalId": self.external_id,
            "organizer": self.organizer_oid,
            "subject": self.subject,
            "joinWebUrl": self.join_web_url,
            "lobbyBypassSettings": {
                "scope": self.lobby_scope,
                "isDialInBypassEnabled": self.dial_in_bypass,
            },
            "allowedPresenters": self.allowed_presenters,
            "version": self.version,
            "startedAt": iso(self.started_at),
            "endedAt": iso(self.ended_at),
            "participants": [p.to_json() for p in self.roster],
        }


def new_meeting_id(organizer_oid: str) -> tuple[str, str]:
    """(meeting id, chat thread id) shaped like Graph's: base64 of ``1*{oid}*0**{thread}``.

    URL-safe base64 without padding here, so ids can sit in paths; clients should still
    percent-encode them (Graph's real ids may contain ``+``, ``/`` and ``=``).
    """
    thread = f"19:meeting_{secrets.token_urlsafe(36)}@thread.v2"
    raw = f"1*{organizer_oid}*0**{thread}".encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode(), thread


def new_join_meeting_id() -> str:
    return str(secrets.randbelow(9 * 10**11) + 10**11)  # 12 digits, no leading zero


def new_passcode() -> str:
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789"
    return "".join(secrets.choice(alphabet) for _ in range(6))


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
        if inside:
            meeting.started_at = meeting.started_at or now
            meeting.ended_at = None
        elif meeting.started_at is not None and previous == IN_MEETING:
            meeting.ended_at = now
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
