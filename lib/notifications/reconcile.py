"""Reconciliation: the meeting's attendance report, as the events it implies.

After a visit's call (its `callEnded`, its call record) or on a `missed` lifecycle
notification, the `reconcile` task reads, app-only (`OnlineMeetingArtifact.Read.All`, and the
organizer covered by the application access policy):

    GET /users/{organizer}/onlineMeetings/{meetingId}/attendanceReports
    GET /users/{organizer}/onlineMeetings/{meetingId}/attendanceReports/{reportId}
        ?$expand=attendanceRecords

Each attendance record's intervals become `joined` (joinDateTime) and `left` (leaveDateTime)
events, and the report's meetingEndDateTime the visit's `ended`, with source `reconcile` and ids
from (report, record, interval, kind): running it again makes the same events, which the fold
counts once. Events that Graph's notifications already brought are there twice under two ids,
at the same times: the fold's statuses do not change for it. What the notifications missed
(a `left` never heard, a whole meeting while the webhook was down) is filled in, in its place
in time. The report has no lobby times: a wait missed by the notifications stays unknown.

Roles as in the notifications: a record of our tenant (or the organizer) is a `provider`, any
other attendee the `patient`. Names and e-mail addresses in the report are never read on.
"""

from __future__ import annotations

import logging
from typing import Any

from lib.notifications.roster import event_id, graph_time
from lib.privacy import PrivacyKeys
from lib.teams.graph import GraphClient, seg
from lib.visits.events import Kind, Role, VisitEventMessage
from lib.visits.store import VisitStore
from lib.visits.timeline import VisitEvents

log = logging.getLogger(__name__)

MAX_REPORTS = 10  # a meeting started and ended again a few times a visit, at most
MAX_RECORDS = 100


class Reconciler:
    def __init__(
        self,
        graph: GraphClient,
        visits: VisitStore,
        events: VisitEvents,
        privacy: PrivacyKeys,
        tenant_id: str,
    ) -> None:
        self._graph = graph
        self._visits = visits
        self._events = events
        self._privacy = privacy
        self._tenant_id = tenant_id.lower()

    def run(self, visit_key: str) -> int:
        """Publish what the visit's attendance reports imply; how many events."""
        visit = self._visits.get(visit_key)
        if visit is None or not visit.meeting_id:
            return 0
        base = f"/users/{seg(visit.organizer_oid)}/onlineMeetings/{seg(visit.meeting_id)}"
        response = self._graph.send("GET", f"{base}/attendanceReports")
        if response.status == 404:
            return 0  # no report (yet): the meeting never started
        reports = response.raise_for_error().json().get("value") or []
        made = []
        for summary in reports[:MAX_REPORTS]:
            report_id = summary.get("id") if isinstance(summary, dict) else None
            if not isinstance(report_id, str) or not report_id:
                continue
            report = self._graph.request(
                "GET",
                f"{base}/attendanceReports/{seg(report_id)}",
                params={"$expand": "attendanceRecords"},
            ).json()
            made.extend(self.events_of(report, visit_key))
        for event in made:
            self._events.publish(event)
        log.info("visit reconciled", extra={"visit": visit_key, "events": len(made)})
        return len(made)

    def events_of(self, report: dict[str, Any], visit_key: str) -> list[VisitEventMessage]:
        report_id = str(report.get("id") or "")
        found: list[VisitEventMessage] = []
        for record in (report.get("attendanceRecords") or [])[:MAX_RECORDS]:
            if not isinstance(record, dict):
                continue
            role = self._role(record)
            record_id = str(record.get("id") or "")
            for n, interval in enumerate(record.get("attendanceIntervals") or []):
                if not isinstance(interval, dict):
                    continue
                for kind, field in (("joined", "joinDateTime"), ("left", "leaveDateTime")):
                    if interval.get(field):
                        found.append(
                            self._event(
                                visit_key, kind, role, interval[field], report_id, record_id, n
                            )
                        )
        if report.get("meetingEndDateTime"):
            found.append(
                self._event(visit_key, "ended", "visit", report["meetingEndDateTime"], report_id)
            )
        return found

    def _role(self, record: dict[str, Any]) -> Role:
        identity = record.get("identity") if isinstance(record.get("identity"), dict) else {}
        tenant = str(identity.get("tenantId") or "").lower()
        if str(record.get("role") or "").lower() == "organizer" or (
            tenant and tenant == self._tenant_id
        ):
            return "provider"
        return "patient"

    def _event(
        self, visit_key: str, kind: Kind, role: Role, at: Any, *parts: object
    ) -> VisitEventMessage:
        return VisitEventMessage(
            event_id=event_id(self._privacy, "reconcile", kind, *parts),
            visit_key=visit_key,
            kind=kind,
            role=role,
            at=graph_time(at),
            source="reconcile",
        )
