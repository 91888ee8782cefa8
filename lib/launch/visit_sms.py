"""'Send link by SMS' on the clinician's visit page (F15, issue 9 item 6).

Three calls, each with the page's token (X-Visit-Token):
- `GET /api/visit/sms`: whether the button works (texts on for the endpoint, a number linked,
  Communication Services configured) and, if not, why.
- `POST /api/visit/sms/preview`: the patient's number, read just in time from the EHR
  (Patient.telecom), shown masked (`•••• ••12`), with `confirm`, a keyed hash of the number.
- `POST /api/visit/sms` `{"confirm": ...}`: reads the number again, sends only if it is still
  the one the clinician confirmed, as an `on-demand` text through the ledger's states
  (lib/sms/sending.py `send_now`). A second press within a minute answers `already_sent`.

Which EHR token reads the Patient: the launch's own access token, which the page holds sealed in
its token (visit_page.py) while it is valid: it is the clinician's own access, scoped to the
patient in context, so the EHR's audit shows who looked the number up. Once it has expired (or
the page came through the first Microsoft sign-in, which ends the launch's request), the page
holds none: the clinician opens the visit again from the EHR (SMS-PHONE-UNAVAILABLE says so).
The number is never stored in clear: the ledger row holds no number, and it is sealed only when
a retry needs it (lib/sms/sending.py ON_DEMAND_PHONE).
"""

from __future__ import annotations

from typing import Any

from lib.endpoints.client import SmartDeps
from lib.endpoints.models import Endpoint
from lib.launch.visit_page import VisitPages
from lib.privacy import PrivacyKeys
from lib.sms.config import SmsConfig
from lib.sms.intake import normalise_phone
from lib.sms.schedule import telecom_phones
from lib.sms.sender import SmsSender
from lib.sms.sending import Texting
from lib.visits.store import Visit, VisitStore
from lib.web.errors import AppError
from lib.web.http import Response

CONFIRM_PURPOSE = "sms-on-demand-confirm"


def masked(phone: str) -> str:
    """`•••• ••12`: enough for a clinician to tell two numbers apart, nothing more."""
    return f"•••• ••{phone[-2:]}"


class VisitTexts:
    def __init__(
        self,
        pages: VisitPages,
        visits: VisitStore,
        sms: SmsConfig,
        sender: SmsSender,
        texting: Texting,
        smart: SmartDeps,
        privacy: PrivacyKeys,
    ) -> None:
        self._pages, self._visits, self._sms, self._sender = pages, visits, sms, sender
        self._texting, self._smart, self._privacy = texting, smart, privacy

    def availability(self, token: str | None) -> Response:
        _, endpoint = self._pages.claims(token)
        why = self._why_not(endpoint)
        return Response.json({"available": why is None, "reason": why})

    def preview(self, token: str | None) -> Response:
        claims, endpoint, _ = self._ready(token)
        phone = self._phone(claims, endpoint)
        return Response.json({"masked": masked(phone), "confirm": self._confirm(claims, phone)})

    def send(self, token: str | None, body: Any) -> Response:
        claims, endpoint, visit = self._ready(token)
        confirm = body.get("confirm") if isinstance(body, dict) else None
        if not isinstance(confirm, str) or not confirm:
            raise AppError("REQ-VALIDATION", "Send the `confirm` value the preview gave.")
        phone = self._phone(claims, endpoint)
        if confirm != self._confirm(claims, phone):
            raise AppError("SMS-PHONE-CHANGED")
        row = self._texting.send_now(visit, phone)
        if row is None:
            return Response.json({"state": "already_sent", "masked": masked(phone)})
        return Response.json(
            {
                "state": "pending" if row.state in ("due", "claimed") else row.state,
                "masked": masked(phone),
                "reason": row.reason if row.state in ("skipped", "failed") else None,
            }
        )

    # ---------------------------------------------------------------------------------------
    def _why_not(self, endpoint: Endpoint) -> str | None:
        if not self._sender.configured:
            return "This deployment has no Communication Services resource."
        if not self._sms.settings(endpoint.id).enabled:
            return "Texts are off for this organization."
        if self._sms.number_for(endpoint.id) is None:
            return "No texting number is linked to this organization."
        return None

    def _ready(self, token: str | None) -> tuple[dict[str, Any], Endpoint, Visit]:
        claims, endpoint = self._pages.claims(token)
        why = self._why_not(endpoint)
        if why is not None:
            raise AppError("SMS-OFF-FOR-ENDPOINT", why)
        visit = self._visits.get(claims["v"])
        if visit is None:
            raise AppError("VISIT-LINK-INVALID")
        return claims, endpoint, visit

    def _phone(self, claims: dict[str, Any], endpoint: Endpoint) -> str:
        """The patient's textable number, from the EHR now, in E.164."""
        access = self._pages.ehr_access(claims)
        if access is None:
            raise AppError("SMS-PHONE-UNAVAILABLE", "The EHR sign-in this page holds has expired.")
        patient = self._smart.client(endpoint).read(access.token, "Patient", access.patient_id)
        if not patient:
            raise AppError("SMS-PHONE-UNAVAILABLE", "The EHR did not return the patient.")
        region = self._sms.settings(endpoint.id).default_region
        phone = normalise_phone(telecom_phones(patient.get("telecom") or []), region)
        if phone is None:
            raise AppError("SMS-NO-MOBILE")
        return phone

    def _confirm(self, claims: dict[str, Any], phone: str) -> str:
        return self._privacy.keyed_hash(claims["v"], phone, purpose=CONFIRM_PURPOSE)
