"""The pages of an EHR stand-in: the clinician schedule and the patient portal with their
"Begin virtual visit" buttons, the SMART style, and a scripted person at its sign-in page."""

from __future__ import annotations

import html as html_lib
import re
from urllib.parse import urljoin

import requests
from werkzeug.utils import redirect
from werkzeug.wrappers import Request, Response

from dev.sandbox import certs
from dev.sandbox.ehr import pages
from dev.sandbox.ehr.data import (
    CLINICIANS,
    PATIENTS,
    Clinician,
    Patient,
    department,
    today,
)
from dev.sandbox.standin import html_response, json_response

_SIGN_IN_FORM = re.compile(
    r"<form method='post' action='([^']+)'><input type='hidden' name='request_id' value='([^']+)'>"
)
_FIRST_USER = re.compile(r"name='user' value='([^']+)'")


class Portals:
    """Mixed into EhrStandIn."""

    def smart_style(self, request: Request) -> Response:
        return json_response(
            {
                "color_background": "#edeae3",
                "color_error": "#9e2d2d",
                "color_highlight": "#69b5ce",
                "color_modal_backdrop": "",
                "color_success": "#498e49",
                "color_text": "#303030",
                "dim_border_radius": "6px",
                "dim_font_size": "13px",
                "dim_spacing_size": "20px",
                "font_family_body": "system-ui, sans-serif",
                "font_family_heading": "system-ui, sans-serif",
            }
        )

    # -- pages ---------------------------------------------------------------------------------
    def schedule(self, request: Request) -> Response:
        if request.method == "POST":
            return self._launch_from_page(request, "provider")
        key = request.args.get("clinician", CLINICIANS[0].key)
        mode = request.args.get("open", "top")
        if mode not in pages.OPEN_MODES:
            return self._error_page("invalid_request", f"open must be one of {pages.OPEN_MODES}.")
        doc = self.chart.clinician(key)
        if doc is None:
            return self._error_page("invalid_request", f"Unknown clinician {key!r}.")
        day = today()
        rows = []
        for slot in self.chart.slots(clinician=doc.key):
            pat = self.chart.patient(slot.patient)
            assert pat is not None
            appt_id = self.chart.id_of(slot)
            booking = self.bookings.get(appt_id)  # what the interface engine last sent
            rows.append(
                pages.Row(
                    appt_id,
                    (booking.start if booking else slot.start(day)).strftime("%H:%M"),
                    pat.name,
                    slot.reason,
                    self.writes.get(appt_id).status or (booking.status if booking else "booked"),
                    self.connection_status.get(appt_id),
                )
            )
        people = [person_of_clinician(c, self.vendor) for c in CLINICIANS]
        body = pages.schedule_page(
            self.vendor_title,
            request.path,
            people,
            person_of_clinician(doc, self.vendor),
            rows,
            request.path,
            self.launch_urls["provider"],
            self.fhir_base,
            day.isoformat(),
            mode,
            messages=f"{request.path}/message",
            sent=request.args.get("sent"),
        )
        return html_response(body)

    def portal(self, request: Request) -> Response:
        if request.method == "POST":
            return self._launch_from_page(request, "patient")
        key = request.args.get("patient", PATIENTS[0].key)
        mode = request.args.get("open", "top")
        if mode not in pages.OPEN_MODES:
            return self._error_page("invalid_request", f"open must be one of {pages.OPEN_MODES}.")
        pat = self.chart.patient(key)
        if pat is None:
            return self._error_page("invalid_request", f"Unknown patient {key!r}.")
        day = today()
        rows = []
        for slot in self.chart.slots(patient=pat.key):
            doc = self.chart.clinician(slot.clinician)
            assert doc is not None
            rows.append(
                pages.Row(
                    self.chart.id_of(slot),
                    slot.start(day).strftime("%H:%M"),
                    doc.name,
                    slot.reason,
                    "booked",
                    None,
                )
            )
        body = pages.portal_page(
            self.vendor_title,
            self.portal_name,
            request.path,
            [person_of_patient(p) for p in PATIENTS],
            person_of_patient(pat),
            rows,
            request.path,
            self.launch_urls["patient"],
            day.isoformat(),
            mode,
        )
        return html_response(body)

    def _launch_from_page(self, request: Request, kind: str) -> Response:
        form = request.form
        try:
            launch = self.mint_launch(
                kind,
                clinician=form.get("clinician") if kind == "provider" else None,
                patient=form.get("patient") if kind == "patient" else None,
                appointment=form.get("appointment"),
            )
        except ValueError as exc:
            return self._error_page("invalid_request", str(exc))
        return redirect(launch.url, 303)

    # -- a browser for tests ----------------------------------------------------------------------
    def standalone_sign_in(self, authorize_url: str, user: str | None = None) -> requests.Response:
        """Play the person at a standalone sign-in (see `play_standalone_sign_in`)."""
        ca = certs.certs_dir(self.state.state_dir) / certs.CA_CERT_NAME
        return play_standalone_sign_in(authorize_url, str(ca), user)


def person_of_clinician(c: Clinician, vendor: str) -> pages.Person:
    return pages.Person(c.key, c.name, f"{c.usernames[vendor]}, {department(c.department).name}")


def person_of_patient(p: Patient) -> pages.Person:
    return pages.Person(p.key, p.name, f"born {p.birth_date}, MRN {p.mrn}")


def play_standalone_sign_in(
    authorize_url: str, ca_file: str, user: str | None = None
) -> requests.Response:
    """Open an EHR stand-in's ``authorize_url``, pick ``user`` (a demo clinician or patient key;
    default the first one listed) and follow the redirects back to the app. Returns the app's
    final answer. Used in-process by tests and over HTTPS by ``make run``'s seeding."""
    with requests.Session() as browser:
        browser.trust_env = False
        browser.verify = ca_file
        page = browser.get(authorize_url, timeout=30)
        found = _SIGN_IN_FORM.search(page.text) if page.status_code == 200 else None
        if found is None:
            return page  # an error page, or already back at the app
        choice = user or _FIRST_USER.search(page.text).group(1)  # type: ignore[union-attr]
        action = urljoin(page.url, html_lib.unescape(found.group(1)))
        return browser.post(action, data={"request_id": found.group(2), "user": choice}, timeout=30)
