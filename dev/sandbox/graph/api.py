"""The Graph v1.0 API of the stand-in: users, me, userinfo and onlineMeetings, each call
checking the permissions its Graph documentation lists."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any
from urllib.parse import urlencode

from werkzeug.wrappers import Request, Response

from dev.sandbox import directory
from dev.sandbox.directory import TENANT_ID, USERS, DemoUser
from dev.sandbox.graph import parsing
from dev.sandbox.graph.auth import Caller, authenticate
from dev.sandbox.graph.errors import (
    GraphError,
    bad_request,
    graph_json,
    meeting_not_found,
    request_ids,
    user_not_found,
)
from dev.sandbox.graph.meetings import (
    OnlineMeeting,
    RosterError,
    new_join_meeting_id,
    new_meeting_id,
    new_passcode,
)

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


class GraphApi:
    """Mixed into GraphStandIn."""

    # -- users ------------------------------------------------------------------------------------
    def get_user(self, request: Request, user_id: str) -> Response:
        caller = self._caller(request)
        person = self._resolve_user(caller, user_id)
        if caller.app_only or person.object_id != caller.user_oid:
            caller.require(*USERS_READ, code="Authorization_RequestDenied")
        else:
            caller.require((), ("User.Read", *USERS_READ[1]), code="Authorization_RequestDenied")
        select = parsing.select_fields(request)
        body = parsing.pick(parsing.user_json(person), select)
        context = f"users({','.join(select)})/$entity" if select else "users/$entity"
        return graph_json(request, {"@odata.context": self._context(context), **body})

    def list_users(self, request: Request) -> Response:
        caller = self._caller(request)
        caller.require(*USERS_READ, code="Authorization_RequestDenied")
        if request.args.get("$filter") or request.args.get("$search"):
            raise bad_request("The sandbox supports $select and $top on /users, not $filter.")
        select = parsing.select_fields(request)
        top = request.args.get("$top", type=int) or len(USERS)
        items = [parsing.pick(parsing.user_json(u), select) for u in USERS[: max(1, top)]]
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

        given, surname = parsing.given_and_surname(person)
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
        body = parsing.json_body(request)
        unknown = sorted(set(body) - parsing.CREATE_OR_GET_FIELDS)
        if unknown:
            raise bad_request(
                f"Property '{unknown[0]}' is not supported by createOrGet; set meeting options "
                "with PATCH /users/{userId}/onlineMeetings/{meetingId}."
            )
        external_id = body.get("externalId")
        if not isinstance(external_id, str) or not external_id.strip():
            raise bad_request("externalId is required and must be a non-empty string.")
        start, end = parsing.meeting_times(body)
        subject = parsing.subject_of(body)
        attendees = parsing.attendees_of(body.get("participants"))
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
        body = parsing.json_body(request)
        unknown = sorted(set(body) - (parsing.PATCH_FIELDS | {"chatInfo", "externalId"}))
        if unknown:
            raise bad_request(f"Invalid property '{unknown[0]}' for an onlineMeeting.")
        start, end = parsing.meeting_times(body)
        meeting = self._new_meeting(
            organizer,
            body.get("externalId") if isinstance(body.get("externalId"), str) else None,
            parsing.subject_of(body),
            start,
            end,
            parsing.attendees_of(body.get("participants")),
        )
        changes = parsing.patch_changes(
            {k: v for k, v in body.items() if k in parsing.PATCH_FIELDS}, meeting
        )
        for apply in changes:
            apply(meeting)
        self.meetings.add(meeting)
        return graph_json(request, self._resource(meeting), 201)

    def list_meetings(self, request: Request, user_id: str) -> Response:
        """GET /onlineMeetings?$filter=joinWebUrl eq '...' (the only listing Graph allows)."""
        caller = self._caller(request)
        caller.require(*MEETINGS_READ)
        organizer = self._organizer(caller, user_id)
        match = parsing.FILTER_JOIN_URL.match(request.args.get("$filter", ""))
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
        body = parsing.json_body(request)
        unknown = sorted(set(body) - parsing.PATCH_FIELDS)
        if unknown:
            raise bad_request(f"Property '{unknown[0]}' cannot be updated on an onlineMeeting.")
        changes = parsing.patch_changes(
            body, meeting
        )  # validate everything before changing anything

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
        raise parsing.segment_not_found("/v1.0/" + rest)

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
            options=dict(parsing.DEFAULT_OPTIONS),
        )
