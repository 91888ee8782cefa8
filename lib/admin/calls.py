"""What a config API handler is given (a `Call`: the services, the request, who asks, the
validated body) and how it reads If-Match; shared by api.py and sms_api.py."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from lib.admin.auth import AdminAuth, Principal
from lib.web.http import Request

if TYPE_CHECKING:
    from collections.abc import Callable

    from lib.endpoints.approval import ApprovalService
    from lib.endpoints.secrets import SecretBindings
    from lib.endpoints.service import EndpointService
    from lib.reports.service import Reports
    from lib.reports.verdicts import Thresholds
    from lib.settings import Settings
    from lib.sms.config import SmsConfig
    from lib.storage import QueueSender, TableStore
    from lib.visits.mappings import ClinicianMappings
    from lib.web.urls import Urls
    from lib.writeback.failures import FailureStore

# One entity tag as GET gives it (RFC 9110 entity-tag; Table Storage's are weak). `*` and lists are
# not taken: a change must name the version it was based on.
ETAG = r'^(?:W/)?"[!#-~]*"$'


def if_match(request: Request) -> str | None:
    """The If-Match entity tag; a malformed one counts as none (428), never as a mismatch."""
    value = (request.headers.get("if-match") or "").strip()
    return value if re.fullmatch(ETAG, value) else None


class ConfigServices(Protocol):
    """What the config API needs (the composition root's `Services` has it all)."""

    settings: Settings
    store: TableStore
    urls: Urls
    auth: AdminAuth
    endpoints: EndpointService
    secrets: SecretBindings
    approvals: ApprovalService
    mappings: ClinicianMappings
    sms: SmsConfig
    reports: Reports
    thresholds: Thresholds
    writeback_failures: FailureStore
    writeback_queue: Callable[[], QueueSender]


@dataclass
class Call:
    svc: ConfigServices
    request: Request
    principal: Principal
    body: Any = None

    def param(self, name: str) -> str:
        return self.request.route[name]
