"""A generic SMART on FHIR EHR; ``epic.py`` and ``cerner.py`` only set URL shapes, token-response
context fields, issuer and defaults.

What it speaks (see README.md in this folder for every URL):
- discovery: ``{base}/.well-known/smart-configuration``, ``{base}/metadata``, the issuer's
  ``openid-configuration`` and JWKS; misbehaving copies under ``/variant/{kind}`` (variants.py);
- authorize (GET or form POST): EHR launch with a launch token this EHR minted (no sign-in page),
  or standalone: a demo-person picker the first time, then the browser's EHR session
  (sessions.py; quirk ``signed_in``); errors go back to a *valid* redirect URI;
- token: authorization_code (PKCE S256, single-use codes bound to client, redirect URI and
  verifier) and client_credentials (Backend Services), with client_secret_basic or
  private_key_jwt checked for real (clients.py); id_token RS256;
- FHIR R4 reads and Appointment search with bearer tokens;
- pages: the clinician schedule and the patient portal with "Begin virtual visit" buttons;
- controls under ``/_sandbox/{name}/`` and the same in Python (``sandbox.epic.mint_launch()``).

This class keeps the EHR's state, clients, quirks, launches and URL map; each protocol surface is
a mixin in its own module: ``fhir.py`` (discovery, reads, search), ``authorization.py``
(authorize, token), ``portals.py`` (pages), ``controls.py``; ``addresses.py`` has the URLs.
"""

from __future__ import annotations

import functools
import secrets
import threading
import time
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit

from werkzeug.routing import Rule

from dev.sandbox import certs
from dev.sandbox.ehr import scopes as scope_tools
from dev.sandbox.ehr.addresses import EhrAddresses
from dev.sandbox.ehr.authorization import SmartAuthorization
from dev.sandbox.ehr.chart import Chart
from dev.sandbox.ehr.clients import (
    AUTHORIZATION_CODE,
    CLIENT_CREDENTIALS,
    CLIENT_SECRET_BASIC,
    PRIVATE_KEY_JWT,
    ClientAuthenticator,
    ClientRegistry,
    SmartClient,
    client_from_json,
)
from dev.sandbox.ehr.controls import Controls
from dev.sandbox.ehr.data import (
    Clinician,
    Patient,
    Slot,
)
from dev.sandbox.ehr.errors import SmartError
from dev.sandbox.ehr.fhir import FhirSurface
from dev.sandbox.ehr.interface import InterfaceEngine
from dev.sandbox.ehr.model import (
    GENERIC_QUIRKS,
    AuthRequest,
    Connector,
    Grant,
    Launch,
    Stores,
    check_quirk,
    copy_quirks,
)
from dev.sandbox.ehr.portals import Portals, play_standalone_sign_in
from dev.sandbox.ehr.sessions import EhrSessions
from dev.sandbox.ehr.variants import VARIANTS
from dev.sandbox.ehr.writes import STATUS_PATH, Writes, WriteSurface
from dev.sandbox.entra.keys import KeySet, load_or_create_key
from dev.sandbox.oauth import CODE_LIFETIME, AuthorizationStore, with_query
from dev.sandbox.standin import StandIn

if TYPE_CHECKING:
    from dev.sandbox.state import SandboxState

__all__ = ["EhrStandIn", "Grant", "Launch", "play_standalone_sign_in"]

LAUNCH_LIFETIME = 300
CONNECTOR_URL = "https://127.0.0.1:7071"  # make run's app (dev/stack.py)
DEFAULT_REDIRECT_URI = f"{CONNECTOR_URL}/api/launch/callback"
DEFAULT_JWKS_URL = f"{CONNECTOR_URL}/api/.well-known/jwks.json"


class EhrStandIn(
    EhrAddresses,
    FhirSurface,
    WriteSurface,
    SmartAuthorization,
    Portals,
    Controls,
    InterfaceEngine,
    StandIn,
):
    """Abstract (no ``name``): the vendor subclasses are mounted."""

    vendor: ClassVar[str] = ""
    vendor_title: ClassVar[str] = ""
    software: ClassVar[str] = ""
    endpoint_id: ClassVar[str] = ""  # our app's endpoint id in the default launch URLs
    fhir_paths: ClassVar[dict[str, str]] = {}  # FHIR version -> path of the base
    authorize_paths: ClassVar[dict[str, str | None]] = {}  # path -> persona (None: by scopes)
    advertised_authorize_path: ClassVar[str] = ""
    token_path: ClassVar[str] = ""
    issuer_path: ClassVar[str] = ""
    jwks_path: ClassVar[str] = ""
    portal_path: ClassVar[str] = ""
    portal_name: ClassVar[str] = ""
    permission_v2: ClassVar[bool] = False
    error_uri: ClassVar[bool] = False  # Cerner sends error_uri with OAuth errors
    QUIRK_DEFAULTS: ClassVar[dict[str, Any]] = {}

    def __init__(self, state: SandboxState) -> None:
        self.keys = KeySet(load_or_create_key(state.state_dir / self.vendor))
        self.chart = Chart(self.vendor)
        self.connector = self._connector_from_settings(state)
        self.clients = ClientRegistry(self.default_clients())
        ca_file = certs.certs_dir(state.state_dir) / certs.CA_CERT_NAME
        self.authenticator = ClientAuthenticator(self.clients, ca_file)
        self.quirks: dict[str, Any] = {}
        self.launch_urls: dict[str, str] = {}
        # WRITE-BACK: appointment id -> connection status text shown on the schedule page.
        self.connection_status: dict[str, str] = {}
        self.writes = Writes()  # what write-back wrote (writes.py)
        # The interface engine's scheduling messages (interface.py): where, and what it sent.
        self._scheduling_baseline = state.setting(
            "CONNECTOR_SCHEDULING_BASE", f"{CONNECTOR_URL}/api/scheduling"
        )
        self.scheduling_base = self._scheduling_baseline
        self.bookings = {}
        self._stores = Stores()
        self.sessions = EhrSessions(self.vendor)
        self.authorizations: AuthorizationStore[AuthRequest, Grant] = AuthorizationStore()
        self._lock = threading.Lock()
        super().__init__(state)
        self._restore()

    def _restore(self) -> None:
        self.code_lifetime = CODE_LIFETIME
        self.launch_lifetime = LAUNCH_LIFETIME
        self.quirks = copy_quirks({**GENERIC_QUIRKS, **self.QUIRK_DEFAULTS})
        self.launch_urls = dict(self.connector.launch_urls)
        self.connection_status = {}
        self.writes = Writes()
        self.scheduling_base, self.bookings = self._scheduling_baseline, {}
        self.keys.restore()
        self.clients.reset()
        self.authenticator.reset()
        with self._lock:
            self._stores = Stores()
        self.authorizations.reset()
        self.sessions.reset()

    def on_reset(self) -> None:
        self._restore()

    def stop(self) -> None:
        self.authenticator.close()

    # -- vendor hooks ----------------------------------------------------------------------------
    def context_fields(self, grant: Grant) -> dict[str, Any]:
        """Launch context beside the access token (vendor-specific)."""
        raise NotImplementedError

    def id_token_extra(self, grant: Grant) -> dict[str, Any]:
        return {}

    def new_launch_token(self) -> str:
        return secrets.token_urlsafe(48)

    def username(self, user: Clinician | Patient) -> str:
        if isinstance(user, Clinician):
            return user.usernames[self.vendor]
        return f"{user.given.lower()}.{user.family.lower()}"

    # -- where our app is, and its clients ---------------------------------------------------------
    def _connector_from_settings(self, state: SandboxState) -> Connector:
        v = self.vendor.upper()
        redirects = state.setting("CONNECTOR_REDIRECT_URI", DEFAULT_REDIRECT_URI)
        return Connector(
            redirect_uris=redirects.replace(",", " ").split(),
            jwks_url=state.setting("CONNECTOR_JWKS_URL", DEFAULT_JWKS_URL),
            secret=state.setting(
                f"EHR_SECRET_{v}", f"{self.vendor}-local-secret-not-for-production"
            ),
            launch_urls={
                kind: state.setting(
                    f"{v}_{kind.upper()}_LAUNCH_URL",
                    f"{CONNECTOR_URL}/api/launch/{self.endpoint_id}/{kind}",
                )
                for kind in ("provider", "patient")
            },
        )

    def configure_connector(
        self,
        *,
        redirect_uri: str | list[str] | None = None,
        jwks_url: str | None = None,
        launch_base: str | None = None,
        epic_secret: str | None = None,
        cerner_secret: str | None = None,
        scheduling_base: str | None = None,
        **_other: Any,
    ) -> None:
        """Point this EHR at a running app (tests start it on a random port). Changes the
        baseline that ``reset`` restores: the two preloaded clients (redirect URIs, JWKS URL,
        this vendor's secret) and the launch URLs ``{launch_base}/{endpoint id}/{kind}``."""
        c = self.connector
        if redirect_uri is not None:
            uris = [redirect_uri] if isinstance(redirect_uri, str) else list(redirect_uri)
            c.redirect_uris = uris
        if jwks_url is not None:
            c.jwks_url = jwks_url
        secret = {"epic": epic_secret, "cerner": cerner_secret}[self.vendor]
        if secret is not None:
            c.secret = secret
        if launch_base is not None:
            base = launch_base.rstrip("/")
            c.launch_urls = {k: f"{base}/{self.endpoint_id}/{k}" for k in ("provider", "patient")}
        if scheduling_base is not None:
            self._scheduling_baseline = self.scheduling_base = scheduling_base.rstrip("/")
        self.clients.configure(self.default_clients())
        self.launch_urls = dict(c.launch_urls)

    def default_clients(self) -> list[SmartClient]:
        """``evc-{vendor}-test`` (client_secret_basic) and ``evc-{vendor}-jwt``
        (private_key_jwt, also Backend Services), from the sandbox settings."""
        c = self.connector
        user_scopes = [s for s in scope_tools.supported(self.permission_v2) if "system/" not in s]
        return [
            SmartClient(
                client_id=f"evc-{self.vendor}-test",
                auth_method=CLIENT_SECRET_BASIC,
                secret=c.secret,
                redirect_uris=list(c.redirect_uris),
                scopes=user_scopes,
                name="EVC connector (client secret)",
            ),
            SmartClient(
                client_id=f"evc-{self.vendor}-jwt",
                auth_method=PRIVATE_KEY_JWT,
                jwks_url=c.jwks_url,
                redirect_uris=list(c.redirect_uris),
                scopes=scope_tools.supported(self.permission_v2),
                grant_types=[AUTHORIZATION_CODE, CLIENT_CREDENTIALS],
                name="EVC connector (private key JWT)",
            ),
        ]

    def register_client(self, **fields: Any) -> SmartClient:
        """Add or replace a client: ``register_client(client_id=..., auth_method=..., ...)``."""
        return self.clients.put(client_from_json(fields))

    def update_client(self, client_id: str, **changes: Any) -> SmartClient:
        """Change fields of a registered client, e.g. ``redirect_uris=[...]``, ``grant_less``."""
        return self.clients.update(client_id, changes)

    def set_quirks(self, **changes: Any) -> dict[str, Any]:
        """Change quirks (see QUIRKS); ``on_reset`` restores the defaults."""
        checked = {name: check_quirk(name, value) for name, value in changes.items()}
        self.quirks.update(checked)
        return copy_quirks(self.quirks)

    def set_launch_urls(self, provider: str | None = None, patient: str | None = None) -> None:
        """Where "Begin virtual visit" sends the browser (the app's launch URLs)."""
        for kind, url in (("provider", provider), ("patient", patient)):
            if url is not None:
                if urlsplit(url).scheme not in ("http", "https"):
                    raise ValueError(f"{kind} launch URL must be absolute http(s)")
                self.launch_urls[kind] = url

    def rotate_key(self, keep_previous: bool = True) -> str:
        """Sign id_tokens with a fresh key (returns its kid); reset restores the persisted one."""
        return self.keys.rotate(keep_previous).kid

    # -- routes ---------------------------------------------------------------------------------
    def routes(self) -> list[Rule]:
        rules: list[Rule] = []
        for version, path in self.fhir_paths.items():
            prefixes = [(path, None)]
            if version == "R4":
                kinds = ", ".join(repr(kind) for kind in VARIANTS)
                prefixes.append((f"/variant/<any({kinds}):variant>{path}", "variant"))
            for prefix, _ in prefixes:
                rules += [
                    Rule(
                        f"{prefix}/.well-known/smart-configuration",
                        endpoint=functools.partial(self.smart_configuration, version=version),
                        methods=["GET"],
                    ),
                    Rule(
                        f"{prefix}/metadata",
                        endpoint=functools.partial(self.metadata, version=version),
                        methods=["GET"],
                    ),
                    Rule(
                        f"{prefix}/<resource_type>/<fhir_id>",
                        endpoint=functools.partial(self.fhir_read, version=version),
                        methods=["GET"],
                    ),
                    Rule(
                        f"{prefix}/Appointment/<fhir_id>",
                        endpoint=functools.partial(self.appointment_patch, version=version),
                        methods=["PATCH"],
                    ),
                    Rule(
                        f"{prefix}/<resource_type>",
                        endpoint=functools.partial(self.fhir_search, version=version),
                        methods=["GET"],
                    ),
                ]
        for path, persona in self.authorize_paths.items():
            rules.append(
                Rule(
                    path,
                    endpoint=functools.partial(self.authorize, persona=persona),
                    methods=["GET", "POST"],
                )
            )
        rules += [
            Rule(self.token_path, endpoint=self.token, methods=["POST"]),
            Rule(
                self.issuer_path.rstrip("/") + "/.well-known/openid-configuration",
                endpoint=self.openid_configuration,
                methods=["GET"],
            ),
            Rule(self.jwks_path, endpoint=self.jwks_endpoint, methods=["GET"]),
            Rule("/schedule", endpoint=self.schedule, methods=["GET", "POST"]),
            Rule("/schedule/status.json", endpoint=self.writes_json, methods=["GET"]),
            Rule("/schedule/message", endpoint=self.schedule_message, methods=["POST"]),
            Rule(self.portal_path, endpoint=self.portal, methods=["GET", "POST"]),
            Rule("/smart-style.json", endpoint=self.smart_style, methods=["GET"]),
            Rule("/oauth2-errors", endpoint=self.error_catalogue, methods=["GET"]),
        ]
        if self.vendor == "epic":
            rules.append(Rule(STATUS_PATH, endpoint=self.set_connection_status, methods=["GET"]))
        return rules

    # -- launches -------------------------------------------------------------------------------
    def mint_launch(
        self,
        kind: str = "provider",
        clinician: str | None = None,
        patient: str | None = None,
        appointment: str | None = None,
        iss: str | None = None,
    ) -> Launch:
        """A fresh launch token for (clinician or patient, appointment); ``.url`` is the app's
        launch URL with ``iss`` and ``launch``. Names are demo keys or FHIR ids."""
        if kind not in ("provider", "patient"):
            raise ValueError("kind must be 'provider' or 'patient'")
        slot = self._pick_slot(clinician if kind == "provider" else None, patient, appointment)
        pat = self.chart.patient(slot.patient)
        assert pat is not None
        if patient and self.chart.patient(patient) != pat:
            raise ValueError(f"patient {patient!r} is not the patient of that appointment")
        doc = None
        if kind == "provider":
            doc = (
                self.chart.clinician(clinician)
                if clinician
                else self.chart.clinician(slot.clinician)
            )
            if doc is None:
                raise ValueError(f"unknown clinician {clinician!r}")
        iss = iss or self.fhir_base
        if iss not in self.known_bases():
            raise ValueError(f"iss {iss!r} is not a FHIR base of this EHR")
        token = self.new_launch_token()
        url = with_query(self.launch_urls[kind], {"iss": iss, "launch": token})
        launch = Launch(token, kind, slot, pat, doc, iss, url, time.time() + self.launch_lifetime)
        with self._lock:
            self._stores.purge(time.time())
            self._stores.launches[token] = launch
        return launch

    def _pick_slot(
        self, clinician: str | None, patient: str | None, appointment: str | None
    ) -> Slot:
        if appointment:
            slot = self.chart.slot(appointment)
            if slot is None:
                raise ValueError(f"unknown appointment {appointment!r}")
            return slot
        if clinician and self.chart.clinician(clinician) is None:
            raise ValueError(f"unknown clinician {clinician!r}")
        if patient and self.chart.patient(patient) is None:
            raise ValueError(f"unknown patient {patient!r}")
        found = self.chart.slots(clinician=clinician, patient=patient)
        if not found:
            raise ValueError("no appointment today for that clinician / patient")
        return found[0]

    def _launch_for(self, token: str) -> Launch:
        with self._lock:
            launch = self._stores.launches.get(token)
        if launch is None or launch.used or launch.expires_at < time.time():
            raise SmartError(
                "invalid_request", "The launch token is unknown, expired or already used."
            )
        return launch

    # -- token-response context helpers for the vendors ----------------------------------------
    def launch_ids(self, grant: Grant) -> dict[str, str]:
        """FHIR ids of the launch (or patient sign-in) context."""
        launch = grant.launch
        if launch is None:
            assert isinstance(grant.user, Patient)
            return {"patient": self.chart.id_of(grant.user)}
        doc = self.chart.clinician(launch.slot.clinician)
        assert doc is not None
        dept = self.chart.department(doc.department)
        assert dept is not None
        return {
            "patient": self.chart.id_of(launch.patient),
            "encounter": launch.slot.encounter_ids[self.vendor],
            "appointment": self.chart.id_of(launch.slot),
            "location": self.chart.id_of(dept),
            "department": dept.epic_department_id,
        }
