"""A meeting's call event (the decrypted resource of a `meetingCallEvents` notification) as
visit events.

Graph's `callEvent`: `id`, `callEventType` (`callStarted`, `callEnded`, `rosterUpdated`),
`eventDateTime`, and for a roster update the participants that changed, each a `participant`
with `info.identity` (a `user` of a tenant, or a `guest` / anonymous identity), `isInLobby`, and
`removedState` once they left. We keep none of it but what the event model holds:

- role: a user of our own tenant is a `provider` (the clinician, a colleague); anyone else (an
  anonymous guest, a user of another tenant) is the `patient`;
- kind: `left` when removed, `lobby` while in the lobby, `joined` otherwise; `callEnded` is the
  visit's `ended`; `callStarted` changes no one's presence and makes no event;
- at: the call event's own `eventDateTime` (when it happened, not when we heard it);
- event id: a keyed hash of (call event id, participant id, kind): Graph's redelivery of the same
  notification makes the same events, which the fold counts once.

Names, user ids and the call event's ids never leave this function.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from lib.privacy import PrivacyKeys
from lib.visits.events import Kind, Role, Source, VisitEventMessage
from lib.web.errors import AppError

MAX_PARTICIPANTS = 250  # a visit's roster is a handful; a longer list is cut, not parsed on


def graph_time(value: Any) -> datetime:
    """Graph's ISO 8601 time (up to seven fractional digits, `Z`) as an aware datetime."""
    if not isinstance(value, str) or not value:
        raise AppError("GRAPH-NOTIFICATION-INVALID", "time missing")
    text = value.strip().replace("Z", "+00:00")
    head, dot, rest = text.partition(".")
    if dot:  # Python 3.11 reads at most six fractional digits
        digits = "".join(c for c in rest if c.isdigit())
        text = f"{head}.{digits[:6]}{rest[len(digits) :]}"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise AppError("GRAPH-NOTIFICATION-INVALID", "time not ISO 8601") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def role_of(identity: Any, tenant_id: str) -> Role:
    user = identity.get("user") if isinstance(identity, dict) else None
    if isinstance(user, dict) and str(user.get("tenantId") or "").lower() == tenant_id.lower():
        return "provider"
    return "patient"


def event_id(privacy: PrivacyKeys, source: Source, *parts: object) -> str:
    return privacy.keyed_hash(source, *(str(p) for p in parts), purpose="graph-event")


def call_event_messages(
    call_event: dict[str, Any], visit_key: str, tenant_id: str, privacy: PrivacyKeys
) -> list[VisitEventMessage]:
    kind = call_event.get("callEventType")
    at = graph_time(call_event.get("eventDateTime"))
    call_id = str(call_event.get("id") or "")
    if not call_id:
        raise AppError("GRAPH-NOTIFICATION-INVALID", "call event without id")
    if kind == "callEnded":
        return [_message(privacy, visit_key, "ended", "visit", at, call_id, "ended")]
    if kind != "rosterUpdated":
        return []  # callStarted: nobody's presence changes with it
    found: list[VisitEventMessage] = []
    for person in _participants(call_event.get("participants")):
        info = person.get("info") if isinstance(person.get("info"), dict) else {}
        role = role_of(info.get("identity"), tenant_id)
        what: Kind = (
            "left"
            if person.get("removedState")
            else "lobby"
            if person.get("isInLobby")
            else "joined"
        )
        found.append(_message(privacy, visit_key, what, role, at, call_id, person.get("id"), what))
    return found


def _participants(value: Any) -> Iterable[dict[str, Any]]:
    if not isinstance(value, list):
        return []
    return [p for p in value[:MAX_PARTICIPANTS] if isinstance(p, dict)]


def _message(
    privacy: PrivacyKeys,
    visit_key: str,
    kind: Kind,
    role: Role,
    at: datetime,
    *parts: object,
) -> VisitEventMessage:
    return VisitEventMessage(
        event_id=event_id(privacy, "graph", *parts),
        visit_key=visit_key,
        kind=kind,
        role=role,
        at=at,
        source="graph",
    )
