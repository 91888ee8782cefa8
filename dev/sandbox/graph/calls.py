"""What a meeting's calls leave behind: call events while it runs, then a call record and an
attendance report, built from the meeting page's roster changes (the store's listener hook).

- Each roster change becomes a ``callEvent`` (``rosterUpdated``; ``callStarted`` before the
  first person in, ``callEnded`` after the last one out) notified to the meeting's
  ``meetingCallEvents`` subscriptions.
- When a call ends: a call record (``/communications/callRecords/{id}``, one session per person
  who was in, each with a segment whose audio and video streams carry the figures of
  ``call_quality``: ``good`` or ``poor``), notified to ``callRecords`` subscriptions after
  ``record_delay`` seconds; and an attendance report (``/users/{organizer}/onlineMeetings/{id}/
  attendanceReports/{reportId}``) with each attendee's intervals in the meeting.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from dev.sandbox.directory import TENANT_ID
from dev.sandbox.graph.meetings import IN_MEETING, LEFT, LOBBY, RosterChange, iso
from dev.sandbox.graph.notify import CALL_RECORDS, MEETING_EVENTS, Subscriptions

QUALITY = {
    # loss (fraction), jitter and round trip (seconds): what Teams calls fine, and what it flags
    "good": {"loss": 0.002, "jitter": 0.004, "rtt": 0.045},
    "poor": {"loss": 0.12, "jitter": 0.065, "rtt": 0.61},
}


@dataclass
class _Person:
    id: str
    name: str
    role: str
    user_id: str | None
    intervals: list[list[float | None]] = field(default_factory=list)  # [in, out]


@dataclass
class _Call:
    meeting_id: str
    organizer_oid: str
    join_web_url: str
    started: float
    people: dict[str, _Person] = field(default_factory=dict)


class Calls:
    """The Graph stand-in's calls: notified, recorded and reported."""

    def __init__(self, subscriptions: Subscriptions) -> None:
        self.subscriptions = subscriptions
        self.call_quality = "good"
        self.record_delay = 0.5
        self.records: dict[str, dict[str, Any]] = {}
        self.reports: dict[str, list[dict[str, Any]]] = {}  # meeting id -> reports
        self._calls: dict[str, _Call] = {}
        self._lock = threading.Lock()

    def reset(self) -> None:
        """Records and reports stay (Graph keeps them for a year); the quality control goes back."""
        self.call_quality = "good"

    # -- the roster listener ----------------------------------------------------------------------
    def __call__(self, change: RosterChange) -> None:
        with self._lock:
            call = self._track(change)
        if change.call == "started":
            self._notify(change, "callStarted", [])
        self._notify(change, "rosterUpdated", [_participant(change)])
        if change.call == "ended" and call is not None:
            self._notify(change, "callEnded", [])
            self._finish(call, change.at)

    def _track(self, change: RosterChange) -> _Call | None:
        call = self._calls.get(change.meeting_id)
        if call is None and change.call == "started":
            call = _Call(change.meeting_id, change.organizer_oid, change.join_web_url, change.at)
            self._calls[change.meeting_id] = call
        if call is None:
            return None
        p = change.participant
        person = call.people.setdefault(p.id, _Person(p.id, p.name, p.role, p.user_id))
        if change.state == IN_MEETING:
            person.intervals.append([change.at, None])
        elif change.state == LEFT and change.previous == IN_MEETING and person.intervals:
            person.intervals[-1][1] = change.at
        if change.call == "ended":
            return self._calls.pop(change.meeting_id)
        return None

    def _notify(self, change: RosterChange, kind: str, participants: list[dict[str, Any]]) -> None:
        event = {
            "@odata.type": "#microsoft.graph.callEvent",
            "id": str(uuid.uuid4()),
            "callEventType": kind,
            "eventDateTime": iso(change.at),
            "participants": participants,
        }
        resource = (
            "communications/onlineMeetings(joinWebUrl='"
            + _quote(change.join_web_url)
            + "')/meetingCallEvents"
        )
        for sub in self.subscriptions.matching(MEETING_EVENTS, change.join_web_url):
            self.subscriptions.notify(sub, resource, event, "updated")

    # -- after the call ------------------------------------------------------------------------
    def _finish(self, call: _Call, ended: float) -> None:
        attended = [p for p in call.people.values() if p.intervals]
        report_id = str(uuid.uuid4())
        report = {
            "id": report_id,
            "totalParticipantCount": len(attended),
            "meetingStartDateTime": iso(call.started),
            "meetingEndDateTime": iso(ended),
            "attendanceRecords": [_attendance(p, ended) for p in attended],
        }
        record = self._record(call, attended, ended)
        with self._lock:
            self.reports.setdefault(call.meeting_id, []).append(report)
        threading.Thread(
            target=self._publish_record, args=(record,), name="sandbox:graph:record", daemon=True
        ).start()

    def _publish_record(self, record: dict[str, Any]) -> None:
        time.sleep(self.record_delay)  # Graph makes records minutes after the call
        with self._lock:
            self.records[record["id"]] = record
        resource = f"communications/callRecords/{record['id']}"
        data = {"@odata.type": "#microsoft.graph.callRecords.callRecord", "id": record["id"]}
        for sub in self.subscriptions.matching(CALL_RECORDS):
            self.subscriptions.notify(sub, resource, data, "created")

    def _record(self, call: _Call, attended: list[_Person], ended: float) -> dict[str, Any]:
        figures = QUALITY.get(self.call_quality, QUALITY["good"])
        organizer = {"user": {"id": call.organizer_oid, "tenantId": TENANT_ID}}
        sessions = []
        for person in attended:
            start = person.intervals[0][0]
            end = person.intervals[-1][1] or ended
            endpoint = {"@odata.type": "#microsoft.graph.callRecords.participantEndpoint",
                        "identity": _identity(person)}  # fmt: skip
            segment = {
                "id": str(uuid.uuid4()),
                "startDateTime": iso(start),
                "endDateTime": iso(end),
                "caller": endpoint,
                "callee": {"@odata.type": "#microsoft.graph.callRecords.serviceEndpoint"},
                "media": [_media("main-audio", figures), _media("main-video", figures)],
            }
            sessions.append({
                "id": str(uuid.uuid4()),
                "modalities": ["audio", "video"],
                "startDateTime": iso(start),
                "endDateTime": iso(end),
                "caller": endpoint,
                "callee": segment["callee"],
                "segments": [segment],
            })  # fmt: skip
        return {
            "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#communications/callRecords/$entity",
            "id": str(uuid.uuid4()),
            "version": 1,
            "type": "groupCall",
            "modalities": ["audio", "video"],
            "lastModifiedDateTime": iso(ended),
            "startDateTime": iso(call.started),
            "endDateTime": iso(ended),
            "joinWebUrl": call.join_web_url,
            "organizer": organizer,
            "sessions": sessions,
        }


def _participant(change: RosterChange) -> dict[str, Any]:
    p = change.participant
    person: dict[str, Any] = {
        "@odata.type": "#microsoft.graph.participant",
        "id": p.id,
        "info": {"identity": _identity(_Person(p.id, p.name, p.role, p.user_id))},
        "isInLobby": change.state == LOBBY,
        "isMuted": False,
    }
    if change.state == LEFT:
        person["removedState"] = {"reason": "left"}
    return person


def _identity(person: _Person) -> dict[str, Any]:
    if person.user_id:
        return {"user": {"id": person.user_id, "displayName": person.name, "tenantId": TENANT_ID}}
    return {"guest": {"id": person.id, "displayName": person.name}}


def _attendance(person: _Person, ended: float) -> dict[str, Any]:
    intervals = [
        {
            "joinDateTime": iso(start),
            "leaveDateTime": iso(end or ended),
            "durationInSeconds": round((end or ended) - (start or ended)),
        }
        for start, end in person.intervals
    ]
    role = {"organizer": "Organizer", "member": "Presenter"}.get(person.role, "Attendee")
    return {
        "id": person.user_id or person.id,
        "emailAddress": None,
        "role": role,
        "identity": {
            "id": person.user_id or person.id,
            "displayName": person.name,
            "tenantId": TENANT_ID if person.user_id else None,
        },
        "totalAttendanceInSeconds": sum(i["durationInSeconds"] for i in intervals),
        "attendanceIntervals": intervals,
    }


def _media(label: str, figures: dict[str, float]) -> dict[str, Any]:
    def stream(direction: str, factor: float) -> dict[str, Any]:
        return {
            "streamId": str(uuid.uuid4().int % 10**9),
            "streamDirection": direction,
            "averagePacketLossRate": round(figures["loss"] * factor, 4),
            "maxPacketLossRate": round(figures["loss"] * factor * 2.5, 4),
            "averageJitter": _duration(figures["jitter"] * factor),
            "maxJitter": _duration(figures["jitter"] * factor * 3),
            "averageRoundTripTime": _duration(figures["rtt"] * factor),
            "maxRoundTripTime": _duration(figures["rtt"] * factor * 2),
            "wasMediaBypassed": False,
        }

    return {
        "label": label,
        "streams": [stream("callerToCallee", 1.0), stream("calleeToCaller", 0.8)],
    }


def _duration(seconds: float) -> str:
    return f"PT{seconds:.3f}S"


def _quote(url: str) -> str:
    from urllib.parse import quote

    return quote(url, safe="")
