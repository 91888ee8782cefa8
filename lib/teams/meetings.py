"""One Teams online meeting per visit (F9), and which join URLs we may send a browser to.

`MeetingService.create_or_get` calls Graph's `createOrGet` with our external id (a keyed hash of
endpoint + appointment), then applies the lobby settings with one PATCH, only when the meeting's
settings differ from ours (createOrGet's body cannot carry them): lobby for everyone outside the
organization (`lobbyBypassSettings.scope = organization`, dial-in callers wait too) and only the
organizer presents (`allowedPresenters`, configurable). A meeting fetched again already has them,
so the PATCH happens once per meeting. A caller that learns the meeting's times only while
createOrGet runs (the appointment is read alongside it) passes `times`: createOrGet is sent with
provisional times, and the real ones ride in that same PATCH (an extra PATCH only where the
lobby settings already matched). Graph's idempotency is per organizer: the caller makes
sure one visit has one organizer (the visit is claimed in storage first).

The subject is the caller's fixed text ("Virtual visit"): never patient data.

Join URL allow-list (`join_url_allowed`): a redirect to a join URL goes only to
- `https` on a host of TEAMS_JOIN_HOSTS (exact `host[:port]`, no subdomain matching; default
  `teams.microsoft.com`), any path: Teams' link formats change (`/l/meetup-join/...`, `/meet/...`);
- or the meeting pages of the configured Graph base itself, `{GRAPH_BASE_URL}/meet/...`: that is
  where the local sandbox's join URLs live, so a local run needs no extra setting, and against
  the real Graph the rule matches nothing Graph serves.
Nothing else: no other scheme, no user-info in the URL, no backslashes or control characters.
`MeetingService` applies the same check to every meeting Graph returns (LAUNCH-REDIRECT-REFUSED),
so a meeting with a join URL off the list is never stored, patched or handed to a caller.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict

from lib.net.http import host_of
from lib.teams.graph import GraphClient, seg
from lib.web.errors import AppError

LOBBY_SCOPES = frozenset(
    {
        "organizer",
        "organization",
        "organizationAndFederated",
        "everyone",
        "invited",
        "organizationExcludingGuests",
    }
)
PRESENTERS = frozenset({"everyone", "organization", "roleIsPresenter", "organizer"})
DEFAULT_JOIN_HOSTS = ("teams.microsoft.com",)


class Meeting(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    join_url: str
    organizer_oid: str
    external_id: str
    start: dt.datetime
    end: dt.datetime


class MeetingService:
    def __init__(
        self,
        graph: GraphClient,
        *,
        lobby_scope: str = "organization",
        allowed_presenters: str = "organizer",
        dial_in_bypass: bool = False,
        join_hosts: Iterable[str] = DEFAULT_JOIN_HOSTS,
    ) -> None:
        if lobby_scope not in LOBBY_SCOPES:
            raise ValueError(f"lobby scope must be one of {sorted(LOBBY_SCOPES)}")
        if allowed_presenters not in PRESENTERS:
            raise ValueError(f"allowed presenters must be one of {sorted(PRESENTERS)}")
        self.graph = graph
        self.lobby_scope = lobby_scope
        self.allowed_presenters = allowed_presenters
        self.dial_in_bypass = dial_in_bypass
        self.join_hosts = frozenset(h.strip().lower() for h in join_hosts if h.strip())

    def create_or_get(
        self,
        organizer_oid: str,
        external_id: str,
        subject: str,
        start: dt.datetime,
        end: dt.datetime,
        *,
        allowed_presenters: str | None = None,
        times: Callable[[], tuple[dt.datetime, dt.datetime] | None] | None = None,
    ) -> Meeting:
        """The organizer's meeting for `external_id`, made on first call, lobby settings applied.

        `allowed_presenters` overrides the service's default for this meeting (who may admit
        people from the lobby: organizer, or everyone in the organization). `times`: called
        once createOrGet has answered, the meeting's real times (None: keep `start` / `end`);
        when the meeting has others, they are set with the lobby PATCH.

        GRAPH-ORGANIZER-UNKNOWN when Graph does not know the organizer; GRAPH-THROTTLED /
        GRAPH-FAILED otherwise.
        """
        if not external_id:
            raise ValueError("external_id is required")
        body = {
            "externalId": external_id,
            "subject": subject,
            "startDateTime": _graph_time(start),
            "endDateTime": _graph_time(end),
        }
        response = self.graph.send(
            "POST", f"/users/{seg(organizer_oid)}/onlineMeetings/createOrGet", json_body=body
        )
        if response.status == 404:
            raise AppError("GRAPH-ORGANIZER-UNKNOWN", response.error_code)
        resource = response.raise_for_error().json()
        self._check_join_url(resource)  # before anything else is done with this meeting
        presenters = allowed_presenters or self.allowed_presenters
        if presenters not in PRESENTERS:
            raise ValueError(f"allowed presenters must be one of {sorted(PRESENTERS)}")
        patch = self._settings_patch(resource, presenters)
        settled = times() if times is not None else None
        if settled is not None:
            start, end = settled
            patch |= _times_patch(resource, start, end)
        if patch:
            meeting_id = _require_str(resource, "id")
            resource = self.graph.request(
                "PATCH",
                f"/users/{seg(organizer_oid)}/onlineMeetings/{seg(meeting_id)}",
                json_body=patch,
            ).json()
        return _meeting(resource, organizer_oid, external_id, (start, end))

    def get(self, organizer_oid: str, meeting_id: str) -> Meeting | None:
        """The meeting, or None when Graph no longer has it (or its organizer).

        Not on a path yet: reconciliation after a visit (F16) reads the meeting again.
        """
        response = self.graph.send(
            "GET", f"/users/{seg(organizer_oid)}/onlineMeetings/{seg(meeting_id)}"
        )
        if response.status == 404:
            return None
        resource = response.raise_for_error().json()
        self._check_join_url(resource)
        return _meeting(resource, organizer_oid, None)

    def join_url_allowed(self, url: str) -> bool:
        return join_url_allowed(url, self.graph.graph_base, self.join_hosts)

    def _check_join_url(self, resource: dict[str, Any]) -> None:
        """A meeting whose join URL is off the allow-list never leaves this service."""
        url = _require_str(resource, "joinWebUrl")
        if not self.join_url_allowed(url):
            raise AppError("LAUNCH-REDIRECT-REFUSED", f"join URL on {host_of(url)[:100]}")

    def _settings_patch(self, resource: dict[str, Any], presenters: str) -> dict[str, Any]:
        """What to PATCH so the meeting has our settings; empty when it already has them."""
        patch: dict[str, Any] = {}
        lobby = resource.get("lobbyBypassSettings")
        lobby = lobby if isinstance(lobby, dict) else {}
        if (
            lobby.get("scope") != self.lobby_scope
            or bool(lobby.get("isDialInBypassEnabled")) != self.dial_in_bypass
        ):
            patch["lobbyBypassSettings"] = {
                "scope": self.lobby_scope,
                "isDialInBypassEnabled": self.dial_in_bypass,
            }
        if resource.get("allowedPresenters") != presenters:
            patch["allowedPresenters"] = presenters
        return patch


def join_url_allowed(
    url: str, graph_base: str, join_hosts: Iterable[str] = DEFAULT_JOIN_HOSTS
) -> bool:
    """May a browser be redirected to `url` as a meeting join URL? (see the module docstring)"""
    if not isinstance(url, str) or not url or len(url) > 4096:
        return False
    if "\\" in url or any(ord(c) < 0x21 or ord(c) == 0x7F for c in url):
        return False
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        return False
    if parts.scheme.lower() != "https" or not parts.hostname or "@" in parts.netloc:
        return False
    host = host_of(url)
    if host in {h.strip().lower() for h in join_hosts if h.strip()}:
        return True
    base = urlsplit(graph_base.rstrip("/"))
    return (
        base.scheme.lower() == "https"
        and host == host_of(graph_base)
        and parts.path.startswith(f"{base.path}/meet/")
    )


def _times_patch(resource: dict[str, Any], start: dt.datetime, end: dt.datetime) -> dict[str, Any]:
    """The PATCH members that give the meeting these times; empty when it has them."""
    try:
        have = (_time_of(resource, "startDateTime", None), _time_of(resource, "endDateTime", None))
    except AppError:  # no times echoed, or unreadable ones: set them
        have = None
    if have == (start, end):
        return {}
    return {"startDateTime": _graph_time(start), "endDateTime": _graph_time(end)}


def _graph_time(value: dt.datetime) -> str:
    if value.tzinfo is None:
        raise ValueError("meeting times must be timezone-aware")
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def _time_of(resource: dict[str, Any], name: str, fallback: dt.datetime | None) -> dt.datetime:
    value = resource.get(name)
    if value is None and fallback is not None:
        return fallback
    if isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value)  # seven fractional digits are fine on 3.11
        except ValueError:
            pass
        else:
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
    raise AppError("GRAPH-FAILED", f"unexpected-{name}")


def _require_str(resource: dict[str, Any], name: str) -> str:
    value = resource.get(name)
    if not isinstance(value, str) or not value:
        raise AppError("GRAPH-FAILED", f"unexpected-{name}")
    return value


def _meeting(
    resource: dict[str, Any],
    organizer_oid: str,
    external_id: str | None,
    asked: tuple[dt.datetime, dt.datetime] | None = None,
) -> Meeting:
    """Our model of Graph's onlineMeeting; times we asked for stand in if Graph echoes none."""
    organizer = (
        ((resource.get("participants") or {}).get("organizer") or {}).get("identity") or {}
    ).get("user") or {}
    returned_external = resource.get("externalId")
    return Meeting(
        id=_require_str(resource, "id"),
        join_url=_require_str(resource, "joinWebUrl"),
        organizer_oid=str(organizer.get("id") or organizer_oid),
        external_id=str(returned_external or external_id or ""),
        start=_time_of(resource, "startDateTime", asked[0] if asked else None),
        end=_time_of(resource, "endDateTime", asked[1] if asked else None),
    )
