"""Microsoft Graph v1.0 at ``/graph``: onlineMeetings, users, and a meeting page at each joinWebUrl.

Graph base URL: ``{sandbox}/graph`` (calls are ``{sandbox}/graph/v1.0/...``). Every Graph call
needs a bearer token the sandbox Entra issued for ``https://graph.microsoft.com`` with the
permission the real call needs (app-only: ``roles``; delegated: ``scp``); errors are Graph-shaped.

Sandbox-only additions (no Graph counterpart): the meeting page ``/graph/meet/{meetingId}``, the
roster JSON ``/graph/_meetings/{meetingId}``, and controls under ``/_sandbox/graph/``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing import Rule
from werkzeug.wrappers import Request, Response

from dev.sandbox import directory
from dev.sandbox.directory import GRAPH_AUDIENCE, USERS
from dev.sandbox.graph import parsing
from dev.sandbox.graph.api import GraphApi
from dev.sandbox.graph.calls import QUALITY, Calls
from dev.sandbox.graph.errors import (
    GraphError,
    error_response,
    meeting_not_found,
)
from dev.sandbox.graph.meeting_page import MeetingPages
from dev.sandbox.graph.meetings import (
    LOBBY_SCOPES,
    PRESENTERS,
    Listener,
    OnlineMeeting,
    Participant,
    RosterError,
)
from dev.sandbox.graph.notify import TOKEN_MODES, Subscriptions
from dev.sandbox.graph.store import MeetingStore
from dev.sandbox.graph.subscriptions_api import SubscriptionApi, subscription_rules
from dev.sandbox.standin import StandIn, json_response, read_json

if TYPE_CHECKING:
    from dev.sandbox.state import SandboxState

# What a tenant's default meeting policy gives a new meeting (Teams' defaults): people of the
# organization bypass the lobby, anonymous people wait, everyone may present. Our connector is
# expected to PATCH these to what it wants. Sandbox settings GRAPH_DEFAULT_LOBBY_SCOPE /
# GRAPH_DEFAULT_ALLOWED_PRESENTERS change them.
DEFAULT_LOBBY_SCOPE = "organizationExcludingGuests"
DEFAULT_ALLOWED_PRESENTERS = "everyone"

_NO_STORE = {"Cache-Control": "no-store"}


class GraphStandIn(GraphApi, SubscriptionApi, MeetingPages, StandIn):
    name = "graph"
    title = "Microsoft Graph (onlineMeetings, users, subscriptions, call records) + meeting page"

    def __init__(self, state: SandboxState) -> None:
        from dev.sandbox import certs

        self.meetings = MeetingStore()
        ca_file = certs.certs_dir(state.state_dir) / certs.CA_CERT_NAME
        self.subscriptions = Subscriptions(state, str(ca_file))
        # Every roster change of the meeting page drives the call events and records.
        self.calls = Calls(self.subscriptions)
        self.calls.record_delay = float(state.setting("GRAPH_CALL_RECORD_DELAY", "0.5"))
        self.meetings.listeners.append(self.calls)
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
            *subscription_rules(self),
            Rule("/v1.0/<path:rest>", endpoint=self.unknown_segment),
            Rule("/beta/<path:rest>", endpoint=self.unknown_segment),
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
            Rule("/subscriptions", endpoint=self.c_subscriptions, methods=["GET"]),
            Rule(
                "/subscriptions/<subscription_id>/lifecycle",
                endpoint=self.c_lifecycle,
                methods=["POST"],
            ),
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
        api = path.startswith(("/v1.0/", "/beta/")) or path in ("/v1.0", "/beta")
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
                return error_response(request, parsing.segment_not_found(path))
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
            "origin": self.origin,
            "GRAPH_BASE_URL": self.base,
            "token scope (app-only)": f"{GRAPH_AUDIENCE}/.default",
            "createOrGet": self.url("/v1.0/users/{organizer oid}/onlineMeetings/createOrGet"),
            "demo organizers": organizers,
            "meeting page": self.url("/meet/{meeting id}?role=organizer|member|guest&name=..."),
            "meeting rosters (JSON)": self.url("/_meetings"),
            "subscriptions (JSON)": f"{self.control_url}/subscriptions",
            "controls": f"{self.control_url}/",
        }

    def on_reset(self) -> None:
        self.default_lobby_scope = self._initial_lobby_scope
        self.default_allowed_presenters = self._initial_presenters
        self.access_policy = None
        self.subscriptions.reset()
        self.calls.reset()

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
            quality = body.get("call_quality", self.calls.call_quality)
            if quality not in QUALITY:
                return json_response({"error": f"call_quality in {sorted(QUALITY)}"}, 400)
            token = body.get("validation_token", self.subscriptions.validation_token)
            if token not in TOKEN_MODES:
                return json_response({"error": f"validation_token in {list(TOKEN_MODES)}"}, 400)
            self.calls.call_quality = quality
            self.subscriptions.validation_token = token
        return json_response(self._settings_json())

    def _settings_json(self) -> dict[str, Any]:
        policy = self.access_policy
        return {
            "default_lobby_scope": self.default_lobby_scope,
            "default_allowed_presenters": self.default_allowed_presenters,
            "access_policy": None if policy is None else sorted(policy),
            "call_quality": self.calls.call_quality,
            "validation_token": self.subscriptions.validation_token,
        }

    def c_subscriptions(self, request: Request) -> Response:
        items = [s.to_json() | {"kind": s.kind} for s in list(self.subscriptions.items.values())]
        for item in items:
            item.pop("clientState", None)  # a secret of the app's
        return json_response({"subscriptions": items}, headers=_NO_STORE)

    def c_lifecycle(self, request: Request, subscription_id: str) -> Response:
        event = read_json(request).get("event", "")
        if event not in ("reauthorizationRequired", "subscriptionRemoved", "missed"):
            return json_response({"error": "event: reauthorizationRequired, "
                                  "subscriptionRemoved or missed"}, 400)  # fmt: skip
        try:
            self.lifecycle(subscription_id, event)
        except KeyError:
            return json_response({"error": "no such subscription"}, 404)
        return json_response({"sent": event})

    @staticmethod
    def _control(action: Any) -> Response:
        try:
            person = action()
        except RosterError as exc:
            return json_response({"error": exc.message}, exc.status)
        return json_response(person.to_json())
