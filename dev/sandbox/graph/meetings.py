"""Online meetings and their rosters: the records (the store that keeps them is store.py).

A meeting is what ``createOrGet`` made; its roster is who opened the meeting page and what became
of them (lobby, in the meeting, left). Every roster change is handed to ``listeners`` in order:
that is the hook for change notifications (meeting call events, call records) to come.

Thread-safe in MeetingStore: one lock guards every meeting; listeners run after the lock is
released, in the order the changes happened (whichever thread made the change delivers the
queue), so a listener may call back into the store.
"""

from __future__ import annotations

import base64
import datetime as dt
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

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
    call: str | None = None  # "started" / "ended" when this change started or ended the call

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
