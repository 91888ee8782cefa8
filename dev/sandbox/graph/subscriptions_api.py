"""Graph's subscriptions, call records and attendance reports over HTTP (mixed into GraphStandIn),
each call checking the permissions its Graph documentation lists (app-only: these resources
take no delegated tokens here)."""

from __future__ import annotations

from typing import Any

from werkzeug.routing import Rule
from werkzeug.wrappers import Request, Response

from dev.sandbox.graph import parsing
from dev.sandbox.graph.errors import GraphError, graph_json, request_ids
from dev.sandbox.graph.notify import CALL_RECORDS, SubscriptionRefused

MEETING_EVENTS_READ = ("OnlineMeetings.Read.All", "OnlineMeetings.ReadWrite.All")
CALL_RECORDS_READ = ("CallRecords.Read.All",)
ARTIFACTS_READ = ("OnlineMeetingArtifact.Read.All",)


def subscription_rules(api: Any) -> list[Rule]:
    rules = []
    for version in ("v1.0", "beta"):
        v = {"version": version}
        rules += [
            Rule(f"/{version}/subscriptions", endpoint=api.create_subscription,
                 methods=["POST"], defaults=v),
            Rule(f"/{version}/subscriptions", endpoint=api.list_subscriptions,
                 methods=["GET"], defaults=v),
            Rule(f"/{version}/subscriptions/<subscription_id>", endpoint=api.one_subscription,
                 methods=["GET", "PATCH", "DELETE"], defaults=v),
        ]  # fmt: skip
    return [
        *rules,
        Rule("/v1.0/communications/callRecords/<record_id>", endpoint=api.get_call_record,
             methods=["GET"]),
        Rule("/v1.0/users/<user_id>/onlineMeetings/<meeting_id>/attendanceReports",
             endpoint=api.list_attendance_reports, methods=["GET"]),
        Rule("/v1.0/users/<user_id>/onlineMeetings/<meeting_id>/attendanceReports/<report_id>",
             endpoint=api.get_attendance_report, methods=["GET"]),
    ]  # fmt: skip


class SubscriptionApi:
    """Mixed into GraphStandIn (``self.subscriptions``, ``self.calls``, ``self.meetings``)."""

    def create_subscription(self, request: Request, version: str) -> Response:
        caller = self._caller(request)
        body = parsing.json_body(request)
        resource = str(body.get("resource") or "")
        needed = CALL_RECORDS_READ if "callRecords" in resource else MEETING_EVENTS_READ
        caller.require(needed)
        try:
            sub = self.subscriptions.create(caller.app_id, body, version, self.meetings)
        except SubscriptionRefused as exc:
            raise GraphError(exc.status, exc.code, exc.message) from None
        return graph_json(request, self._subscription_json(sub, version), 201)

    def list_subscriptions(self, request: Request, version: str) -> Response:
        caller = self._caller(request)
        items = [
            self._subscription_json(s, version)
            for s in list(self.subscriptions.items.values())
            if s.app_id == caller.app_id
        ]
        return graph_json(request, {"value": items})

    def one_subscription(self, request: Request, version: str, subscription_id: str) -> Response:
        caller = self._caller(request)
        try:
            if request.method == "DELETE":
                self.subscriptions.delete(caller.app_id, subscription_id)
                return Response(status=204, headers=request_ids(request))
            if request.method == "PATCH":
                body = parsing.json_body(request)
                unknown = sorted(set(body) - {"expirationDateTime", "notificationUrl"})
                if unknown:
                    raise GraphError(400, "InvalidRequest", f"'{unknown[0]}' cannot be updated.")
                sub = self.subscriptions.update(caller.app_id, subscription_id, body)
            else:
                sub = self.subscriptions.get(caller.app_id, subscription_id)
        except SubscriptionRefused as exc:
            raise GraphError(exc.status, exc.code, exc.message) from None
        return graph_json(request, self._subscription_json(sub, version))

    def get_call_record(self, request: Request, record_id: str) -> Response:
        caller = self._caller(request)
        caller.require(CALL_RECORDS_READ)
        record = self.calls.records.get(record_id)
        if record is None:
            raise GraphError(404, "NotFound", "The call record was not found.")
        expand = request.args.get("$expand", "")
        body = dict(record)
        if "sessions" not in expand:
            body.pop("sessions", None)
        elif "segments" not in expand:
            body["sessions"] = [{k: v for k, v in s.items() if k != "segments"}
                                for s in record["sessions"]]  # fmt: skip
        return graph_json(request, body)

    def list_attendance_reports(self, request: Request, user_id: str, meeting_id: str) -> Response:
        meeting = self._artifact_meeting(request, user_id, meeting_id)
        reports = self.calls.reports.get(meeting.id, [])
        items = [{k: v for k, v in r.items() if k != "attendanceRecords"} for r in reports]
        return graph_json(request, {"value": items})

    def get_attendance_report(
        self, request: Request, user_id: str, meeting_id: str, report_id: str
    ) -> Response:
        meeting = self._artifact_meeting(request, user_id, meeting_id)
        report = next(
            (r for r in self.calls.reports.get(meeting.id, []) if r["id"] == report_id), None
        )
        if report is None:
            raise GraphError(404, "NotFound", "The attendance report was not found.")
        if "attendanceRecords" not in request.args.get("$expand", ""):
            report = {k: v for k, v in report.items() if k != "attendanceRecords"}
        return graph_json(request, report)

    def _artifact_meeting(self, request: Request, user_id: str, meeting_id: str) -> Any:
        caller = self._caller(request)
        caller.require(ARTIFACTS_READ)
        return self._meeting(self._organizer(caller, user_id), meeting_id)

    def _subscription_json(self, sub: Any, version: str) -> dict[str, Any]:
        return {
            "@odata.context": f"{self.base}/{version}/$metadata#subscriptions/$entity",
            **sub.to_json(),
        }

    # -- Python API for tests ----------------------------------------------------------------
    def lifecycle(self, subscription_id: str, event: str) -> None:
        """Send ``reauthorizationRequired``, ``subscriptionRemoved`` (which also removes it) or
        ``missed`` to the subscription's lifecycle URL."""
        self.subscriptions.lifecycle(subscription_id, event)

    def subscriptions_for(self, join_web_url: str | None = None) -> list[Any]:
        """Live subscriptions of a meeting (by join URL), or the call-records ones (None)."""
        if join_web_url is None:
            return self.subscriptions.matching(CALL_RECORDS)
        return self.subscriptions.matching("meetingCallEvents", join_web_url)
