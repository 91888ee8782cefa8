"""The one visit event model, and what a visit's events add up to.

An event says that something happened to one person (or to the visit) at one time, and where we
heard it: our launch, a join link, Microsoft Graph. It carries the visit key (a keyed hash), never
a name, phone number or EHR id, so it can go on a queue and into a log.

Every source speaks this model: the launch enqueues it on `visit-events` (base64, as the host
reads it), the queue function applies it (lib/visits/timeline.py). What the events add up to, the
visit's state, is a pure fold over them in occurred-at order (`fold`): so a late "arrived" never
overrides a later "left", and applying the same event twice changes nothing.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from lib.telemetry import TRACEPARENT

# What can happen to a person in a visit, and to the visit itself:
# - arrived   opened our launch or join link (on the way to the meeting's lobby)
# - lobby     waiting in the meeting's lobby (Graph roster)
# - joined    in the meeting: admitted from the lobby, or straight in (Graph roster)
# - left      left the meeting (Graph roster)
# - ended     the call ended for everyone (Graph call event); role "visit"
# - measured  the call's quality figures arrived (Graph call record, lib/visits/quality.py);
#             role "visit": it changes no one's presence, it tells the reports to look again
Kind = Literal["arrived", "lobby", "joined", "left", "ended", "measured"]
Role = Literal["provider", "patient", "visit"]
Source = Literal["launch", "join", "sms", "graph", "reconcile", "replay"]

# What the visit page says of each person (the state's words, shown as they are).
NOT_JOINED, JOINING, WAITING, IN_VISIT, LEFT = (
    "not joined",
    "joining",
    "waiting in lobby",
    "in the visit",
    "left",
)
STATUS_OF: dict[str, str] = {"arrived": JOINING, "lobby": WAITING, "joined": IN_VISIT, "left": LEFT}
# Waiting for the clinician: on the way to the lobby, or in it.
WAITING_STATUSES = (JOINING, WAITING)


class VisitEventMessage(BaseModel):
    """One event, as it travels on the queue and is stored. `event_id` makes it idempotent:
    a source that may send an event twice (Graph, a replay) sends the same id."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: str = Field(pattern=r"^[A-Za-z0-9_-]{8,64}$")
    visit_key: str = Field(pattern=r"^[A-Za-z0-9_-]{8,128}$")
    kind: Kind
    role: Role
    at: datetime  # when it happened (not when we heard it): the order of the fold
    source: Source
    # Who, within the role, when the source can tell people apart (Graph's roster: a keyed hash
    # of the participant, never a name or Microsoft id). None: the role is the person.
    participant: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{1,64}$")
    # The sender's trace (W3C), when telemetry is on: the queue carries no headers. Not stored.
    traceparent: str | None = Field(default=None, pattern=TRACEPARENT)

    @classmethod
    def new(cls, visit_key: str, kind: Kind, role: Role, source: Source) -> VisitEventMessage:
        return cls(
            event_id=uuid.uuid4().hex,
            visit_key=visit_key,
            kind=kind,
            role=role,
            at=datetime.now(UTC),
            source=source,
        )

    def to_text(self) -> str:
        return self.model_dump_json(exclude_none=True)  # no participant: the format as before

    @classmethod
    def from_text(cls, text: str | bytes) -> VisitEventMessage:
        return cls.model_validate(json.loads(text))

    @property
    def order(self) -> tuple[datetime, str]:
        """The fold's order: occurred-at, then the id (two events of one instant, one order)."""
        return (self.at, self.event_id)


class VisitState(BaseModel):
    """What a visit's events add up to (stored beside the visit, read by its page and reports)."""

    provider: str = NOT_JOINED
    patient: str = NOT_JOINED
    # Since when the patient has waited for the clinician (joining or in the lobby), while they do.
    waiting_since: datetime | None = None
    lobby_wait_seconds: float = 0.0  # all the patient's waits, summed when each ended
    admitted_at: datetime | None = None  # the first time the patient was in the meeting
    both_in_at: datetime | None = None  # the first time a clinician and the patient were both in
    ended_at: datetime | None = None
    events: int = 0  # how many distinct events the state is made of
    last_at: datetime | None = None  # the latest occurred-at among them
    # Who is in the meeting now (`role` or `role:participant`), the most at once, and when the
    # meeting last became empty (the visit's end for the reports: when the last person left).
    present: list[str] = Field(default_factory=list)
    max_present: int = 0
    emptied_at: datetime | None = None


def fold(events: Iterable[VisitEventMessage]) -> VisitState:
    """The state after `events`, whatever order they arrived in (sorted by occurred-at, id).

    Duplicates (same event id) count once.
    """
    unique = {e.event_id: e for e in events}
    state = VisitState()
    for event in sorted(unique.values(), key=lambda e: e.order):
        state = _apply(state, event)
    return state


def _apply(state: VisitState, event: VisitEventMessage) -> VisitState:
    s = state.model_copy(update={"events": state.events + 1, "last_at": event.at})
    s = _presence(s, event)
    if event.kind == "ended":
        return _ended(s, event.at)
    if event.role == "visit":
        return s
    before = getattr(s, event.role)
    after = STATUS_OF[event.kind]
    # Opening our link again while already in the lobby or the meeting (a second device, a
    # reload) does not take the person back to "joining".
    if event.kind == "arrived" and before in (WAITING, IN_VISIT):
        after = before
    setattr(s, event.role, after)
    if event.role == "patient":
        s = _patient_wait(s, before, after, event.at)
    if s.both_in_at is None and s.provider == IN_VISIT and s.patient == IN_VISIT:
        s.both_in_at = event.at
    return s


def _presence(s: VisitState, event: VisitEventMessage) -> VisitState:
    """Who is in the meeting after `event` (joined: in; left or ended: out)."""
    present = list(s.present)
    if event.kind == "ended":
        present = []
    elif event.role != "visit":
        who = event.role + (f":{event.participant}" if event.participant else "")
        if event.kind == "joined" and who not in present:
            present.append(who)
        elif event.kind == "left" and who in present:
            present.remove(who)
    emptied = event.at if s.present and not present else s.emptied_at
    return s.model_copy(
        update={
            "present": sorted(present),
            "max_present": max(s.max_present, len(present)),
            "emptied_at": emptied,
        }
    )


def _patient_wait(s: VisitState, before: str, after: str, at: datetime) -> VisitState:
    waiting_before, waiting_after = before in WAITING_STATUSES, after in WAITING_STATUSES
    if waiting_after and not waiting_before:
        s.waiting_since = at
    elif waiting_before and not waiting_after and s.waiting_since is not None:
        s.lobby_wait_seconds += max((at - s.waiting_since).total_seconds(), 0.0)
        s.waiting_since = None
    if after == IN_VISIT and s.admitted_at is None:
        s.admitted_at = at
    return s


def _ended(s: VisitState, at: datetime) -> VisitState:
    if s.ended_at is None:
        s.ended_at = at
    for role in ("provider", "patient"):
        if getattr(s, role) != NOT_JOINED:
            s = _patient_wait(s, s.patient, LEFT, at) if role == "patient" else s
            setattr(s, role, LEFT)
    return s
