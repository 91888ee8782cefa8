"""Texts (F12; admins): the two consent statements, the numbers and their
endpoints, ordering a number and watching its progress, each endpoint's text settings, and the
interface engine's certificate per environment. Every change goes through SmsConfig with the
same request models as `/api/config/sms` (lib/admin/sms_api.py), so it is refused alike and
audited alike.
"""

from __future__ import annotations

import re
from typing import Any

from lib.endpoints.models import Environment
from lib.portal import forms
from lib.portal.core import ADMIN, NavItem, Page, Visit, portal_path, see_other
from lib.web.errors import AppError
from lib.web.http import Response

HOME = portal_path("sms")
POLL_SECONDS = 2  # the order page reloads itself while the order runs


def overview(visit: Visit, problems: list[dict[str, str]] | None = None, status: int = 200):
    sms = visit.svc.sms
    endpoints = visit.svc.endpoints.list()
    texts = {e.id: sms.settings(e.id).enabled for e in endpoints}
    return visit.render(
        "sms.html", "Texts (SMS)", status=status, problems=problems or [],
        consent=sms.consent(), numbers=sms.numbers(), endpoints=endpoints, texts=texts,
        certificates={env.value: sms.certificate(env) for env in Environment},
        may_change=visit.may(ADMIN),
    )  # fmt: skip


def _refused(change):
    """A change the service refuses is shown on the page it was made from, with its problems."""

    def run(visit: Visit) -> Response:
        try:
            return change(visit)
        except AppError as err:
            if err.code in ("CFG-ENDPOINT-NOT-FOUND", "SMS-ORDER-NOT-FOUND"):
                raise
            if visit.request.route.get("id"):
                return settings_page(visit, forms.problems(err), err.status)
            return overview(visit, forms.problems(err), err.status)

    return run


def _etag(visit: Visit) -> str | None:
    return visit.form.get("etag") or None


def consent(visit: Visit) -> Response:
    data = {k: visit.form.get(k) == "on" for k in ("sends_on_behalf_of_organization",
                                                   "attendees_consented")}  # fmt: skip
    body = forms.validated("ConsentGrant", data, False)
    visit.svc.sms.grant(body, _etag(visit), visit.actor)
    return see_other(HOME)


def order(visit: Visit) -> Response:
    data: dict[str, Any] = {}
    if visit.form.get("area_code", "").strip():
        data["area_code"] = visit.form["area_code"].strip()
    found = visit.svc.sms.order(forms.validated("NumberOrderCreate", data, False), visit.actor)
    return see_other(portal_path("sms", "orders", found.id))


def order_page(visit: Visit) -> Response:
    """Each look moves the order on by one status request, as GET number-orders/{id} does."""
    from lib.admin.sms_api import ORDER_ID

    order_id = visit.param("order")
    if not re.fullmatch(ORDER_ID, order_id):
        raise AppError("SMS-ORDER-NOT-FOUND")
    found = visit.svc.sms.poll(order_id)
    running = found.state in ("searching", "purchasing")
    resp = visit.render("sms_order.html", "Number order", order=found, running=running,
                        poll_seconds=POLL_SECONDS)  # fmt: skip
    if running:
        resp.headers["Refresh"] = str(POLL_SECONDS)  # a reload, no script needed
    return resp


def link(visit: Visit) -> Response:
    from lib.sms.models import E164

    number = visit.param("number")
    if not re.fullmatch(E164, number):
        raise AppError("REQ-NOT-FOUND", "A number is E.164: + and up to 15 digits.")
    chosen = [k.removeprefix("link-") for k, v in visit.form.items() if k.startswith("link-")]
    body = forms.validated("NumberLinks", {"endpoints": chosen}, False)
    visit.svc.sms.link(number, body, _etag(visit), visit.actor)
    return see_other(HOME)


def settings_page(visit: Visit, problems: list[dict[str, str]] | None = None, status: int = 200):
    sms = visit.svc.sms
    endpoint = visit.svc.endpoints.get(visit.param("id"))
    current = sms.settings(endpoint.id)
    values = visit.form if problems else _values(current)
    return visit.render(
        "sms_endpoint.html", f"Texts: {endpoint.id}", status=status, endpoint=endpoint,
        etag=current.etag, values=values, number=sms.number_for(endpoint.id),
        problems=problems or [], may_change=visit.may(ADMIN),
    )  # fmt: skip


def _values(settings: Any) -> dict[str, str]:
    """The stored settings as the form's flat fields."""
    return {
        "enabled": "on" if settings.enabled else "",
        "organization_name": settings.organization_name or "",
        "language": settings.language,
        "time_zone": settings.time_zone,
        "default_region": settings.default_region,
        **{
            f"confirm_{k}": "on" if v else ""
            for k, v in settings.confirmations.model_dump().items()
        },
        "reminder_offsets_minutes": ", ".join(str(m) for m in settings.reminder_offsets_minutes),
        "quiet_start": settings.quiet_hours.start,
        "quiet_end": settings.quiet_hours.end,
        "join_before": str(settings.join_window.before_minutes),
        "join_after": str(settings.join_window.after_minutes),
    }


def _settings_body(form: dict[str, str]) -> dict[str, Any]:
    """A SmsSettingsUpdate body from the form (every field: the page shows them all)."""

    def number(name: str) -> Any:
        return forms.whole(form.get(name, ""))

    typed = form.get("reminder_offsets_minutes", "").split(",")
    offsets = [forms.whole(p) for p in typed if p.strip()]
    return {
        "enabled": form.get("enabled") == "on",
        "organization_name": form.get("organization_name", "").strip() or None,
        "language": form.get("language", ""),
        "time_zone": form.get("time_zone", "").strip(),
        "default_region": form.get("default_region", "").strip().upper(),
        "confirmations": {
            k: form.get(f"confirm_{k}") == "on" for k in ("scheduled", "updated", "cancelled")
        },
        "reminder_offsets_minutes": offsets,
        "quiet_hours": {"start": form.get("quiet_start", ""), "end": form.get("quiet_end", "")},
        "join_window": {
            "before_minutes": number("join_before"),
            "after_minutes": number("join_after"),
        },
    }


def save_settings(visit: Visit) -> Response:
    endpoint_id = visit.param("id")
    body = forms.validated("SmsSettingsUpdate", _settings_body(visit.form), False)
    visit.svc.sms.update_settings(endpoint_id, body, _etag(visit), visit.actor)
    return see_other(portal_path("sms", "endpoints", endpoint_id))


def certificate(visit: Visit) -> Response:
    try:
        environment = Environment(visit.param("environment"))
    except ValueError:
        raise AppError("REQ-NOT-FOUND", "The environment is test or production.") from None
    body = forms.validated("CertificateUpload", {"certificate": visit.form.get("certificate", "")},
                           False)  # fmt: skip
    visit.svc.sms.upload_certificate(environment, body.certificate, _etag(visit), visit.actor)
    return see_other(HOME)


PAGES = [
    Page("GET", "portal/sms", ADMIN, overview),
    Page("POST", "portal/sms/consent", ADMIN, _refused(consent)),
    Page("POST", "portal/sms/orders", ADMIN, _refused(order)),
    Page("GET", "portal/sms/orders/{order}", ADMIN, order_page),
    Page("POST", "portal/sms/numbers/{number}/link", ADMIN, _refused(link)),
    Page("GET", "portal/sms/endpoints/{id}", ADMIN, settings_page),
    Page("POST", "portal/sms/endpoints/{id}", ADMIN, _refused(save_settings)),
    Page("POST", "portal/sms/certificates/{environment}", ADMIN, _refused(certificate)),
]
NAV = [NavItem("Texts", HOME, ADMIN)]
