"""Reports (readers and up). The usage and call-quality reports (F18 / F19) read projections
of the visit events, which are not built yet: until then this page says so, rather than showing
numbers it cannot stand behind. The reports module replaces this one."""

from __future__ import annotations

from lib.portal.core import READER, NavItem, Page, Visit, portal_path
from lib.web.http import Response


def reports(visit: Visit) -> Response:
    return visit.render("reports.html", "Reports")


PAGES = [Page("GET", "portal/reports", READER, reports)]
NAV = [NavItem("Reports", portal_path("reports"), READER)]
