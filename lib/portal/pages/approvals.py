"""Approvals (approvers; admins see them too): the Epic endpoints waiting for this person's EHR
sign-in (ApprovalService, as POST /api/config/endpoints/{id}/approval), rejecting one with a
reason, and the token hosts a client secret waits to be allowed to go to (SecretBindings: a
second person, not the admin who asked).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from lib.endpoints.models import Endpoint, EndpointStatus, StoredSecretBasic
from lib.portal import forms
from lib.portal.core import ADMIN, APPROVER, NavItem, Page, Visit, portal_path, see_other
from lib.web.errors import AppError
from lib.web.http import Response

HOME = portal_path("approvals")


def _waiting(visit: Visit) -> list[Endpoint]:
    """Endpoints awaiting approval: an approver's own; every one, for an admin's overview."""
    found = [e for e in visit.svc.endpoints.list() if e.status == EndpointStatus.AWAITING_APPROVAL]
    if visit.may(ADMIN):
        return found
    return [e for e in found if e.approver and e.approver.oid.lower() == visit.actor.oid.lower()]


def _secret_requests(visit: Visit) -> list[dict[str, str]]:
    """Each token host a secret setting was asked to go to, with who asked."""
    settings = {
        e.client_auth.secret_setting
        for e in visit.svc.endpoints.list()
        if isinstance(e.client_auth, StoredSecretBasic)
    }
    found = []
    for setting in sorted(settings):
        binding = visit.svc.secrets.get(setting)
        for host, asked_by in sorted((binding.pending if binding else {}).items()):
            hosts = ", ".join(binding.hosts) if binding else ""
            found.append({"setting": setting, "host": host, "asked_by": asked_by, "bound": hosts})
    return found


def _origin(url: str | None) -> str | None:
    parts = urlsplit(url or "")
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme == "https" else None


def overview(visit: Visit, problems: list[dict[str, str]] | None = None, status: int = 200):
    waiting = _waiting(visit)
    resp = visit.render(
        "approvals.html", "Approvals", status=status, waiting=waiting,
        secret_requests=_secret_requests(visit), problems=problems or [],
        may_approve=visit.may(APPROVER),
    )  # fmt: skip
    # "Approve" answers with a redirect to the EHR's sign-in: form-action must allow it.
    origins = {_origin(e.validation.authorize_endpoint if e.validation else None) for e in waiting}
    resp.form_action = tuple(sorted(o for o in origins if o))
    return resp


def _refused(change):
    def run(visit: Visit) -> Response:
        try:
            return change(visit)
        except AppError as err:
            if err.code == "CFG-ENDPOINT-NOT-FOUND":
                raise
            return overview(visit, forms.problems(err), err.status)

    return run


def start(visit: Visit) -> Response:
    url = visit.svc.approvals.start(visit.param("id"), visit.actor)
    return see_other(url)  # the EHR's sign-in; its callback shows who approved


def reject(visit: Visit) -> Response:
    body = forms.validated("RejectRequest", {"reason": visit.form.get("reason", "")}, False)
    visit.svc.endpoints.reject(visit.param("id"), body.reason, visit.actor)
    return see_other(HOME)


def approve_host(visit: Visit) -> Response:
    body = forms.validated("SecretHostApproval", {"host": visit.form.get("host", "")}, False)
    visit.svc.secrets.approve(visit.param("setting"), body.host, visit.actor)
    return see_other(HOME)


PAGES = [
    Page("GET", "portal/approvals", APPROVER + ADMIN, overview),
    Page("POST", "portal/approvals/{id}/start", APPROVER, _refused(start)),
    Page("POST", "portal/approvals/{id}/reject", APPROVER, _refused(reject)),
    Page("POST", "portal/secrets/{setting}/approve", APPROVER, _refused(approve_host)),
]
NAV = [NavItem("Approvals", HOME, APPROVER + ADMIN)]
