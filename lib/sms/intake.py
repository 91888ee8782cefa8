"""`POST /api/scheduling/{endpoint}` (F13): the EHR's scheduling messages, signed, made durable
before the answer.

Order of work: size (64 KiB), the endpoint, its environment's certificate, the signature
(signature.py; nothing is read or stored before it passes), the replay guard, then the message
(schedule.py). What is kept: the visit under the key the launch computes for the Appointment id
(lib/visits/keys.py), its times, the schedule version (raised when the time moves or the
appointment is cancelled, which closes older texts' links), the message's own time (an older
message never overwrites a newer one) and, sealed with a purge-after time (the appointment's end
plus SMS_PURGE_GRACE), the patient's phone (E.164, with `phonenumbers` and the endpoint's region)
and the Appointment id. HL7 gets an ACK (AA / AE / AR with the reason in MSA-3), FHIR an
OperationOutcome.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from lib.endpoints.models import Endpoint
from lib.endpoints.service import EndpointService
from lib.privacy import PrivacyKeys
from lib.sms import schedule
from lib.sms.config import SmsConfig
from lib.sms.signature import HEADER, ReplayGuard, verify
from lib.storage import ConcurrencyConflict
from lib.visits.keys import clinician_hash, visit_key
from lib.visits.mappings import ClinicianMappings
from lib.visits.sealed import SealedValues, purge_after_visit
from lib.visits.store import Visit, VisitStore
from lib.web.errors import AppError
from lib.web.http import Request, Response

MAX_BODY = 64 * 1024
PHONE, APPOINTMENT_ID = "phone", "appointment-id"  # sealed purposes
DEFAULT_GRACE = timedelta(days=1)


@dataclass(frozen=True)
class Outcome:
    visit_key: str
    applied: bool  # False: older than what is stored, acknowledged and ignored
    version: int
    change: str | None = None  # booked | moved | cancelled: what the texts say (None: nothing)


class SchedulingIntake:
    def __init__(
        self,
        endpoints: EndpointService,
        config: SmsConfig,
        visits: VisitStore,
        sealed: SealedValues,
        privacy: PrivacyKeys,
        mappings: ClinicianMappings,
        replay: ReplayGuard,
        plan: Callable[[Visit, str], int],
        grace: timedelta = DEFAULT_GRACE,
    ) -> None:
        self._endpoints, self._config, self._visits = endpoints, config, visits
        self._sealed, self._privacy, self._mappings = sealed, privacy, mappings
        self._replay, self._plan, self._grace = replay, plan, grace

    def receive(self, endpoint_id: str, request: Request) -> Response:
        body = request.body or b""
        hl7 = schedule.is_hl7(body)
        parsed: Any = None
        try:
            if len(body) > MAX_BODY:
                raise AppError("REQ-TOO-LARGE", "Scheduling messages are at most 64 KiB.")
            endpoint = self._endpoints.get(endpoint_id)
            certificate = self._config.certificate(endpoint.environment)
            if certificate is None:
                raise AppError("SCHED-NO-CERTIFICATE")
            jti = verify(body, request.headers.get(HEADER), certificate.pem, certificate.key_type)
            self._replay.take(endpoint.id, jti)
            settings = self._config.settings(endpoint.id)
            zone = ZoneInfo(settings.time_zone)
            if hl7:
                parsed, message = schedule.read_hl7(body, zone)
            else:
                message = schedule.read_fhir(body, zone)
            outcome = self.apply(endpoint, settings.default_region, message)
        except AppError as err:
            return _hl7_error(err, parsed) if hl7 else _fhir_error(err)
        text = "applied" if outcome.applied else "older than the stored one: ignored"
        return _ack(parsed, "AA", text) if hl7 else _outcome("information", text, 200)

    def apply(self, endpoint: Endpoint, region: str, message: schedule.ScheduleMessage) -> Outcome:
        key = visit_key(self._privacy, endpoint, "Appointment", message.appointment_id)
        for _ in range(5):  # ETag races with a launch or another message: read again
            try:
                outcome = self._apply_once(endpoint, key, message)
                break
            except ConcurrencyConflict:
                continue
        else:
            raise AppError("SRV-STORAGE-UNAVAILABLE", "The visit kept changing; send again.")
        if outcome.applied and not message.cancelled:
            self._seal(key, region, message)
        if outcome.change is not None:  # after the phone is sealed: texts need it
            visit = self._visits.get(key)
            if visit is not None:
                self._plan(visit, outcome.change)
        return outcome

    def _apply_once(
        self, endpoint: Endpoint, key: str, message: schedule.ScheduleMessage
    ) -> Outcome:
        current = self._visits.get(key)
        now = datetime.now(UTC)
        if current is None:
            claimed = self._visits.claim(
                Visit(
                    partition_key=key,
                    row_key="visit",
                    endpoint_id=endpoint.id,
                    organizer_oid=self._organizer(endpoint, message),
                    start=message.start,
                    end=message.end,
                    department=endpoint.organization,
                    created_at=now,
                    created_by_role="schedule",
                    schedule_version=1,
                    schedule_sent_at=message.sent_at,
                    cancelled_at=now if message.cancelled else None,
                )
            )
            if claimed.created:
                return Outcome(key, True, 1, "cancelled" if message.cancelled else "booked")
            current = claimed.entity
        stored_at = current.schedule_sent_at
        # Strictly older only: MSH-7 often has seconds, and two messages in one second are
        # taken in the order they arrive.
        if stored_at is not None and message.sent_at < stored_at:
            return Outcome(key, False, current.schedule_version or 1)
        moved = message.start is not None and (current.start, current.end) != (
            message.start,
            message.end,
        )
        cancelling = message.cancelled and current.cancelled_at is None
        version = (current.schedule_version or 0) + (1 if moved or cancelling else 0) or 1
        changes: dict[str, Any] = {"schedule_version": version, "schedule_sent_at": message.sent_at}
        if message.start is not None:
            changes |= {"start": message.start, "end": message.end}
        changes["cancelled_at"] = (current.cancelled_at or now) if message.cancelled else None
        self._visits.update(current, **changes)
        change = "cancelled" if cancelling else ("moved" if moved else None)
        if current.schedule_version is None and not message.cancelled:
            change = "booked"  # a visit a launch made, now scheduled: its first texts
        return Outcome(key, True, version, change)

    def _organizer(self, endpoint: Endpoint, message: schedule.ScheduleMessage) -> str:
        """The scheduled clinician's Microsoft account when they have launched before, else the
        endpoint's default organizer, else none yet (the clinician's first launch sets it)."""
        if message.clinician:
            hashed = clinician_hash(self._privacy, endpoint, message.clinician)
            found = self._mappings.organizer(endpoint.id, hashed)
            if found:
                return found
        return endpoint.launch.default_organizer or ""

    def _seal(self, key: str, region: str, message: schedule.ScheduleMessage) -> None:
        end = message.end or message.start or datetime.now(UTC)
        purge_after = max(end, datetime.now(UTC)) + self._grace
        phone = normalise_phone(message.phones, region)
        if phone:
            self._sealed.put(key, PHONE, phone, purge_after)
        # The write-back still needs the appointment's id after the texts are done with: it is
        # kept as long as the launch keeps it (WRITEBACK_WINDOW after the end), never shorter.
        kept = max(purge_after, purge_after_visit(end))
        self._sealed.put(key, APPOINTMENT_ID, message.appointment_id, kept)


def normalise_phone(candidates: tuple[str, ...], region: str) -> str | None:
    """The first number that is a valid phone number, in E.164 (+15555550101)."""
    import phonenumbers

    for raw in candidates:
        try:
            number = phonenumbers.parse(raw, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_possible_number(number) and (
            phonenumbers.is_valid_number(number) or _fictional(number)
        ):
            return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return None


def _fictional(number: Any) -> bool:
    """North American 555-01xx numbers are reserved for fiction (the sandbox's patients):
    `phonenumbers` calls them invalid, and texts to them reach only the sandbox."""
    national = str(number.national_number)
    return number.country_code == 1 and len(national) == 10 and national[3:8] == "55501"


# --- answers ----------------------------------------------------------------------------------
def _ack(parsed: Any, code: str, text: str, status: int = 200) -> Response:
    if parsed is None:  # not even an MSH to answer: a minimal ACK
        stamp = f"{datetime.now(UTC):%Y%m%d%H%M%S}"
        body = f"MSH|^~\\&|EVC|EVC|||{stamp}||ACK|0|P|2.5.1\rMSA|{code}||{_escape(text)}\r"
    else:
        ack = parsed.create_ack(code, application="EVC", facility="EVC")
        body = _with_text(ack, text)
    return Response(status, body.encode(), "application/hl7-v2; charset=utf-8")


def _with_text(ack: Any, text: str) -> str:
    segments = str(ack).split("\r")
    segments = [s + f"|{_escape(text)}" if s.startswith("MSA|") else s for s in segments if s]
    return "\r".join(segments) + "\r"


def _escape(text: str) -> str:
    """HL7 escapes for the delimiters, so a reason cannot break the ACK's structure."""
    return (
        text.replace("\\", "\\E\\")
        .replace("|", "\\F\\")
        .replace("^", "\\S\\")
        .replace("&", "\\T\\")
        .replace("~", "\\R\\")
        .replace("\r", " ")
    )[:200]


def _hl7_error(err: AppError, parsed: Any) -> Response:
    # AR: refused as such (signature, size, shape: do not resend as is); AE: an error the sender
    # may retry (storage unavailable).
    code = "AE" if err.status >= 500 else "AR"
    response = _ack(
        parsed, code, f"{err.code}: {err.detail or err.definition.sentence}", err.status
    )
    response.headers.update(err.headers)
    return response


def _outcome(severity: str, text: str, status: int, code: str = "informational") -> Response:
    body = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": severity, "code": code, "diagnostics": text}],
    }
    response = Response.json(body, status)
    response.content_type = "application/fhir+json"
    return response


def _fhir_error(err: AppError) -> Response:
    issue = {401: "security", 404: "not-found", 413: "too-long"}.get(err.status, "invalid")
    if err.status >= 500:
        issue = "transient"
    response = _outcome(
        "error", f"{err.code}: {err.detail or err.definition.sentence}", err.status, issue
    )
    response.headers.update(err.headers)
    return response
