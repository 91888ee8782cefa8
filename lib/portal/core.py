"""What every portal page module uses: the page table row, the request as a page sees it.

A page module (lib/portal/pages/*.py) exports `PAGES` (routes) and `NAV` (its menu entries); the
router (app.py) concatenates them. Reports, SMS and write-back failures each arrive as one more
module, with no change elsewhere.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from lib.admin.api import ConfigServices
from lib.admin.auth import AppRole
from lib.web.http import Request, Response
from lib.web.render import page

if TYPE_CHECKING:
    from lib.endpoints.actor import Actor
    from lib.portal.session import PortalSession, PortalSessions
    from lib.portal.signin import PortalSignIn

ADMIN = (AppRole.ADMIN,)
APPROVER = (AppRole.APPROVER,)
READER = (AppRole.READER,)  # an admin and an approver also read (lib/admin/auth.py IMPLIES)
SIGNED_IN: tuple[AppRole, ...] = ()  # any signed-in account, even one without a role


class PortalServices(ConfigServices, Protocol):
    """The config API's services, and the portal's session cookie and sign-in."""

    portal_sessions: PortalSessions
    portal_signin: PortalSignIn


@dataclass(frozen=True)
class Page:
    method: str
    path: str  # relative to /api, with {name} parameters
    roles: tuple[AppRole, ...] | None  # any one of these; SIGNED_IN: any; None: no sign-in
    handler: Callable[[Visit], Response]


@dataclass(frozen=True)
class NavItem:
    label: str
    href: str
    roles: tuple[AppRole, ...]


@dataclass
class Visit:
    """One request to a portal page: the services, the request, who is signed in, the form."""

    svc: PortalServices
    request: Request
    session: PortalSession | None
    nav: list[NavItem]
    form: dict[str, str] = field(default_factory=dict)

    def param(self, name: str) -> str:
        return self.request.route[name]

    @property
    def actor(self) -> Actor:
        assert self.session is not None
        return self.session.principal.actor

    def may(self, roles: tuple[AppRole, ...]) -> bool:
        return self.session is not None and (not roles or any(self.session.has(r) for r in roles))

    def render(self, template: str, title: str, *, status: int = 200, **context: Any) -> Response:
        """A portal page: the layout's menu holds only what this person may open."""
        session = self.session
        return page(
            f"portal/{template}",
            status=status,
            title=title,
            me=session,
            csrf=self.svc.portal_sessions.csrf(session) if session else "",
            nav=[n for n in self.nav if self.may(n.roles)],
            current=self.request.path,
            **context,
        )


def see_other(path: str) -> Response:
    """After a POST, the browser GETs the page that shows the result (303)."""
    return Response.redirect(path, 303)


def portal_path(*parts: str) -> str:
    return "/api/portal" + "".join(f"/{p}" for p in parts)
