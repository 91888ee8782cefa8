"""Epic-like EHR at ``/epic``: Interconnect-style FHIR paths, ``/oauth2`` issuer, MyChart.

- FHIR R4 base ``{sandbox}/epic/api/FHIR/R4`` (also DSTU2 ``{sandbox}/epic/api/FHIR/DSTU2``,
  metadata fhirVersion 1.0.2: the "DSTU2 where R4 is needed" case)
- authorize ``{sandbox}/epic/oauth2/authorize``, token ``{sandbox}/epic/oauth2/token``
- issuer ``{sandbox}/epic/oauth2`` (not the FHIR base, as at Epic), JWKS at Epic's public-key path
- token response context: ``patient``, ``encounter``, ``appointment``, ``location``,
  ``loginDepartment``, ``need_patient_banner`` as the *string* "true" / "false" (Epic does),
  ``smart_style_url``, ``__epic.dstu2.patient`` and a customer-configured user-id field
  (quirk ``user_field``, default ``epicUserID``)
- capabilities with ``permission-v1`` only; RFC 9207 ``iss`` on the callback off by default
"""

from __future__ import annotations

from typing import Any, ClassVar

from dev.sandbox.ehr.base import EhrStandIn, Grant
from dev.sandbox.ehr.data import Clinician, Patient


class EpicStandIn(EhrStandIn):
    name = "epic"
    title = "Epic-like EHR (SMART on FHIR R4, Hyperspace schedule, MyChart)"
    vendor = "epic"
    vendor_title = "Epic-like EHR"
    software = "Epic-like sandbox (EVC connector)"
    endpoint_id = "epic-sandbox-test"
    fhir_paths: ClassVar[dict[str, str]] = {"R4": "/api/FHIR/R4", "DSTU2": "/api/FHIR/DSTU2"}
    authorize_paths: ClassVar[dict[str, str | None]] = {"/oauth2/authorize": None}
    advertised_authorize_path = "/oauth2/authorize"
    token_path = "/oauth2/token"
    issuer_path = "/oauth2"
    jwks_path = "/api/epic/2019/Security/Open/PublicKeys/530005/OIDC"
    portal_path = "/mychart"
    portal_name = "MyChart"
    permission_v2 = False
    error_uri = False
    QUIRK_DEFAULTS: ClassVar[dict[str, Any]] = {
        "rfc9207_iss": False,
        "user_field": "epicUserID",
        "expires_in": 3600,
    }

    def context_fields(self, grant: Grant) -> dict[str, Any]:
        ids = self.launch_ids(grant)
        launch = grant.launch
        patient = launch.patient if launch else grant.user
        assert isinstance(patient, Patient)
        context: dict[str, Any] = {
            "patient": ids["patient"],
            "__epic.dstu2.patient": patient.epic_dstu2_id,
            "need_patient_banner": "true" if self.quirks["need_patient_banner"] else "false",
            "smart_style_url": self.url("/smart-style.json"),
        }
        if launch is None:
            return context
        context["encounter"] = ids["encounter"]
        context["appointment"] = ids["appointment"]
        if launch.kind == "provider":
            context["location"] = ids["location"]
            context["loginDepartment"] = ids["department"]
            field = self.quirks["user_field"]
            if field and isinstance(grant.user, Clinician):
                context[field] = grant.user.usernames["epic"]
        return context
