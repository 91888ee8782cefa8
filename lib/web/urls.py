"""The app's own public URLs, built from CONNECTOR_PUBLIC_URL (handed in, never read here).

One place names every URL we give out: the redirect URI registered at every EHR and at Entra,
the JWKS URL, the launch URLs of the integration records, and the visit page.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Urls:
    public: str  # e.g. https://evc.contoso.org, without /api or a trailing slash

    @property
    def api(self) -> str:
        return f"{self.public}/api"

    @property
    def secure(self) -> bool:
        return self.public.startswith("https://")

    @property
    def callback(self) -> str:
        """The one redirect URI for every sign-in we start (launches, approvals, Microsoft)."""
        return f"{self.api}/launch/callback"

    @property
    def link_confirm(self) -> str:
        """Where a clinician confirms the Microsoft account their EHR sign-in will use."""
        return f"{self.api}/launch/confirm"

    @property
    def origin(self) -> str:
        """Our origin (scheme, host and port), as a browser names it (postMessage targets)."""
        scheme, rest = self.public.split("://", 1)
        return f"{scheme}://{rest.split('/', 1)[0]}"

    @property
    def signin_window(self) -> str:
        """The window of its own that the Microsoft sign-in opens in from an EHR's frame."""
        return f"{self.api}/launch/window"

    @property
    def signin_window_status(self) -> str:
        return f"{self.api}/launch/window/status"

    @property
    def signin_window_resume(self) -> str:
        """Where the waiting frame goes once the sign-in in the other window is done."""
        return f"{self.api}/launch/window/resume"

    @property
    def visit_unlink(self) -> str:
        return f"{self.api}/visit/unlink"

    @property
    def visit_sms(self) -> str:
        """The visit page's "Send link by SMS" (GET: available?, POST: send; /preview)."""
        return f"{self.api}/visit/sms"

    @property
    def jwks(self) -> str:
        return f"{self.api}/.well-known/jwks.json"

    def scheduling(self, endpoint_id: str) -> str:
        """Where an EHR's interface engine posts scheduling messages (lib/sms/intake.py)."""
        return f"{self.api}/scheduling/{endpoint_id}"

    def launch(self, endpoint_id: str, persona: str) -> str:
        return f"{self.api}/launch/{endpoint_id}/{persona}"

    @property
    def visit_page(self) -> str:
        return f"{self.api}/visit"

    @property
    def visit_status(self) -> str:
        return f"{self.api}/visit/status"

    @property
    def graph_notifications(self) -> str:
        """Graph's change and lifecycle notifications (every subscription we make names it)."""
        return f"{self.api}/graph/notifications"
