"""The endpoint lifecycle, as pure functions of an endpoint's facts.

`DIAGRAM` is the README's lifecycle diagram (make docs copies it there); tests/unit/
test_lifecycle.py walks it arrow by arrow against `status_for`.

The status is never set by hand: every change recomputes it with `status_for`, so a stored
status always agrees with the facts beside it.
"""

from __future__ import annotations

from lib.ehr.profiles import profile_for
from lib.endpoints.models import Endpoint, EndpointStatus, Environment
from lib.web.errors import AppError

DIAGRAM = """\
create ──validate──> invalid ──(fix: PATCH, or POST .../validate)──┐
   │                                                             │
   └──> no approval needed (Cerner): active <────────────────────┤
   └──> approval needed (Epic):      awaiting_approval <─────────┘
                                       ├──approver signs in to the EHR──> active
                                       └──approver rejects (reason)──> rejected
                                              (a new base URL, client or auth: awaiting_approval)
production (any vendor): awaiting_test until the same organization has an active test endpoint
any: disabled (POST .../disable); POST .../enable applies these rules again"""


def check_launchable(endpoint: Endpoint) -> None:
    """Launches (and every sign-in they lead to) need an enabled, active endpoint."""
    if not endpoint.enabled:
        raise AppError("LAUNCH-ENDPOINT-DISABLED")
    if endpoint.status != EndpointStatus.ACTIVE:
        raise AppError("LAUNCH-ENDPOINT-NOT-ACTIVE", f"Status is {endpoint.status.value}.")


def validated(endpoint: Endpoint) -> bool:
    return bool(endpoint.validation and endpoint.validation.ok)


def status_for(endpoint: Endpoint, *, has_active_test: bool) -> EndpointStatus:
    """`has_active_test`: the organization has an active, validated test endpoint."""
    if not endpoint.enabled:
        return EndpointStatus.DISABLED
    if not validated(endpoint):
        return EndpointStatus.INVALID
    if profile_for(endpoint.vendor).needs_approval and endpoint.approval.approved_at is None:
        if endpoint.approval.rejected_at is not None:
            return EndpointStatus.REJECTED
        return EndpointStatus.AWAITING_APPROVAL
    if endpoint.environment == Environment.PRODUCTION and not has_active_test:
        return EndpointStatus.AWAITING_TEST
    return EndpointStatus.ACTIVE


def is_active_test_for(candidate: Endpoint, endpoint: Endpoint) -> bool:
    """Does `candidate` let `endpoint` (production) go live: an active test of the same org?"""
    return (
        candidate.environment == Environment.TEST
        and candidate.status == EndpointStatus.ACTIVE
        and candidate.organization.casefold() == endpoint.organization.casefold()
        and validated(candidate)
    )
