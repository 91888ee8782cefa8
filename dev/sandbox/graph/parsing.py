"""Graph request parsing and resource shapes, as pure functions that raise ``GraphError``:
meeting bodies (createOrGet, POST, PATCH), $select on users, a user's JSON."""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

from werkzeug.wrappers import Request

from dev.sandbox.directory import DemoUser
from dev.sandbox.graph.errors import (
    GraphError,
    bad_request,
)
from dev.sandbox.graph.meetings import (
    LOBBY_SCOPES,
    PRESENTERS,
    OnlineMeeting,
)

CREATE_OR_GET_FIELDS = frozenset(
    {"externalId", "subject", "startDateTime", "endDateTime", "participants", "chatInfo"}
)
PATCH_FIELDS = frozenset(
    {
        "subject",
        "startDateTime",
        "endDateTime",
        "participants",
        "lobbyBypassSettings",
        "allowedPresenters",
        "isEntryExitAnnounced",
        "allowMeetingChat",
        "allowTeamworkReactions",
        "allowAttendeeToEnableCamera",
        "allowAttendeeToEnableMic",
        "recordAutomatically",
    }
)
DEFAULT_OPTIONS = {
    "allowMeetingChat": "enabled",
    "allowTeamworkReactions": True,
    "allowAttendeeToEnableCamera": True,
    "allowAttendeeToEnableMic": True,
    "recordAutomatically": False,
}
OPTION_TYPES: dict[str, tuple[type, ...] | tuple[str, ...]] = {
    "allowMeetingChat": ("enabled", "disabled", "limited"),
    "allowTeamworkReactions": (bool,),
    "allowAttendeeToEnableCamera": (bool,),
    "allowAttendeeToEnableMic": (bool,),
    "recordAutomatically": (bool,),
}
USER_FIELDS = (
    "businessPhones",
    "displayName",
    "givenName",
    "jobTitle",
    "mail",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
    "surname",
    "userPrincipalName",
    "id",
)
FILTER_JOIN_URL = re.compile(r"^\s*joinWebUrl\s+eq\s+'((?:[^']|'')*)'\s*$", re.IGNORECASE)


# -- request parsing (module functions: pure, raise GraphError) ------------------------------------
def json_body(request: Request) -> dict[str, Any]:
    raw = request.get_data()
    try:
        body = json.loads(raw) if raw else None
    except (ValueError, RecursionError):
        body = None
    if not isinstance(body, dict):
        raise bad_request(
            "Unable to read JSON request payload. Please ensure Content-Type header is set and "
            "payload is of valid JSON format."
        )
    return body


def parse_time(value: Any) -> dt.datetime:
    if isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
    raise bad_request(
        f"Cannot convert the literal '{value}' to the expected type 'Edm.DateTimeOffset'."
    )


def meeting_times(body: dict[str, Any]) -> tuple[dt.datetime, dt.datetime]:
    now = dt.datetime.now(dt.UTC)
    start = parse_time(body["startDateTime"]) if "startDateTime" in body else now
    end = (
        parse_time(body["endDateTime"]) if "endDateTime" in body else start + dt.timedelta(hours=1)
    )
    if end < start:
        raise bad_request("endDateTime must not be before startDateTime.")
    return start, end


def subject_of(body: dict[str, Any]) -> str:
    subject = body.get("subject", "")
    if subject is None:
        return ""
    if not isinstance(subject, str) or len(subject) > 255:
        raise bad_request("subject must be a string of at most 255 characters.")
    return subject


def attendees_of(participants: Any) -> list[dict[str, Any]]:
    if participants is None:
        return []
    if not isinstance(participants, dict):
        raise bad_request("participants must be a meetingParticipants object.")
    attendees = participants.get("attendees") or []
    if not isinstance(attendees, list) or not all(isinstance(a, dict) for a in attendees):
        raise bad_request("participants.attendees must be a list of meetingParticipantInfo.")
    return [dict(a) for a in attendees]


def patch_changes(body: dict[str, Any], meeting: OnlineMeeting) -> list[Any]:
    """Validate a PATCH body; the changes to apply, as functions (nothing applied yet)."""
    changes: list[Any] = []
    if "subject" in body:
        subject = subject_of(body)
        changes.append(lambda m: setattr(m, "subject", subject))
    if "startDateTime" in body or "endDateTime" in body:
        start = parse_time(body["startDateTime"]) if "startDateTime" in body else meeting.start
        end = parse_time(body["endDateTime"]) if "endDateTime" in body else meeting.end
        if end < start:
            raise bad_request("endDateTime must not be before startDateTime.")

        def move(m: OnlineMeeting) -> None:
            m.start, m.end = start, end

        changes.append(move)
    if "participants" in body:
        attendees = attendees_of(body["participants"])
        changes.append(lambda m: setattr(m, "attendees", attendees))
    if "lobbyBypassSettings" in body:
        lobby = body["lobbyBypassSettings"]
        if not isinstance(lobby, dict) or set(lobby) - {"scope", "isDialInBypassEnabled"}:
            raise bad_request("lobbyBypassSettings takes scope and isDialInBypassEnabled.")
        if "scope" in lobby and lobby["scope"] not in LOBBY_SCOPES:
            raise bad_request(
                f"Requested value '{lobby['scope']}' was not found for lobbyBypassScope."
            )
        dial_in = lobby.get("isDialInBypassEnabled")
        if dial_in is not None and not isinstance(dial_in, bool):
            raise bad_request("isDialInBypassEnabled must be a boolean.")
        changes.append(lambda m: apply_lobby(m, lobby.get("scope"), dial_in))
    if "allowedPresenters" in body:
        presenters = body["allowedPresenters"]
        if presenters not in PRESENTERS:
            raise bad_request(
                f"Requested value '{presenters}' was not found for onlineMeetingPresenters."
            )
        changes.append(lambda m: setattr(m, "allowed_presenters", presenters))
    if "isEntryExitAnnounced" in body:
        announced = body["isEntryExitAnnounced"]
        if not isinstance(announced, bool):
            raise bad_request("isEntryExitAnnounced must be a boolean.")
        changes.append(lambda m: setattr(m, "entry_exit_announced", announced))
    for name, allowed in OPTION_TYPES.items():
        if name not in body:
            continue
        value = body[name]
        ok = isinstance(value, bool) if allowed == (bool,) else value in allowed
        if not ok:
            raise bad_request(f"Invalid value for '{name}'.")
        changes.append(lambda m, name=name, value=value: m.options.__setitem__(name, value))
    return changes


def apply_lobby(meeting: OnlineMeeting, scope: str | None, dial_in: bool | None) -> None:
    if scope is not None:
        meeting.lobby_scope = scope
    if dial_in is not None:
        meeting.dial_in_bypass = dial_in


def select_fields(request: Request) -> list[str]:
    raw = request.args.get("$select", "")
    fields = [f.strip() for f in raw.split(",") if f.strip()]
    for f in fields:
        if f not in USER_FIELDS:
            raise bad_request(
                f"Could not find a property named '{f}' on type 'microsoft.graph.user'."
            )
    return fields


def pick(item: dict[str, Any], select: list[str]) -> dict[str, Any]:
    return {k: item[k] for k in select} if select else item


def given_and_surname(person: DemoUser) -> tuple[str, str]:
    words = [w for w in person.name.split() if not w.endswith(".")]
    return (words[0] if words else person.name), (words[-1] if len(words) > 1 else "")


def user_json(person: DemoUser) -> dict[str, Any]:
    given, surname = given_and_surname(person)
    return {
        "businessPhones": [],
        "displayName": person.name,
        "givenName": given,
        "jobTitle": person.description,
        "mail": person.upn,
        "mobilePhone": None,
        "officeLocation": None,
        "preferredLanguage": "en-US",
        "surname": surname,
        "userPrincipalName": person.upn,
        "id": person.object_id,
    }


def segment_not_found(path: str) -> GraphError:
    segment = path.removeprefix("/v1.0/").split("/", 1)[0] or "v1.0"
    return GraphError(400, "BadRequest", f"Resource not found for the segment '{segment}'.")
