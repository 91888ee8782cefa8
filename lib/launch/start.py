"""GET /api/launch/{endpoint}/{provider|patient}?iss&launch: the EHR opens us; on to authorize.

Everything that can refuse a launch without talking to anyone happens first (unknown or disabled
endpoint, missing parameters, an `iss` that is not this endpoint's FHIR base): no request leaves
the server for a launch we would refuse. Then discovery (cached, and pinned to the hosts recorded
at validation), a server-side launch session keyed by `state`, and the authorize request, as an
auto-submitting form POST (Epic's preference: long launch tokens overflow URLs) or a redirect.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlencode, urlsplit

from lib.ehr.profiles import PERSONAS
from lib.endpoints.client import EndpointClient, SmartDeps
from lib.endpoints.lifecycle import check_launchable
from lib.endpoints.models import Endpoint
from lib.endpoints.service import EndpointService
from lib.signin.binding import BrowserBinding
from lib.signin.sessions import SessionStore
from lib.web.errors import AppError
from lib.web.http import Response
from lib.web.render import page
from lib.web.urls import Urls

MAX_LAUNCH_LENGTH = 4096


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


class LaunchStart:
    def __init__(
        self,
        endpoints: EndpointService,
        smart: SmartDeps,
        sessions: SessionStore,
        binding: BrowserBinding,
        urls: Urls,
        onward: tuple[str, ...] = (),
    ) -> None:
        """`onward`: origins the redirect chain after the EHR's answer may reach (Microsoft's
        sign-in, the meeting's join pages), for the auto-POST page's CSP `form-action`."""
        self._onward = onward
        self._endpoints = endpoints
        self._smart = smart
        self._sessions = sessions
        self._binding = binding
        self._urls = urls

    def launchable(self, endpoint_id: str, iss: str | None) -> EndpointClient:
        """The endpoint, if this launch may use it; the precise refusal otherwise. No network."""
        snapshot = self._endpoints.snapshot()
        endpoint = snapshot.find(endpoint_id)
        if endpoint is None:
            raise AppError("LAUNCH-UNKNOWN-ENDPOINT")
        if not iss:
            raise AppError("LAUNCH-MISSING-PARAM", "The iss parameter is missing.")
        if iss.rstrip("/") != endpoint.fhir_base_url:
            self._refuse_other_base(endpoint, snapshot.by_base(iss))
        check_launchable(endpoint)
        return self._smart.client(endpoint)

    @staticmethod
    def _refuse_other_base(endpoint: Endpoint, other: Endpoint | None) -> None:
        if other is not None and other.environment != endpoint.environment:
            opened = f"A {other.environment.value} EHR opened a {endpoint.environment.value}"
            raise AppError("LAUNCH-ENV-MISMATCH", f"{opened} launch URL.")
        raise AppError("LAUNCH-ISS-MISMATCH")

    def start(self, endpoint_id: str, persona: str, query: Mapping[str, str]) -> Response:
        if persona not in PERSONAS:
            raise AppError("REQ-NOT-FOUND")
        iss, launch = query.get("iss"), query.get("launch")
        client = self.launchable(endpoint_id, iss)
        if not launch or len(launch) > MAX_LAUNCH_LENGTH:
            raise AppError("LAUNCH-MISSING-PARAM", "The launch parameter is missing or too long.")
        found = client.discovery()
        authorize = client.profile.authorize_url(found.config.authorization_endpoint, persona)
        session = self._sessions.start(
            persona,
            redirect_uri=self._urls.callback,
            endpoint_id=client.endpoint.id,
            in_browser=True,  # no storage write for a URL anyone can open
        )
        # `aud` is exactly what the EHR sent: SMART servers compare it byte for byte.
        params = client.authorize_params(session, persona, launch=launch, aud=iss)
        if client.profile.uses_post(found.capabilities):
            resp = self._auto_post(client, authorize, params)
        else:
            resp = Response.redirect(f"{authorize}?{urlencode(params)}")
        return self._binding.bind(resp, session)

    def _auto_post(
        self, client: EndpointClient, authorize: str, params: dict[str, str]
    ) -> Response:
        resp = page("launch_post.html", action=authorize, fields=params)
        # Browsers apply form-action to every redirect that follows the form's submission: a
        # signed-in EHR answers the POST at once with a redirect to our callback ('self'), which
        # redirects on to Microsoft's sign-in or the meeting. All of them must be allowed, or the
        # browser stops on this page. The EHR's part: every host its sign-in was pinned to.
        pinned = client.pinned_hosts or set()
        ehr = {_origin(authorize), *(f"https://{h}" for h in pinned)}
        resp.form_action = tuple(sorted(ehr | set(self._onward)))
        resp.frame_ancestors = tuple(client.endpoint.launch.ehr_origins)
        return resp
