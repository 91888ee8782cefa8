"""Scheduling messages as the EHR sends them, read into one shape (`ScheduleMessage`).

- HL7 v2 SIU (python-hl7; MLLP framing optional): S12 new, S13 rescheduled, S14 modified,
  S15 cancelled, S17 deleted. The appointment id is SCH-2 (filler appointment id; SCH-1, the
  placer's, when SCH-2 is empty): the interface engine puts the FHIR Appointment id there, so the
  launch and the texts meet at one visit. Start from AIS-4 (else SCH-11.4), duration AIS-6/7
  (else SCH-9/10; minutes), the clinician from AIP-3.1, the phone from PID-13 / PID-14 (a
  cell phone, XTN-3 `CP`, first), the message's own time from MSH-7.
- FHIR R4 Appointment JSON: `id`, `status`, `start`, `end` (or `minutesDuration`), the
  patient's phone in a contained Patient's `telecom` (system `phone` or `sms`, `use` mobile
  first) or in the extension `PHONE_EXTENSION` (valueString / valueContactPoint), a
  Practitioner participant, and `meta.lastUpdated` as the message's time.
Times without an offset are the clinic's (the endpoint's time zone).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from lib.web.errors import AppError
from lib.web.http import whole_number

PHONE_EXTENSION = "https://evc-connector.org/fhir/StructureDefinition/sms-phone"
HL7_EVENTS = {
    "S12": "booked",
    "S13": "rescheduled",
    "S14": "modified",
    "S15": "cancelled",
    "S17": "cancelled",
}
FHIR_CANCELLED = {"cancelled", "noshow", "entered-in-error"}
MLLP_START, MLLP_END = b"\x0b", b"\x1c\x0d"


@dataclass(frozen=True)
class ScheduleMessage:
    kind: str  # booked | rescheduled | modified | cancelled
    appointment_id: str
    start: datetime | None
    end: datetime | None
    phones: tuple[str, ...]  # as sent, best first; normalised by the intake
    clinician: str | None
    sent_at: datetime  # the message's own time: an older one never overwrites a newer one
    control_id: str = ""  # HL7 MSH-10, echoed in the ACK

    @property
    def cancelled(self) -> bool:
        return self.kind == "cancelled"


def is_hl7(body: bytes) -> bool:
    return body.lstrip(MLLP_START).lstrip()[:3] == b"MSH"


# --- HL7 v2 ---------------------------------------------------------------------------------------
def read_hl7(body: bytes, zone: ZoneInfo) -> tuple[Any, ScheduleMessage]:
    """The parsed message (for the ACK) and what it says; AppError SCHED-BAD-MESSAGE if unusable."""
    import hl7

    text = body.strip().removeprefix(MLLP_START).removesuffix(MLLP_END).strip(b"\x1c\r\n")
    try:
        message = hl7.parse(text.decode("utf-8").replace("\r\n", "\r").replace("\n", "\r"))
        event = str(message.segment("MSH")[9][0][1]) if _has(message, "MSH") else ""
    except (UnicodeDecodeError, hl7.ParseException, IndexError, KeyError) as exc:
        raise AppError(
            "SCHED-BAD-MESSAGE", f"Not an HL7 v2 message ({type(exc).__name__})."
        ) from None
    if str(message.segment("MSH")[9][0][0]) != "SIU" or event not in HL7_EVENTS:
        raise AppError("SCHED-BAD-MESSAGE", "Only SIU S12, S13, S14, S15 and S17 are taken.")
    return message, _siu(message, event, zone)


def _siu(message: Any, event: str, zone: ZoneInfo) -> ScheduleMessage:
    msh, sch = message.segment("MSH"), _segment(message, "SCH")
    appointment = _field(sch, 2) or _field(sch, 1)
    if not appointment:
        raise AppError("SCHED-BAD-MESSAGE", "SCH-2 (or SCH-1) must carry the appointment id.")
    ais = _segment(message, "AIS", required=False)
    start_text = (_field(ais, 4) if ais else "") or _component(sch, 11, 4)
    start = _hl7_time(start_text, zone) if start_text else None
    duration = (_field(ais, 6) if ais else "") or _field(sch, 9)
    units = ((_field(ais, 7) if ais else "") or _field(sch, 10) or "min").lower()
    end, length = None, whole_number(duration, 6)  # a visit of up to 999,999 units
    if start and length is not None:
        end = start + (
            timedelta(hours=length) if units.startswith("h") else timedelta(minutes=length)
        )
    pid = _segment(message, "PID", required=False)
    phones = _xtn_phones(pid) if pid else ()
    aip = _segment(message, "AIP", required=False)
    sent = _hl7_time(_field(msh, 7), zone) if _field(msh, 7) else datetime.now(UTC)
    if start is None and HL7_EVENTS[event] != "cancelled":
        raise AppError("SCHED-BAD-MESSAGE", "AIS-4 (or SCH-11.4) must carry the start time.")
    return ScheduleMessage(
        HL7_EVENTS[event],
        appointment,
        start,
        end,
        phones,
        _component(aip, 3, 1) if aip else None,
        sent,
        _field(msh, 10),
    )


def _has(message: Any, name: str) -> bool:
    try:
        message.segment(name)
    except KeyError:
        return False
    return True


def _segment(message: Any, name: str, required: bool = True) -> Any:
    if _has(message, name):
        return message.segment(name)
    if required:
        raise AppError("SCHED-BAD-MESSAGE", f"The {name} segment is missing.")
    return None


def _field(segment: Any, index: int) -> str:
    try:
        return str(segment[index]).split("^")[0].strip() if len(segment) > index else ""
    except (IndexError, TypeError):
        return ""


def _component(segment: Any, index: int, component: int) -> str:
    if len(segment) <= index:
        return ""
    parts = str(segment[index]).split("~")[0].split("^")
    return parts[component - 1].strip() if len(parts) >= component else ""


def _xtn_phones(pid: Any) -> tuple[str, ...]:
    """PID-13 (home) then PID-14 (business), cell phones first; email repetitions skipped."""
    found: list[tuple[int, str]] = []
    for index in (13, 14):
        if len(pid) <= index:
            continue
        for repetition in str(pid[index]).split("~"):
            parts = repetition.split("^") + [""] * 12
            equipment = parts[2].upper()
            if equipment in ("INTERNET", "X.400", "FX", "BP"):
                continue
            number = (
                parts[11] or "".join(p for p in (parts[4], parts[5], parts[6]) if p) or parts[0]
            )
            if number.strip():
                found.append((0 if equipment == "CP" else 1, number.strip()))
    return tuple(n for _, n in sorted(found, key=lambda f: f[0]))


def _hl7_time(text: str, zone: ZoneInfo) -> datetime:
    """DTM: YYYY[MM[DD[HH[MM[SS[.S]]]]]][+/-ZZZZ]; without an offset, the clinic's time."""
    raw = text.strip()
    offset = None
    for sign in ("+", "-"):
        if sign in raw[8:]:
            raw, _, tail = raw.rpartition(sign)
            offset = timedelta(hours=int(tail[:2]), minutes=int(tail[2:4] or 0)) * (
                1 if sign == "+" else -1
            )
    raw = raw.split(".")[0]
    try:
        parsed = datetime.strptime(raw.ljust(14, "0")[:14], "%Y%m%d%H%M%S")
    except ValueError:
        raise AppError("SCHED-BAD-MESSAGE", f"{text!r} is not an HL7 date and time.") from None
    if offset is None:
        return parsed.replace(tzinfo=zone).astimezone(UTC)
    from datetime import timezone

    return parsed.replace(tzinfo=timezone(offset)).astimezone(UTC)


# --- FHIR R4 --------------------------------------------------------------------------------------
def read_fhir(body: bytes, zone: ZoneInfo) -> ScheduleMessage:
    try:
        resource = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise AppError("SCHED-BAD-MESSAGE", "Not JSON.") from None
    if not isinstance(resource, dict) or resource.get("resourceType") != "Appointment":
        raise AppError("SCHED-BAD-MESSAGE", "Expected a FHIR R4 Appointment.")
    appointment = str(resource.get("id") or "")
    if not appointment:
        raise AppError("SCHED-BAD-MESSAGE", "The Appointment has no id.")
    status = str(resource.get("status") or "")
    start = _fhir_time(resource.get("start"), zone)
    end = _fhir_time(resource.get("end"), zone)
    minutes = resource.get("minutesDuration")
    if start and end is None and isinstance(minutes, int):
        end = start + timedelta(minutes=minutes)
    cancelled = status in FHIR_CANCELLED
    if start is None and not cancelled:
        raise AppError("SCHED-BAD-MESSAGE", "The Appointment has no start.")
    meta = resource.get("meta") if isinstance(resource.get("meta"), dict) else {}
    sent = _fhir_time(meta.get("lastUpdated"), zone) or datetime.now(UTC)
    return ScheduleMessage(
        "cancelled" if cancelled else "booked",
        appointment,
        start,
        end,
        _fhir_phones(resource),
        _practitioner(resource),
        sent,
    )


def _fhir_time(value: Any, zone: ZoneInfo) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise AppError("SCHED-BAD-MESSAGE", f"{value!r} is not a FHIR instant.") from None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=zone)).astimezone(UTC)


def _fhir_phones(resource: dict[str, Any]) -> tuple[str, ...]:
    points: list[dict[str, Any]] = []
    for ext in resource.get("extension") or []:
        if isinstance(ext, dict) and ext.get("url") == PHONE_EXTENSION:
            if isinstance(ext.get("valueString"), str):
                points.append({"system": "sms", "value": ext["valueString"], "use": "mobile"})
            if isinstance(ext.get("valueContactPoint"), dict):
                points.append(ext["valueContactPoint"])
    for contained in resource.get("contained") or []:
        if isinstance(contained, dict) and contained.get("resourceType") == "Patient":
            points += contained.get("telecom") or []
    return telecom_phones(points)


def telecom_phones(points: list[Any]) -> tuple[str, ...]:
    """The phone numbers of FHIR ContactPoints that can take a text, best first: mobile or
    `sms` before the rest, then by `rank`; `old` ones and those whose period ended left out."""
    now = datetime.now(UTC).isoformat()
    usable = [
        p
        for p in points
        if isinstance(p, dict)
        and p.get("system") in ("phone", "sms")
        and p.get("value")
        and p.get("use") != "old"
        and not _ended(p.get("period"), now)
    ]
    usable.sort(
        key=lambda p: (
            0 if p.get("use") == "mobile" or p.get("system") == "sms" else 1,
            p.get("rank") if isinstance(p.get("rank"), int) else 1_000,
        )
    )
    return tuple(str(p["value"]) for p in usable)


def _ended(period: Any, now: str) -> bool:
    end = period.get("end") if isinstance(period, dict) else None
    return isinstance(end, str) and bool(end) and end[:10] < now[:10]


def _practitioner(resource: dict[str, Any]) -> str | None:
    for participant in resource.get("participant") or []:
        reference = ((participant or {}).get("actor") or {}).get("reference") or ""
        if isinstance(reference, str) and reference.startswith("Practitioner/"):
            return reference.split("/", 1)[1]
    return None
