"""Microsoft Graph v1.0 at ``/graph``: onlineMeetings, users, and a meeting page at each joinWebUrl.

Graph base URL: ``{sandbox}/graph`` (calls are ``{sandbox}/graph/v1.0/...``). Every Graph call
needs a bearer token the sandbox Entra issued for ``https://graph.microsoft.com`` with the
permission the real call needs (app-only: ``roles``; delegated: ``scp``); errors are Graph-shaped.

Sandbox-only additions (no Graph counterpart): the meeting page ``/graph/meet/{meetingId}``, the
roster JSON ``/graph/_meetings/{meetingId}``, and controls under ``/_sandbox/graph/``.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing import Rule
from werkzeug.utils import redirect
from werkzeug.wrappers import Request, Response

from dev.sandbox import directory
from dev.sandbox.directory import GRAPH_AUDIENCE, TENANT_ID, USERS, DemoUser
from dev.sandbox.graph import pages
from dev.sandbox.graph.auth import Caller, authenticate
from dev.sandbox.graph.errors import (
    GraphError,
    bad_request,
    error_response,
    graph_json,
    meeting_not_found,
    request_ids,
    user_not_found,
)
from dev.sandbox.graph.meetings import (
    LOBBY_SCOPES,
    PRESENTERS,
    Listener,
    MeetingStore,
    OnlineMeeting,
    Participant,
    RosterError,
    new_join_meeting_id,
    new_meeting_id,
    new_passcode,
)
from dev.sandbox.standin import StandIn, html_response, json_response, read_json

if TYPE_CHECKING:
    from dev.sandbox.state import SandboxState

# What a tenant's default meeting policy gives a new meeting (Teams' defaults): people of the
# organization bypass the lobby, anonymous people wait, everyone may present. Our connector is
# expected to PATCH these to what it wants. Sandbox settings GRAPH_DEFAULT_LOBBY_SCOPE /
# GRAPH_DEFAULT_ALLOWED_PRESENTERS change them.
DEFAULT_LOBBY_SCOPE = "organizationExcludingGuests"
DEFAULT_ALLOWED_PRESENTERS = "everyone"

# Application / delegated permissions per call, from the Graph v1.0 permission tables.
MEETINGS_WRITE = (("OnlineMeetings.ReadWrite.All",), ("OnlineMeetings.ReadWrite",))
MEETINGS_READ = (
    ("OnlineMeetings.Read.All", "OnlineMeetings.ReadWrite.All"),
    ("OnlineMeetings.Read", "OnlineMeetings.ReadWrite"),
)
USERS_READ = (
    ("User.Read.All", "User.ReadBasic.All", "User.ReadWrite.All", "Directory.Read.All"),
    ("User.ReadBasic.All", "User.Read.All", "User.ReadWrite.All", "Directory.Read.All"),
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
_DEFAULT_OPTIONS = {
    "allowMeetingChat": "enabled",
    "allowTeamworkReactions": True,
    "allowAttendeeToEnableCamera": True,
    "allowAttendeeToEnableMic": True,
    "recordAutomatically": False,
}
_OPTION_TYPES: dict[str, tuple[type, ...] | tuple[str, ...]] = {
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
_FILTER_JOIN_URL = re.compile(r"^\s*joinWebUrl\s+eq\s+'((?:[^']|'')*)'\s*$", re.IGNORECASE)
_NO_STORE = {"Cache-Control": "no-store"}


class GraphStandIn(StandIn):
    name = "graph"
    title = "Microsoft Graph (onlineMeetings, users) + meeting page"

    def __init__(self, state: SandboxState) -> None:
        self.meetings = MeetingStore()
        self._initial_lobby_scope = state.setting("GRAPH_DEFAULT_LOBBY_SCOPE", DEFAULT_LOBBY_SCOPE)
        self._initial_presenters = state.setting(
            "GRAPH_DEFAULT_ALLOWED_PRESENTERS", DEFAULT_ALLOWED_PRESENTERS
        )
        self.default_lobby_scope = self._initial_lobby_scope
        self.default_allowed_presenters = self._initial_presenters
        # Application access policy (Teams): None = granted tenant-wide to every app, as the
        # sandbox is set up; a set of object ids = only those organizers allow app-only calls.
        self.access_policy: frozenset[str] | None = None
        super().__init__(state)

    # -- routes ---------------------------------------------------------------------------------
    def routes(self) -> list[Rule]:
        me = {"user_id": "me"}
        return [
            Rule("/v1.0/me", endpoint=self.get_user, methods=["GET"], defaults=me),
            Rule("/v1.0/users", endpoint=self.list_users, methods=["GET"]),
            Rule("/v1.0/users/<user_id>", endpoint=self.get_user, methods=["GET"]),
            *self._meeting_rules("/v1.0/users/<user_id>/onlineMeetings", {}),
            *self._meeting_rules("/v1.0/me/onlineMeetings", me),
            Rule("/v1.0/<path:rest>", endpoint=self.unknown_segment),
            Rule("/oidc/userinfo", endpoint=self.userinfo, methods=["GET", "POST"]),
            Rule("/meet/<meeting_id>", endpoint=self.meeting_page, methods=["GET"]),
            Rule(
                "/meet/<meeting_id>/p/<participant_id>",
                endpoint=self.person_page,
                methods=["GET"],
            ),
            Rule(
                "/meet/<meeting_id>/p/<participant_id>/admit",
                endpoint=self.page_admit,
                methods=["GET", "POST"],
            ),
            Rule(
                "/meet/<meeting_id>/p/<participant_id>/leave",
                endpoint=self.page_leave,
                methods=["GET", "POST"],
            ),
            Rule("/_meetings", endpoint=self.rosters_endpoint, methods=["GET"]),
            Rule("/_meetings/<meeting_id>", endpoint=self.roster_endpoint, methods=["GET"]),
        ]

    def _meeting_rules(self, prefix: str, defaults: dict[str, str]) -> list[Rule]:
        d = defaults or None
        return [
            Rule(
                f"{prefix}/createOrGet", endpoint=self.create_or_get, methods=["POST"], defaults=d
            ),
            Rule(prefix, endpoint=self.create_meeting, methods=["POST"], defaults=d),
            Rule(prefix, endpoint=self.list_meetings, methods=["GET"], defaults=d),
            Rule(f"{prefix}/<meeting_id>", endpoint=self.get_meeting, methods=["GET"], defaults=d),
            Rule(
                f"{prefix}/<meeting_id>", endpoint=self.patch_meeting, methods=["PATCH"], defaults=d
            ),
            Rule(
                f"{prefix}/<meeting_id>",
                endpoint=self.delete_meeting,
                methods=["DELETE"],
                defaults=d,
            ),
        ]

    def control_routes(self) -> list[Rule]:
        return [
            Rule("/", endpoint=self.c_summary, methods=["GET"]),
            Rule("/meetings", endpoint=self.rosters_endpoint, methods=["GET"]),
            Rule("/meetings/<meeting_id>", endpoint=self.roster_endpoint, methods=["GET"]),
            Rule("/meetings/<meeting_id>/join", endpoint=self.c_join, methods=["POST"]),
            Rule("/meetings/<meeting_id>/admit", endpoint=self.c_admit, methods=["POST"]),
            Rule("/meetings/<meeting_id>/leave", endpoint=self.c_leave, methods=["POST"]),
            Rule("/settings", endpoint=self.c_settings, methods=["GET", "POST"]),
        ]

    def dispatch(self, request: Request, path: str) -> Response:
        """As the base, but Graph-shaped errors (and GraphError from any handler)."""
        path = path or "/"
        adapter = self.url_map.bind(
            request.host,
            script_name=f"/{self.name}",
            url_scheme="https",
            path_info=path,
            default_method=request.method,
        )
        api = path.startswith("/v1.0/") or path == "/v1.0"
        try:
            handler, values = adapter.match(path, method=request.method)
            return handler(request, **values)
        except GraphError as exc:
            return error_response(request, exc)
        except MethodNotAllowed as exc:
            if api:
                return error_response(
                    request,
                    GraphError(405, "Request_BadRequest", "Specified HTTP method is not allowed."),
                )
            return exc.get_response(request.environ)
        except NotFound as exc:
            if api:
                return error_response(request, _segment_not_found(path))
            return exc.get_response(request.environ)
        except HTTPException as exc:
            return exc.get_response(request.environ)

    # -- addresses and the CLI ------------------------------------------------------------------
    @property
    def base(self) -> str:
        """What the app's GRAPH_BASE_URL should be."""
        return self.url()

    def describe(self) -> dict[str, str]:
        organizers = ", ".join(f"{u.key}={u.object_id}" for u in USERS[:3])
        return {
            "GRAPH_BASE_URL": self.base,
            "token scope (app-only)": f"{GRAPH_AUDIENCE}/.default",
            "createOrGet": self.url("/v1.0/users/{organizer oid}/onlineMeetings/createOrGet"),
            "demo organizers": organizers,
            "meeting page": self.url("/meet/{meeting id}?role=organizer|member|guest&name=..."),
            "meeting rosters (JSON)": self.url("/_meetings"),
            "controls": f"{self.state.base_url}/_sandbox/graph/",
        }

    def on_reset(self) -> None:
        self.default_lobby_scope = self._initial_lobby_scope
        self.default_allowed_presenters = self._initial_presenters
        self.access_policy = None

    # -- Python API for tests and other stand-ins --------------------------------------------------
    @property
    def listeners(self) -> list[Listener]:
        """Called with a ``RosterChange`` after every roster change (the notifications hook)."""
        return self.meetings.listeners

    def add_listener(self, listener: Listener) -> None:
        self.meetings.listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        if listener in self.meetings.listeners:
            self.meetings.listeners.remove(listener)

    def meeting_for(self, organizer: str, external_id: str) -> OnlineMeeting | None:
        """The meeting createOrGet made for (organizer oid or demo key, externalId)."""
        person = directory.user(organizer)
        oid = person.object_id if person else organizer
        found = self.meetings.matching(
            lambda m: m.organizer_oid == oid and m.external_id == external_id
        )
        return found[0] if found else None

    def join(
        self, meeting_id: str, role: str, name: str = "", user: str | None = None
    ) -> Participant:
        """Someone opens the meeting page; ``user`` (demo key or oid) for members."""
        person = directory.user(user) if user else None
        return self.meetings.join(meeting_id, role, name, person.object_id if person else user)

    def admit(self, meeting_id: str, participant_id: str, by: str | None = None) -> Participant:
        return self.meetings.admit(meeting_id, participant_id, by)

    def leave(self, meeting_id: str, participant_id: str) -> Participant:
        return self.meetings.leave(meeting_id, participant_id)

    def roster(self, meeting_id: str) -> dict[str, Any]:
        """The roster JSON of ``/graph/_meetings/{meetingId}``; KeyError for an unknown id."""
        snapshot = self.meetings.snapshot(meeting_id)
        if snapshot is None:
            raise KeyError(meeting_id)
        return snapshot

    def set_access_policy(self, organizers: Iterable[str] | None) -> None:
        """Restrict app-only meeting calls to these organizers (oids or demo keys); None: all."""
        if organizers is None:
            self.access_policy = None
            return
        oids = set()
        for o in organizers:
            person = directory.user(o)
            oids.add(person.object_id if person else o)
        self.access_policy = frozenset(oids)

    # -- users ------------------------------------------------------------------------------------
    def get_user(self, request: Request, user_id: str) -> Response:
        caller = self._caller(request)
        person = self._resolve_user(caller, user_id)
        if caller.app_only or person.object_id != caller.user_oid:
            caller.require(*USERS_READ, code="Authorization_RequestDenied")
        else:
            caller.require((), ("User.Read", *USERS_READ[1]), code="Authorization_RequestDenied")
        select = _select(request)
        body = _pick(_user_json(person), select)
        context = f"users({','.join(select)})/$entity" if select else "users/$entity"
        return graph_json(request, {"@odata.context": self._context(context), **body})

    def list_users(self, request: Request) -> Response:
        caller = self._caller(request)
        caller.require(*USERS_READ, code="Authorization_RequestDenied")
        if request.args.get("$filter") or request.args.get("$search"):
            raise bad_request("The sandbox supports $select and $top on /users, not $filter.")
        select = _select(request)
        top = request.args.get("$top", type=int) or len(USERS)
        items = [_pick(_user_json(u), select) for u in USERS[: max(1, top)]]
        context = f"users({','.join(select)})" if select else "users"
        return graph_json(request, {"@odata.context": self._context(context), "value": items})

    def userinfo(self, request: Request) -> Response:
        """OpenID Connect userinfo (Entra's discovery points here), for delegated tokens."""
        caller = self._caller(request)
        if caller.app_only:
            raise GraphError(401, "InvalidAuthenticationToken", "userinfo needs a user's token.")
        person = directory.user(caller.user_oid or "")
        if person is None:
            raise user_not_found(caller.user_oid or "")
        from dev.sandbox.entra.tokens import pairwise_sub

        given, surname = _names(person)
        return graph_json(
            request,
            {
                "sub": pairwise_sub(person.object_id, caller.app_id),
                "name": person.name,
                "given_name": given,
                "family_name": surname,
                "email": person.upn,
                "picture": self.url("/v1.0/me/photo/$value"),
            },
        )

    # -- onlineMeetings ----------------------------------------------------------------------------
    def create_or_get(self, request: Request, user_id: str) -> Response:
        caller = self._caller(request)
        caller.require(*MEETINGS_WRITE)
        organizer = self._organizer(caller, user_id)
        body = _json_body(request)
        unknown = sorted(set(body) - CREATE_OR_GET_FIELDS)
        if unknown:
            raise bad_request(
                f"Property '{unknown[0]}' is not supported by createOrGet; set meeting options "
                "with PATCH /users/{userId}/onlineMeetings/{meetingId}."
            )
        external_id = body.get("externalId")
        if not isinstance(external_id, str) or not external_id.strip():
            raise bad_request("externalId is required and must be a non-empty string.")
        start, end = _times(body)
        subject = _subject(body)
        attendees = _attendees(body.get("participants"))
        meeting, created = self.meetings.create_or_get(
            organizer.object_id,
            external_id,
            lambda: self._new_meeting(organizer, external_id, subject, start, end, attendees),
        )
        return graph_json(request, self._resource(meeting), 201 if created else 200)

    def create_meeting(self, request: Request, user_id: str) -> Response:
        """POST /onlineMeetings: a new meeting every time (no externalId idempotency)."""
        caller = self._caller(request)
        caller.require(*MEETINGS_WRITE)
        organizer = self._organizer(caller, user_id)
        body = _json_body(request)
        unknown = sorted(set(body) - (PATCH_FIELDS | {"chatInfo", "externalId"}))
        if unknown:
            raise bad_request(f"Invalid property '{unknown[0]}' for an onlineMeeting.")
        start, end = _times(body)
        meeting = self._new_meeting(
            organizer,
            body.get("externalId") if isinstance(body.get("externalId"), str) else None,
            _subject(body),
            start,
            end,
            _attendees(body.get("participants")),
        )
        changes = _patch_changes({k: v for k, v in body.items() if k in PATCH_FIELDS}, meeting)
        for apply in changes:
            apply(meeting)
        self.meetings.add(meeting)
        return graph_json(request, self._resource(meeting), 201)

    def list_meetings(self, request: Request, user_id: str) -> Response:
        """GET /onlineMeetings?$filter=joinWebUrl eq '...' (the only listing Graph allows)."""
        caller = self._caller(request)
        caller.require(*MEETINGS_READ)
        organizer = self._organizer(caller, user_id)
        match = _FILTER_JOIN_URL.match(request.args.get("$filter", ""))
        if not match:
            raise bad_request("Filter on joinWebUrl is required: $filter=joinWebUrl eq '{url}'.")
        url = match.group(1).replace("''", "'")
        found = [
            self._resource(m)
            for m in self.meetings.matching(
                lambda m: m.organizer_oid == organizer.object_id and m.join_web_url == url
            )
        ]
        for item in found:
            item.pop("@odata.context", None)
        context = self._context(f"users('{organizer.object_id}')/onlineMeetings")
        return graph_json(request, {"@odata.context": context, "value": found})

    def get_meeting(self, request: Request, user_id: str, meeting_id: str) -> Response:
        caller = self._caller(request)
        caller.require(*MEETINGS_READ)
        meeting = self._meeting(self._organizer(caller, user_id), meeting_id)
        return graph_json(request, self._resource(meeting))

    def patch_meeting(self, request: Request, user_id: str, meeting_id: str) -> Response:
        caller = self._caller(request)
        caller.require(*MEETINGS_WRITE)
        meeting = self._meeting(self._organizer(caller, user_id), meeting_id)
        body = _json_body(request)
        unknown = sorted(set(body) - PATCH_FIELDS)
        if unknown:
            raise bad_request(f"Property '{unknown[0]}' cannot be updated on an onlineMeeting.")
        changes = _patch_changes(body, meeting)  # validate everything before changing anything

        def apply(m: OnlineMeeting) -> None:
            for change in changes:
                change(m)

        updated = self.meetings.update(meeting.id, apply)
        return graph_json(request, self._resource(updated))

    def delete_meeting(self, request: Request, user_id: str, meeting_id: str) -> Response:
        caller = self._caller(request)
        caller.require(*MEETINGS_WRITE)
        meeting = self._meeting(self._organizer(caller, user_id), meeting_id)
        self.meetings.delete(meeting.id)
        return Response(status=204, headers=request_ids(request))

    def unknown_segment(self, request: Request, rest: str) -> Response:
        self._caller(request)
        raise _segment_not_found("/v1.0/" + rest)

    # -- the meeting page -------------------------------------------------------------------------
    def meeting_page(self, request: Request, meeting_id: str) -> Response:
        meeting = self.meetings.get(meeting_id)
        if meeting is None:
            return _page_response(
                pages.message_page("Meeting not found", "This meeting link is not valid."), 404
            )
        role = request.args.get("role")
        if not role:
            action = self.url(f"/meet/{quote(meeting.id, safe='')}")
            return _page_response(pages.join_form(meeting, action, request.args.get("context")))
        try:
            person = self.join(
                meeting.id, role, request.args.get("name", ""), request.args.get("user")
            )
        except RosterError as exc:
            return _page_response(pages.message_page("Cannot join", exc.message), exc.status)
        return redirect(self._person_url(meeting.id, person.id), 303)

    def person_page(self, request: Request, meeting_id: str, participant_id: str) -> Response:
        try:
            person = self.meetings.participant(meeting_id, participant_id)
        except RosterError as exc:
            return _page_response(pages.message_page("Not found", exc.message), exc.status)
        rejoin = self.url(f"/meet/{quote(meeting_id, safe='')}?") + urlencode(
            {"role": person.role, "name": person.name}
        )
        roster_url = f"/_sandbox/graph/meetings/{quote(meeting_id, safe='')}"
        page = self.meetings.read(
            meeting_id,
            lambda meeting: pages.participant_page(
                meeting, person, self._person_url(meeting_id, participant_id), roster_url, rejoin
            ),
        )
        return _page_response(page)

    def page_admit(self, request: Request, meeting_id: str, participant_id: str) -> Response:
        if request.method != "POST":
            return redirect(self._person_url(meeting_id, participant_id), 303)
        try:
            self.admit(meeting_id, request.form.get("participant", ""), by=participant_id)
        except RosterError as exc:
            if exc.status != 409:  # already admitted by someone else: nothing to say
                return _page_response(pages.message_page("Cannot admit", exc.message), exc.status)
        return redirect(self._person_url(meeting_id, participant_id), 303)

    def page_leave(self, request: Request, meeting_id: str, participant_id: str) -> Response:
        if request.method != "POST":
            return redirect(self._person_url(meeting_id, participant_id), 303)
        try:
            self.leave(meeting_id, participant_id)
        except RosterError as exc:
            return _page_response(pages.message_page("Cannot leave", exc.message), exc.status)
        return redirect(self._person_url(meeting_id, participant_id), 303)

    def _person_url(self, meeting_id: str, participant_id: str) -> str:
        return self.url(f"/meet/{quote(meeting_id, safe='')}/p/{quote(participant_id, safe='')}")

    # -- rosters (sandbox-only JSON) and controls --------------------------------------------------
    def roster_endpoint(self, request: Request, meeting_id: str) -> Response:
        snapshot = self.meetings.snapshot(meeting_id)
        if snapshot is None:
            return error_response(request, meeting_not_found())
        return json_response(snapshot, headers=_NO_STORE)

    def rosters_endpoint(self, request: Request) -> Response:
        items = [s for m in self.meetings if (s := self.meetings.snapshot(m)) is not None]
        return json_response({"meetings": items}, headers=_NO_STORE)

    def c_summary(self, request: Request) -> Response:
        return json_response(
            {
                "base": self.base,
                "meetings": len(self.meetings),
                "settings": self._settings_json(),
            }
        )

    def c_join(self, request: Request, meeting_id: str) -> Response:
        body = read_json(request)
        return self._control(
            lambda: self.join(
                meeting_id, body.get("role", ""), body.get("name", ""), body.get("user")
            )
        )

    def c_admit(self, request: Request, meeting_id: str) -> Response:
        body = read_json(request)
        return self._control(
            lambda: self.admit(meeting_id, body.get("participant", ""), body.get("by"))
        )

    def c_leave(self, request: Request, meeting_id: str) -> Response:
        body = read_json(request)
        return self._control(lambda: self.leave(meeting_id, body.get("participant", "")))

    def c_settings(self, request: Request) -> Response:
        if request.method == "POST":
            body = read_json(request)
            scope = body.get("default_lobby_scope", self.default_lobby_scope)
            presenters = body.get("default_allowed_presenters", self.default_allowed_presenters)
            if scope not in LOBBY_SCOPES or presenters not in PRESENTERS:
                return json_response(
                    {"error": f"lobby scope in {LOBBY_SCOPES}, presenters in {PRESENTERS}"}, 400
                )
            self.default_lobby_scope, self.default_allowed_presenters = scope, presenters
            if "access_policy" in body:
                self.set_access_policy(body["access_policy"])
        return json_response(self._settings_json())

    def _settings_json(self) -> dict[str, Any]:
        policy = self.access_policy
        return {
            "default_lobby_scope": self.default_lobby_scope,
            "default_allowed_presenters": self.default_allowed_presenters,
            "access_policy": None if policy is None else sorted(policy),
        }

    @staticmethod
    def _control(action: Any) -> Response:
        try:
            person = action()
        except RosterError as exc:
            return json_response({"error": exc.message}, exc.status)
        return json_response(person.to_json())

    # -- helpers ----------------------------------------------------------------------------------
    def _caller(self, request: Request) -> Caller:
        return authenticate(request, self.state.stand_ins.get("entra"))

    def _resource(self, meeting: OnlineMeeting) -> dict[str, Any]:
        """The Graph JSON of a meeting, read under the store's lock (no torn PATCH)."""
        try:
            return self.meetings.read(meeting.id, lambda m: m.to_graph(self.base))
        except RosterError:  # deleted meanwhile: what we had
            return meeting.to_graph(self.base)

    def _context(self, what: str) -> str:
        return f"{self.base}/v1.0/$metadata#{what}"

    def _resolve_user(self, caller: Caller, user_id: str) -> DemoUser:
        if user_id == "me":
            if caller.app_only:
                raise bad_request("/me request is only valid with delegated authentication flow.")
            user_id = caller.user_oid or ""
        # Graph knows users by object id or UPN (the demo keys are a sandbox convenience only).
        wanted = user_id.lower()
        person = next((u for u in USERS if wanted in (u.object_id, u.upn.lower())), None)
        if person is None:
            raise user_not_found(user_id)
        return person

    def _organizer(self, caller: Caller, user_id: str) -> DemoUser:
        person = self._resolve_user(caller, user_id)
        if caller.app_only:
            if self.access_policy is not None and person.object_id not in self.access_policy:
                raise GraphError(
                    403, "Forbidden", "No application access policy found for this app."
                )
        elif person.object_id != caller.user_oid:
            raise GraphError(
                403, "Forbidden", "A delegated token can only act on the signed-in user's meetings."
            )
        return person

    def _meeting(self, organizer: DemoUser, meeting_id: str) -> OnlineMeeting:
        meeting = self.meetings.find(organizer.object_id, meeting_id)
        if meeting is None:
            raise meeting_not_found()
        return meeting

    def _new_meeting(
        self,
        organizer: DemoUser,
        external_id: str | None,
        subject: str,
        start: dt.datetime,
        end: dt.datetime,
        attendees: list[dict[str, Any]],
    ) -> OnlineMeeting:
        meeting_id, thread = new_meeting_id(organizer.object_id)
        context = json.dumps({"Tid": TENANT_ID, "Oid": organizer.object_id}, separators=(",", ":"))
        join_url = self.url(f"/meet/{meeting_id}?") + urlencode({"context": context})
        return OnlineMeeting(
            id=meeting_id,
            organizer_oid=organizer.object_id,
            organizer_upn=organizer.upn,
            external_id=external_id,
            subject=subject,
            start=start,
            end=end,
            created=dt.datetime.now(dt.UTC),
            thread_id=thread,
            join_web_url=join_url,
            join_meeting_id=new_join_meeting_id(),
            passcode=new_passcode(),
            lobby_scope=self.default_lobby_scope,
            dial_in_bypass=False,
            allowed_presenters=self.default_allowed_presenters,
            entry_exit_announced=True,
            attendees=attendees,
            options=dict(_DEFAULT_OPTIONS),
        )


# -- request parsing (module functions: pure, raise GraphError) ------------------------------------
def _json_body(request: Request) -> dict[str, Any]:
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


def _parse_time(value: Any) -> dt.datetime:
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


def _times(body: dict[str, Any]) -> tuple[dt.datetime, dt.datetime]:
    now = dt.datetime.now(dt.UTC)
    start = _parse_time(body["startDateTime"]) if "startDateTime" in body else now
    end = (
        _parse_time(body["endDateTime"]) if "endDateTime" in body else start + dt.timedelta(hours=1)
    )
    if end < start:
        raise bad_request("endDateTime must not be before startDateTime.")
    return start, end


def _subject(body: dict[str, Any]) -> str:
    subject = body.get("subject", "")
    if subject is None:
        return ""
    if not isinstance(subject, str) or len(subject) > 255:
        raise bad_request("subject must be a string of at most 255 characters.")
    return subject


def _attendees(participants: Any) -> list[dict[str, Any]]:
    if participants is None:
        return []
    if not isinstance(participants, dict):
        raise bad_request("participants must be a meetingParticipants object.")
    attendees = participants.get("attendees") or []
    if not isinstance(attendees, list) or not all(isinstance(a, dict) for a in attendees):
        raise bad_request("participants.attendees must be a list of meetingParticipantInfo.")
    return [dict(a) for a in attendees]


def _patch_changes(body: dict[str, Any], meeting: OnlineMeeting) -> list[Any]:
    """Validate a PATCH body; the changes to apply, as functions (nothing applied yet)."""
    changes: list[Any] = []
    if "subject" in body:
        subject = _subject(body)
        changes.append(lambda m: setattr(m, "subject", subject))
    if "startDateTime" in body or "endDateTime" in body:
        start = _parse_time(body["startDateTime"]) if "startDateTime" in body else meeting.start
        end = _parse_time(body["endDateTime"]) if "endDateTime" in body else meeting.end
        if end < start:
            raise bad_request("endDateTime must not be before startDateTime.")

        def move(m: OnlineMeeting) -> None:
            m.start, m.end = start, end

        changes.append(move)
    if "participants" in body:
        attendees = _attendees(body["participants"])
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
        changes.append(lambda m: _apply_lobby(m, lobby.get("scope"), dial_in))
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
    for name, allowed in _OPTION_TYPES.items():
        if name not in body:
            continue
        value = body[name]
        ok = isinstance(value, bool) if allowed == (bool,) else value in allowed
        if not ok:
            raise bad_request(f"Invalid value for '{name}'.")
        changes.append(lambda m, name=name, value=value: m.options.__setitem__(name, value))
    return changes


def _apply_lobby(meeting: OnlineMeeting, scope: str | None, dial_in: bool | None) -> None:
    if scope is not None:
        meeting.lobby_scope = scope
    if dial_in is not None:
        meeting.dial_in_bypass = dial_in


def _select(request: Request) -> list[str]:
    raw = request.args.get("$select", "")
    fields = [f.strip() for f in raw.split(",") if f.strip()]
    for f in fields:
        if f not in USER_FIELDS:
            raise bad_request(
                f"Could not find a property named '{f}' on type 'microsoft.graph.user'."
            )
    return fields


def _pick(item: dict[str, Any], select: list[str]) -> dict[str, Any]:
    return {k: item[k] for k in select} if select else item


def _names(person: DemoUser) -> tuple[str, str]:
    words = [w for w in person.name.split() if not w.endswith(".")]
    return (words[0] if words else person.name), (words[-1] if len(words) > 1 else "")


def _user_json(person: DemoUser) -> dict[str, Any]:
    given, surname = _names(person)
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


def _segment_not_found(path: str) -> GraphError:
    segment = path.removeprefix("/v1.0/").split("/", 1)[0] or "v1.0"
    return GraphError(400, "BadRequest", f"Resource not found for the segment '{segment}'.")


def _page_response(body: str, status: int = 200) -> Response:
    response = html_response(body, status)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Content-Security-Policy"] = pages.CSP
    response.headers["Referrer-Policy"] = "no-referrer"
    return response
