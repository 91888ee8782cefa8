"""Oracle Health (Cerner Millennium)-like EHR at ``/cerner``, tenant-scoped like the real one.

- FHIR R4 base ``{sandbox}/cerner/r4/{tenant}``
- authorize ``{sandbox}/cerner/tenants/{tenant}/protocols/oauth2/profiles/smart-v1/personas/
  {provider|patient}/authorize`` (discovery advertises the provider persona; both accept either
  kind of launch; a standalone sign-in lists clinicians or patients by persona)
- token ``{sandbox}/cerner/tenants/{tenant}/protocols/oauth2/profiles/smart-v1/token``
- JWKS ``{sandbox}/cerner/jwk``; issuer ``{sandbox}/cerner/tenants/{tenant}/oidc/idsps/{tenant}/``
  (trailing slash, like Cerner's; openid-configuration at ``{issuer without /}/.well-known/...``)
- token response context: ``patient``, ``encounter``, ``user`` (Practitioner id), ``username``,
  ``tenant``, ``need_patient_banner`` (a JSON boolean), ``smart_style_url`` and ``fhirContext``
  ``[{"reference": "Appointment/..."}]`` (SMART 2 style: Cerner has no appointment field);
  ``expires_in`` 570
- ``permission-v1`` and ``permission-v2`` (v1 and v2 scopes both accepted); wildcard scopes are
  refused; OAuth errors carry ``error_uri``; RFC 9207 ``iss`` on the callback on by default
"""

from __future__ import annotations

import uuid
from typing import Any, ClassVar

from dev.sandbox.ehr.base import EhrStandIn, Grant
from dev.sandbox.ehr.data import Clinician

TENANT = "ec2458f2-1e24-41c8-b71b-0e701af7583d"
_SMART_V1 = f"/tenants/{TENANT}/protocols/oauth2/profiles/smart-v1"


class CernerStandIn(EhrStandIn):
    name = "cerner"
    title = "Oracle Health (Cerner)-like EHR (SMART on FHIR R4, PowerChart schedule, portal)"
    vendor = "cerner"
    vendor_title = "Oracle Health (Cerner)-like EHR"
    software = "Millennium-like sandbox (EVC connector)"
    endpoint_id = "cerner-sandbox-test"
    tenant = TENANT
    fhir_paths: ClassVar[dict[str, str]] = {"R4": f"/r4/{TENANT}"}
    authorize_paths: ClassVar[dict[str, str | None]] = {
        f"{_SMART_V1}/personas/provider/authorize": "provider",
        f"{_SMART_V1}/personas/patient/authorize": "patient",
    }
    advertised_authorize_path = f"{_SMART_V1}/personas/provider/authorize"
    token_path = f"{_SMART_V1}/token"
    issuer_path = f"/tenants/{TENANT}/oidc/idsps/{TENANT}/"
    jwks_path = "/jwk"
    portal_path = "/portal"
    portal_name = "Patient portal"
    permission_v2 = True
    error_uri = True
    QUIRK_DEFAULTS: ClassVar[dict[str, Any]] = {"rfc9207_iss": True, "expires_in": 570}

    def new_launch_token(self) -> str:
        return str(uuid.uuid4())

    def context_fields(self, grant: Grant) -> dict[str, Any]:
        ids = self.launch_ids(grant)
        context: dict[str, Any] = {
            "patient": ids["patient"],
            "tenant": TENANT,
            "need_patient_banner": bool(self.quirks["need_patient_banner"]),
            "smart_style_url": self.url("/smart-style.json"),
        }
        if grant.launch is not None:
            context["encounter"] = ids["encounter"]
            context["fhirContext"] = [{"reference": f"Appointment/{ids['appointment']}"}]
        if isinstance(grant.user, Clinician):
            context["user"] = self.chart.id_of(grant.user)
            context["username"] = grant.user.usernames["cerner"]
        return context
