"""Endpoints (admins): list, add, the validation result with its named problems, edit (with the
ETag the page was read at), enable / disable, validate again, activate; and per endpoint its
integration records (copy buttons) and clinician mappings (remove). Every change goes through
EndpointService / ClinicianMappings, as the config API's does.
"""

from __future__ import annotations

from typing import Any

from lib.endpoints.models import Endpoint
from lib.portal import forms
from lib.portal.core import ADMIN, NavItem, Page, Visit, portal_path, see_other
from lib.web.errors import AppError
from lib.web.http import Response

VENDORS = (("epic", "Epic"), ("cerner", "Oracle Health (Cerner)"))
ENVIRONMENTS = (("test", "Test"), ("production", "Production"))
AUTH_METHODS = (
    ("private_key_jwt", "Private key JWT (our signing key; recommended)"),
    ("client_secret_basic", "Client secret (an EHR_SECRET_* app setting)"),
)


def _choices() -> dict[str, Any]:
    return {"vendors": VENDORS, "environments": ENVIRONMENTS, "auth_methods": AUTH_METHODS}


def listing(visit: Visit) -> Response:
    return visit.render("endpoints.html", "Endpoints", endpoints=visit.svc.endpoints.list())


def new_form(visit: Visit) -> Response:
    return visit.render("endpoint_form.html", "Add an endpoint", values={}, **_choices())


def create(visit: Visit) -> Response:
    svc = visit.svc
    try:
        body = forms.validated(
            "EndpointCreate", forms.endpoint_body(visit.form), svc.settings.local_mode
        )
        endpoint = svc.endpoints.create(body, visit.actor)
    except AppError as err:
        return visit.render(
            "endpoint_form.html", "Add an endpoint", status=err.status,
            values=visit.form, problems=forms.problems(err), **_choices(),
        )  # fmt: skip
    return see_other(portal_path("endpoints", endpoint.id))


def detail(visit: Visit, notice: AppError | None = None) -> Response:
    endpoint = visit.svc.endpoints.get(visit.param("id"))
    return visit.render(
        "endpoint.html",
        f"Endpoint {endpoint.id}",
        status=notice.status if notice else 200,
        endpoint=endpoint,
        problems=forms.problems(notice) if notice else [],
    )


def _edit_values(endpoint: Endpoint) -> dict[str, str]:
    auth = endpoint.client_auth.model_dump(mode="json")
    approver = endpoint.approver
    return {
        "organization": endpoint.organization,
        "fhir_base_url": endpoint.fhir_base_url,
        "client_id": endpoint.client_id,
        "auth_method": auth["method"],
        "secret_setting": auth.get("secret_setting", ""),
        "alg": auth.get("alg", "RS384"),
        "approver_oid": approver.oid if approver else "",
        "approver_name": approver.display_name if approver else "",
        "ehr_origins": "\n".join(endpoint.launch.ehr_origins),
        "open_teams_directly": "on" if endpoint.launch.open_teams_directly else "",
        "etag": endpoint.etag or "",
    }


def edit_form(visit: Visit) -> Response:
    endpoint = visit.svc.endpoints.get(visit.param("id"))
    return visit.render(
        "endpoint_form.html", f"Edit {endpoint.id}", endpoint=endpoint,
        values=_edit_values(endpoint), **_choices(),
    )  # fmt: skip


def _patch(form: dict[str, str], current: Endpoint) -> dict[str, Any]:
    """Only what the form changed: a change of URL, client or authentication validates the
    endpoint again (and for Epic asks the approver again), so nothing else may look changed."""
    wanted: dict[str, Any] = {
        "organization": form.get("organization", "").strip(),
        "fhir_base_url": form.get("fhir_base_url", "").strip(),
        "client_id": form.get("client_id", "").strip(),
        "client_auth": forms.client_auth(form),
        "approver": forms.approver(form),
        "launch": {
            **current.launch.model_dump(mode="json"),
            "ehr_origins": forms.lines(form.get("ehr_origins")),
            "open_teams_directly": form.get("open_teams_directly") == "on",
        },
    }
    now = current.public()
    return {k: v for k, v in wanted.items() if v != now.get(k)}


def update(visit: Visit) -> Response:
    svc, endpoint_id = visit.svc, visit.param("id")
    current = svc.endpoints.get(endpoint_id)
    try:
        patch = forms.validated(
            "EndpointUpdate", _patch(visit.form, current), svc.settings.local_mode
        )
        svc.endpoints.update(endpoint_id, patch, visit.form.get("etag") or None, visit.actor)
    except AppError as err:
        return visit.render(
            "endpoint_form.html", f"Edit {endpoint_id}", status=err.status, endpoint=current,
            values={**visit.form, "etag": visit.form.get("etag", "")},
            problems=forms.problems(err), **_choices(),
        )  # fmt: skip
    return see_other(portal_path("endpoints", endpoint_id))


def _action(change):
    """A button on the endpoint's page: the change, then the page again (with what refused it)."""

    def run(visit: Visit) -> Response:
        try:
            change(visit)
        except AppError as err:
            if err.code == "CFG-ENDPOINT-NOT-FOUND":
                raise
            return detail(visit, notice=err)
        return see_other(portal_path("endpoints", visit.param("id")))

    return run


# How the records read on the page (the keys are the API's).
RECORD_LABELS = {
    "fhir_base_url": "FHIR base URL",
    "redirect_uri": "Redirect URI",
    "provider_launch_url": "Provider launch URL",
    "patient_launch_url": "Patient launch URL",
    "jwks_url": "JWKS URL",
    "scheduling_intake_url": "Scheduling intake URL",
    "scheduling_certificate_sha256": "Scheduling certificate (SHA-256)",
    "sms_number": "SMS number",
}


def records(visit: Visit) -> Response:
    from lib.endpoints.records import as_text
    from lib.sms.records import integration_records

    endpoint = visit.svc.endpoints.get(visit.param("id"))
    try:
        found = integration_records(endpoint, visit.svc.urls, visit.svc.sms)
    except AppError as err:  # not active yet: say so on the endpoint's page
        return detail(visit, notice=err)
    return visit.render(
        "records.html", f"Integration records: {endpoint.id}", endpoint=endpoint,
        records=found, text=as_text(endpoint, found), labels=RECORD_LABELS,
    )  # fmt: skip


def mappings(visit: Visit) -> Response:
    endpoint = visit.svc.endpoints.get(visit.param("id"))
    found = visit.svc.mappings.list(endpoint.id)
    return visit.render(
        "mappings.html", f"Clinician mappings: {endpoint.id}", endpoint=endpoint, mappings=found
    )


def remove_mapping(visit: Visit) -> Response:
    endpoint = visit.svc.endpoints.get(visit.param("id"))
    visit.svc.mappings.remove_audited(endpoint, visit.param("mapping"), visit.actor)
    return see_other(portal_path("endpoints", endpoint.id, "mappings"))


def _set_enabled(enabled: bool):
    return lambda v: v.svc.endpoints.set_enabled(v.param("id"), enabled, v.actor)


ONE = "portal/endpoints/{id}"
PAGES = [
    Page("GET", "portal/endpoints", ADMIN, listing),
    Page("GET", "portal/new-endpoint", ADMIN, new_form),
    Page("POST", "portal/new-endpoint", ADMIN, create),
    Page("GET", ONE, ADMIN, detail),
    Page("GET", ONE + "/edit", ADMIN, edit_form),
    Page("POST", ONE + "/edit", ADMIN, update),
    Page("POST", ONE + "/validate", ADMIN,
         _action(lambda v: v.svc.endpoints.revalidate(v.param("id"), v.actor))),
    Page("POST", ONE + "/activate", ADMIN,
         _action(lambda v: v.svc.endpoints.activate(v.param("id"), v.actor))),
    Page("POST", ONE + "/enable", ADMIN, _action(_set_enabled(True))),
    Page("POST", ONE + "/disable", ADMIN, _action(_set_enabled(False))),
    Page("GET", ONE + "/records", ADMIN, records),
    Page("GET", ONE + "/mappings", ADMIN, mappings),
    Page("POST", ONE + "/mappings/{mapping}/remove", ADMIN, remove_mapping),
]  # fmt: skip
NAV = [NavItem("Endpoints", portal_path("endpoints"), ADMIN)]
