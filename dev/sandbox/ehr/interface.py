"""The EHR's interface engine on the schedule page: "Send scheduling message", "Reschedule" and
"Cancel" push a signed SIU S12 / S13 / S15 for that appointment to the connector's intake
(``{scheduling base}/{endpoint id}``), as Epic Cadence or Cerner Scheduling interfaces do.

Signed with the key pair of scheduling.py (the certificate `make run` uploads). The demo's times:
an appointment whose slot is less than DEMO_LEAD away (or past) is booked DEMO_LEAD from now, so
its confirmation and reminders can be watched; a reschedule moves it RESCHEDULE_BY later. The
page then shows the booked time and status; the FHIR Appointment keeps the chart's own time.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from werkzeug.utils import redirect

from dev.sandbox import certs
from dev.sandbox.ehr import scheduling

if TYPE_CHECKING:
    from werkzeug.wrappers import Request, Response

    from dev.sandbox.ehr.data import Slot

DEMO_LEAD = dt.timedelta(minutes=20)
RESCHEDULE_BY = dt.timedelta(minutes=15)
EVENTS = {"book": "S12", "reschedule": "S13", "cancel": "S15"}


@dataclass
class Booking:
    """What the interface engine last told the connector about one appointment."""

    start: dt.datetime
    status: str = "booked"  # booked | rescheduled | cancelled
    pushes: list[str] = field(default_factory=list)  # "S12: 200 AA applied", newest last


class InterfaceEngine:
    """Mixed into EhrStandIn (it provides chart, vendor, endpoint_id, state and the lock)."""

    bookings: dict[str, Booking]
    scheduling_base: str  # the connector's /api/scheduling (configure_connector sets it)

    def scheduling_url(self) -> str:
        return f"{self.scheduling_base}/{self.endpoint_id}"

    def push(self, appointment: str, action: str, now: dt.datetime | None = None) -> str:
        """Send the SIU for ``action`` (book | reschedule | cancel); the line it answered."""
        slot = self.chart.slot(appointment)
        if slot is None or action not in EVENTS:
            return f"unknown appointment {appointment!r} or action {action!r}"
        now = now or dt.datetime.now(dt.UTC)
        booking = self._next(slot, action, now)
        event = EVENTS[action]
        body = scheduling.siu(
            event,
            self.chart.id_of(slot),
            booking.start,
            slot.minutes,
            phone=self._patient(slot).phone,
            clinician=self.chart.id_of(self.chart.clinician(slot.clinician)),
            patient=self._patient(slot),
            sent=now,
        )
        line = f"{event}: {self._send(body)}"
        booking.pushes.append(line)
        self.bookings[self.chart.id_of(slot)] = booking
        return line

    def schedule_message(self, request: Request) -> Response:
        """POST from the schedule page's buttons; back to the page, which shows the answer."""
        appointment = request.form.get("appointment", "")
        line = self.push(appointment, request.form.get("action", ""))
        query = urlencode({"clinician": request.form.get("clinician", ""), "sent": line})
        return redirect(f"{request.path.rsplit('/', 1)[0]}?{query}", 303)

    # ---------------------------------------------------------------------------------------
    def _next(self, slot: Slot, action: str, now: dt.datetime) -> Booking:
        current = self.bookings.get(self.chart.id_of(slot))
        if current is None:
            start = slot.start(now.date())
            if start < now + DEMO_LEAD:
                start = (now + DEMO_LEAD).replace(second=0, microsecond=0)
            current = Booking(start)
        if action == "reschedule":
            return Booking(current.start + RESCHEDULE_BY, "rescheduled", current.pushes)
        if action == "cancel":
            return Booking(current.start, "cancelled", current.pushes)
        return Booking(current.start, "booked", current.pushes)

    def _patient(self, slot: Slot) -> Any:
        return self.chart.patient(slot.patient)

    def _send(self, body: bytes) -> str:
        import requests

        state_dir = self.state.state_dir
        key, _ = scheduling.key_pair(state_dir)
        try:
            answer = requests.post(
                self.scheduling_url(),
                data=body,
                timeout=30,
                verify=str(certs.certs_dir(state_dir) / certs.CA_CERT_NAME),
                headers={
                    "Content-Type": "application/hl7-v2",
                    "X-EVC-Signature": scheduling.sign(body, key),
                },
            )
        except requests.RequestException as exc:
            return f"not delivered ({type(exc).__name__})"
        return f"{answer.status_code} {_msa(answer.text)}"


def _msa(ack: str) -> str:
    """`AA applied` from the ACK's MSA segment (MSA|AA|<control>|<text>)."""
    for segment in ack.replace("\n", "\r").split("\r"):
        parts = segment.split("|")
        if parts[0] == "MSA":
            return " ".join(p for p in (parts[1:2] + parts[3:4]) if p)
    return ack[:120]
