"""A generic SMART on FHIR EHR; ``epic.py`` and ``cerner.py`` only set URL shapes, token-response
context fields, issuer and defaults.

What it speaks (see README.md in this folder for every URL):
- discovery: ``{base}/.well-known/smart-configuration``, ``{base}/metadata``, the issuer's
  ``openid-configuration`` and JWKS; misbehaving copies under ``/variant/{kind}`` (variants.py);
- authorize (GET or form POST): EHR launch with a launch token this EHR minted (no sign-in page),
  or standalone with a demo-person picker; errors go back to a *valid* redirect URI;
- token: authorization_code (PKCE S256, single-use codes bound to client, redirect URI and
  verifier) and client_credentials (Backend Services), with client_secret_basic or
  private_key_jwt checked for real (clients.py); id_token RS256;
- FHIR R4 reads and Appointment search with bearer tokens;
- pages: the clinician schedule and the patient portal with "Begin virtual visit" buttons;
- controls under ``/_sandbox/{name}/`` and the same in Python (``sandbox.epic.mint_launch()``).
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import hashlib
import html as html_lib
import json
import re
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlencode, urljoin, urlsplit

import requests
from werkzeug.routing import Rule
from werkzeug.utils import redirect
from werkzeug.wrappers import Request, Response

from dev.sandbox import certs
from dev.sandbox.ehr import discovery, idtoken, pages
from dev.sandbox.ehr import scopes as scope_tools
from dev.sandbox.ehr.clients import (
    AUTHORIZATION_CODE,
    CLIENT_CREDENTIALS,
    CLIENT_SECRET_BASIC,
    PRIVATE_KEY_JWT,
    ClientAuthenticator,
    ClientRegistry,
    SmartClient,
    client_from_json,
    read_presented,
)
from dev.sandbox.ehr.data import (
    CLINICIANS,
    PATIENTS,
    Chart,
    Clinician,
    Patient,
    Slot,
    department,
    today,
)
from dev.sandbox.ehr.errors import SmartError
from dev.sandbox.ehr.variants import VARIANTS, VariantContext, move_host
from dev.sandbox.entra.keys import KeySet, load_or_create_key
from dev.sandbox.standin import StandIn, html_response, json_response, read_json

if TYPE_CHECKING:
    from dev.sandbox.state import SandboxState

CODE_LIFETIME = 60
LAUNCH_LIFETIME = 300
SIGN_IN_LIFETIME = 600
BACKEND_TOKEN_LIFETIME = 300
CONNECTOR_URL = "http://127.0.0.1:7071"
DEFAULT_REDIRECT_URI = f"{CONNECTOR_URL}/api/launch/callback"
DEFAULT_JWKS_URL = f"{CONNECTOR_URL}/api/.well-known/jwks.json"
FHIR_JSON = "application/fhir+json; charset=utf-8"
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_SIGN_IN_FORM = re.compile(
    r"<form method='post' action='([^']+)'><input type='hidden' name='request_id' value='([^']+)'>"
)
_FIRST_USER = re.compile(r"name='user' value='([^']+)'")
_VERIFIER_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")

# Per-EHR switches for tests; every key is listed here with its generic default. Subclasses
# override some defaults (QUIRK_DEFAULTS). Set with ``set_quirks`` or POST /_sandbox/{ehr}/quirks.
QUIRKS: dict[str, str] = {
    "omit_context": "token-response fields to leave out, e.g. ['appointment']",
    "extra_context": "fields merged into every token response, e.g. {'csn': '123'}",
    "bad_id_token": f"None or one of {', '.join(idtoken.BAD_KINDS)}",
    "rfc9207_iss": "add iss (the issuer) to the authorize callback, RFC 9207",
    "authorize_error": "{'error': 'access_denied', ...}: the next authorize answers with it, once",
    "advertised_host": "e.g. 'localhost': normal bases advertise authorize + token on that host",
    "need_patient_banner": "value of need_patient_banner in launch token responses",
    "user_field": "name of the extra user-id field (Epic epicUserID), None to omit",
    "expires_in": "access token lifetime in seconds (token response expires_in)",
    "slow_seconds": "how long the 'slow' variant waits before answering",
}
GENERIC_QUIRKS: dict[str, Any] = {
    "omit_context": [],
    "extra_context": {},
    "bad_id_token": None,
    "rfc9207_iss": False,
    "authorize_error": None,
    "advertised_host": None,
    "need_patient_banner": False,
    "user_field": None,
    "expires_in": 3600,
    "slow_seconds": 12.0,
}


@dataclass
class Connector:
    """Where our app is, as the EHR's app registration records it (from the sandbox settings,
    changed by ``configure_connector``; ``reset`` goes back to it)."""

    redirect_uris: list[str]
    jwks_url: str
    secret: str
    launch_urls: dict[str, str]


@dataclass
class Launch:
    """A launch token: what "Begin virtual visit" hands to the app, bound to its context."""

    token: str
    kind: str  # provider | patient
    slot: Slot
    patient: Patient
    clinician: Clinician | None  # the user of a provider launch
    iss: str
    url: str  # the app's launch URL with iss and launch
    expires_at: float
    used: bool = False

    def to_json(self, chart: Chart) -> dict[str, Any]:
        return {
            "launch": self.token,
            "launch_url": self.url,
            "iss": self.iss,
            "kind": self.kind,
            "expires_in": max(0, int(self.expires_at - time.time())),
            "appointment": chart.id_of(self.slot),
            "encounter": self.slot.encounter_ids[chart.vendor],
            "patient": chart.id_of(self.patient),
            "practitioner": chart.id_of(self.clinician) if self.clinician else None,
        }


@dataclass
class AuthRequest:
    client: SmartClient
    redirect_uri: str
    scopes: list[str]
    state: str
    nonce: str | None
    code_challenge: str
    aud: str
    persona: str  # provider | patient
    launch: Launch | None
    expires_at: float


@dataclass
class Grant:
    """What a code (and then an access token) stands for."""

    client_id: str
    redirect_uri: str
    code_challenge: str
    scopes: list[str]  # granted
    nonce: str | None
    aud: str
    user: Clinician | Patient | None
    launch: Launch | None

    @property
    def user_type(self) -> str:
        return "Patient" if isinstance(self.user, Patient) else "Practitioner"


@dataclass
class Code:
    grant: Grant
    expires_at: float
    used: bool = False


@dataclass
class AccessToken:
    client_id: str
    scopes: list[str]
    expires_at: float
    grant: Grant | None  # None for Backend Services


@dataclass
class _Stores:
    launches: dict[str, Launch] = field(default_factory=dict)
    pending: dict[str, AuthRequest] = field(default_factory=dict)
    codes: dict[str, Code] = field(default_factory=dict)
    tokens: dict[str, AccessToken] = field(default_factory=dict)

    def purge(self, now: float) -> None:
        # Used codes and launches stay a while, so a replay reads "already used".
        self.launches = {k: v for k, v in self.launches.items() if v.expires_at + 600 > now}
        self.pending = {k: v for k, v in self.pending.items() if v.expires_at > now}
        self.codes = {k: v for k, v in self.codes.items() if v.expires_at + 600 > now}
        self.tokens = {k: v for k, v in self.tokens.items() if v.expires_at > now}


class EhrStandIn(StandIn):
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
        self._stores = _Stores()
        self._lock = threading.Lock()
        super().__init__(state)
        self._restore()

    def _restore(self) -> None:
        self.code_lifetime = CODE_LIFETIME
        self.launch_lifetime = LAUNCH_LIFETIME
        self.quirks = _copy({**GENERIC_QUIRKS, **self.QUIRK_DEFAULTS})
        self.launch_urls = dict(self.connector.launch_urls)
        self.connection_status = {}
        self.keys.restore()
        self.clients.reset()
        self.authenticator.reset()
        with self._lock:
            self._stores = _Stores()

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
                f"{v}_CLIENT_SECRET", f"{self.vendor}-local-secret-not-for-production"
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
        checked = {name: _check_quirk(name, value) for name, value in changes.items()}
        self.quirks.update(checked)
        return _copy(self.quirks)

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

    # -- addresses ----------------------------------------------------------------------------
    @property
    def fhir_base(self) -> str:
        return self.url(self.fhir_paths["R4"])

    @property
    def dstu2_base(self) -> str | None:
        path = self.fhir_paths.get("DSTU2")
        return self.url(path) if path else None

    def variant_base(self, kind: str) -> str:
        if kind not in VARIANTS:
            raise KeyError(f"unknown variant {kind!r}; known: {sorted(VARIANTS)}")
        return self.url(f"/variant/{kind}{self.fhir_paths['R4']}")

    @property
    def smart_configuration_url(self) -> str:
        return f"{self.fhir_base}/.well-known/smart-configuration"

    @property
    def authorize_url(self) -> str:
        """The advertised authorization endpoint."""
        return self.url(self.advertised_authorize_path)

    @property
    def authorize_urls(self) -> dict[str, str]:
        """Every authorization endpoint (Cerner: one per persona) -> its persona."""
        return {self.url(p): persona or "by scopes" for p, persona in self.authorize_paths.items()}

    @property
    def token_url(self) -> str:
        return self.url(self.token_path)

    @property
    def issuer(self) -> str:
        return self.url(self.issuer_path)

    @property
    def openid_configuration_url(self) -> str:
        return self.issuer.rstrip("/") + "/.well-known/openid-configuration"

    @property
    def jwks_uri(self) -> str:
        return self.url(self.jwks_path)

    @property
    def schedule_url(self) -> str:
        return self.url("/schedule")

    @property
    def portal_url(self) -> str:
        return self.url(self.portal_path)

    @property
    def control_url(self) -> str:
        return f"{self.state.base_url}/_sandbox/{self.name}"

    def known_bases(self) -> list[str]:
        """Every FHIR base of this EHR: valid ``iss`` / ``aud`` values, compared exactly."""
        bases = [self.url(path) for path in self.fhir_paths.values()]
        return bases + [self.variant_base(kind) for kind in VARIANTS]

    def describe(self) -> dict[str, str]:
        lines = {"FHIR R4 base (iss)": self.fhir_base}
        if self.dstu2_base:
            lines["FHIR DSTU2 base"] = self.dstu2_base
        lines.update(
            {
                "smart-configuration": self.smart_configuration_url,
                "authorize": " | ".join(self.authorize_urls),
                "token": self.token_url,
                "issuer": self.issuer,
                "JWKS": self.jwks_uri,
                "schedule (provider launch)": self.schedule_url,
                f"{self.portal_name} (patient launch)": self.portal_url,
                "launch URLs": f"{self.launch_urls['provider']} | {self.launch_urls['patient']}",
                "clients": ", ".join(
                    f"{c.client_id} ({c.auth_method})" for c in self.clients.all()
                ),
                "variants": self.url(f"/variant/{{kind}}{self.fhir_paths['R4']}")
                + f"  kinds: {', '.join(VARIANTS)}",
                "control": f"{self.control_url}/  (launch, clients, quirks, settings, data)",
            }
        )
        return lines

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
            Rule(self.portal_path, endpoint=self.portal, methods=["GET", "POST"]),
            Rule("/smart-style.json", endpoint=self.smart_style, methods=["GET"]),
            Rule("/oauth2-errors", endpoint=self.error_catalogue, methods=["GET"]),
        ]
        return rules

    def control_routes(self) -> list[Rule]:
        return [
            Rule("/", endpoint=self.c_summary, methods=["GET"]),
            Rule("/launch", endpoint=self.c_launch, methods=["POST"]),
            Rule("/clients", endpoint=self.c_clients, methods=["GET"]),
            Rule("/clients", endpoint=self.c_put_client, methods=["POST"]),
            Rule("/clients/<client_id>", endpoint=self.c_client, methods=["GET", "DELETE"]),
            Rule("/quirks", endpoint=self.c_quirks, methods=["GET", "POST"]),
            Rule("/settings", endpoint=self.c_settings, methods=["GET", "POST"]),
            Rule("/rotate-key", endpoint=self.c_rotate_key, methods=["POST"]),
            Rule("/data", endpoint=self.c_data, methods=["GET"]),
        ]

    # -- discovery ------------------------------------------------------------------------------
    def _base(self, version: str, variant: str | None) -> str:
        return self.variant_base(variant) if variant else self.url(self.fhir_paths[version])

    def _smart_doc(self, version: str, variant: str | None) -> dict[str, Any]:
        authorize, token = self.authorize_url, self.token_url
        host = self.quirks["advertised_host"]
        if host and not variant:
            authorize, token = move_host(authorize, host), move_host(token, host)
        doc = discovery.smart_configuration(
            issuer=self.issuer,
            jwks_uri=self.jwks_uri,
            authorization_endpoint=authorize,
            token_endpoint=token,
            permission_v2=self.permission_v2,
            iss_parameter=bool(self.quirks["rfc9207_iss"]),
        )
        if variant and VARIANTS[variant].edit is not None:
            doc = VARIANTS[variant].edit(doc, self._variant_context(variant, "smart"))  # type: ignore[misc]
        return doc

    def _variant_context(self, variant: str, document: str) -> VariantContext:
        tail = "/.well-known/smart-configuration" if document == "smart" else "/metadata"
        return VariantContext(
            port=int(urlsplit(self.state.base_url).port or 443),
            normal_url=self.fhir_base + tail,
            slow_seconds=float(self.quirks["slow_seconds"]),
        )

    def _misbehave(self, variant: str | None, document: str) -> Response | None:
        """The variant's own answer, if it replaces the document (after sleeping if slow)."""
        if variant is None:
            return None
        spec = VARIANTS.get(variant)
        if spec is None:
            return _outcome(404, "not-found", f"No variant {variant!r}.")
        ctx = self._variant_context(variant, document)
        if spec.sleep:
            time.sleep(ctx.slow_seconds)
        if spec.answer is None:
            return None
        status, headers, body = spec.answer(ctx)
        return Response(body, status=status, headers=headers)

    def smart_configuration(
        self, request: Request, version: str, variant: str | None = None
    ) -> Response:
        answer = self._misbehave(variant, "smart")
        if answer is not None:
            return answer
        return json_response(self._smart_doc(version, variant))

    def metadata(self, request: Request, version: str, variant: str | None = None) -> Response:
        answer = self._misbehave(variant, "metadata")
        if answer is not None:
            return answer
        doc = discovery.capability_statement(
            self._smart_doc(version, variant),
            self._base(version, variant),
            version,
            self.software,
            today().isoformat(),
        )
        return _fhir_json(doc)

    def openid_configuration(self, request: Request) -> Response:
        return json_response(
            discovery.openid_configuration(
                issuer=self.issuer,
                jwks_uri=self.jwks_uri,
                authorization_endpoint=self.authorize_url,
                token_endpoint=self.token_url,
            )
        )

    def jwks_endpoint(self, request: Request) -> Response:
        return json_response(idtoken.jwks(self.keys), headers={"Cache-Control": "max-age=300"})

    def smart_style(self, request: Request) -> Response:
        return json_response(
            {
                "color_background": "#edeae3",
                "color_error": "#9e2d2d",
                "color_highlight": "#69b5ce",
                "color_modal_backdrop": "",
                "color_success": "#498e49",
                "color_text": "#303030",
                "dim_border_radius": "6px",
                "dim_font_size": "13px",
                "dim_spacing_size": "20px",
                "font_family_body": "system-ui, sans-serif",
                "font_family_heading": "system-ui, sans-serif",
            }
        )

    def error_catalogue(self, request: Request) -> Response:
        rows = "".join(
            f"<li id='{e}'><code>{e}</code></li>"
            for e in (
                "invalid_request",
                "invalid_client",
                "invalid_grant",
                "invalid_scope",
                "unauthorized_client",
                "unsupported_response_type",
                "unsupported_grant_type",
                "access_denied",
            )
        )
        return html_response(pages.page("OAuth errors", self.vendor_title, f"<ul>{rows}</ul>"))

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
        url = _with_query(self.launch_urls[kind], {"iss": iss, "launch": token})
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

    # -- authorize ----------------------------------------------------------------------------
    def authorize(self, request: Request, persona: str | None) -> Response:
        if request.method == "POST" and "request_id" in request.form:
            return self._signed_in(request)
        params = request.args if request.method == "GET" else request.form
        client = self.clients.get(params.get("client_id"))
        if client is None:
            return self._error_page("invalid_client", "Unknown client_id.")
        redirect_uri = params.get("redirect_uri", "")
        if redirect_uri not in client.redirect_uris:
            return self._error_page(
                "invalid_request",
                "redirect_uri does not exactly match a redirect URI registered for this client.",
            )
        state = params.get("state")
        try:
            pending = self._check_authorize(params, client, redirect_uri, persona)
            self._injected_authorize_error()
        except SmartError as exc:
            return self._redirect_error(redirect_uri, exc, state)
        if pending.launch is not None:
            return self._issue_code(pending, pending.launch.clinician or pending.launch.patient)
        request_id = secrets.token_urlsafe(24)
        with self._lock:
            self._stores.purge(time.time())
            self._stores.pending[request_id] = pending
        people = (
            [_person_of_patient(p) for p in PATIENTS]
            if pending.persona == "patient"
            else [_person_of_clinician(c, self.vendor) for c in CLINICIANS]
        )
        return html_response(
            pages.sign_in_page(
                self.vendor_title, request.path, request_id, client.name or client.client_id, people
            )
        )

    def _check_authorize(
        self, params: Mapping[str, str], client: SmartClient, redirect_uri: str, persona: str | None
    ) -> AuthRequest:
        if AUTHORIZATION_CODE not in client.grant_types:
            raise SmartError("unauthorized_client", "This client may not use authorization_code.")
        if params.get("response_type") != "code":
            raise SmartError("unsupported_response_type", "response_type must be 'code'.")
        state = params.get("state")
        if not state:
            raise SmartError("invalid_request", "state is required.")
        aud = params.get("aud")
        if not aud:
            raise SmartError("invalid_request", "aud (the FHIR base URL) is required.")
        if aud not in self.known_bases():
            raise SmartError(
                "invalid_request",
                "aud is not a FHIR base URL of this server (compared exactly, a trailing "
                "slash counts).",
            )
        challenge = params.get("code_challenge", "")
        if not challenge:
            raise SmartError("invalid_request", "PKCE is required: code_challenge is missing.")
        if params.get("code_challenge_method") != "S256":
            raise SmartError("invalid_request", "code_challenge_method must be S256.")
        requested = self._check_scopes(params.get("scope", ""), client)
        launch = None
        if params.get("launch"):
            launch = self._launch_for(params["launch"])
            if "launch" not in requested:
                raise SmartError("invalid_scope", "An EHR launch needs the 'launch' scope.")
            if launch.iss != aud:
                raise SmartError("invalid_request", "aud is not the iss this launch was given.")
        elif "launch" in requested:
            raise SmartError("invalid_request", "The 'launch' scope needs a launch parameter.")
        return AuthRequest(
            client=client,
            redirect_uri=redirect_uri,
            scopes=requested,
            state=state,
            nonce=params.get("nonce") or None,
            code_challenge=challenge,
            aud=aud,
            persona=persona or _persona_by_scopes(requested, launch),
            launch=launch,
            expires_at=time.time() + SIGN_IN_LIFETIME,
        )

    def _check_scopes(self, scope: str, client: SmartClient) -> list[str]:
        requested = list(dict.fromkeys(scope.split()))
        if not requested:
            raise SmartError("invalid_scope", "scope is required.")
        for name in requested:
            if self.vendor == "cerner" and scope_tools.is_wildcard(name):
                raise SmartError("invalid_scope", f"Wildcard scopes are not supported: {name}.")
            if name not in client.scopes:
                raise SmartError("invalid_scope", f"Scope not allowed for this client: {name}.")
        return requested

    def _injected_authorize_error(self) -> None:
        with self._lock:
            injected, self.quirks["authorize_error"] = self.quirks["authorize_error"], None
        if injected:
            raise SmartError(
                injected.get("error", "access_denied"),
                injected.get("error_description", "The user denied the request (sandbox quirk)."),
            )

    def _signed_in(self, request: Request) -> Response:
        with self._lock:
            pending = self._stores.pending.pop(request.form["request_id"], None)
        if pending is None or pending.expires_at < time.time():
            return self._error_page(
                "invalid_request", "This sign-in expired or was already used; start again."
            )
        key = request.form.get("user", "")
        user: Clinician | Patient | None = (
            self.chart.patient(key) if pending.persona == "patient" else self.chart.clinician(key)
        )
        if user is None:
            return self._error_page("invalid_request", "Unknown demo user.")
        return self._issue_code(pending, user)

    def _issue_code(self, pending: AuthRequest, user: Clinician | Patient | None) -> Response:
        if pending.launch is not None:
            with self._lock:  # single use, decided atomically
                if pending.launch.used:
                    return self._redirect_error(
                        pending.redirect_uri,
                        SmartError("invalid_request", "The launch token was already used."),
                        pending.state,
                    )
                pending.launch.used = True
        granted = [s for s in pending.scopes if s not in pending.client.grant_less]
        grant = Grant(
            client_id=pending.client.client_id,
            redirect_uri=pending.redirect_uri,
            code_challenge=pending.code_challenge,
            scopes=granted,
            nonce=pending.nonce,
            aud=pending.aud,
            user=user,
            launch=pending.launch,
        )
        code = secrets.token_urlsafe(32)
        with self._lock:
            self._stores.codes[code] = Code(grant, time.time() + self.code_lifetime)
        return redirect(
            _with_query(
                pending.redirect_uri, {"code": code, "state": pending.state, **self._iss()}
            ),
            302,
        )

    def _iss(self) -> dict[str, str]:
        return {"iss": self.issuer} if self.quirks["rfc9207_iss"] else {}

    def _error_params(self, exc: SmartError, state: str | None) -> dict[str, str]:
        params = {"error": exc.error, "error_description": exc.description}
        if self.error_uri:
            params["error_uri"] = f"{self.url('/oauth2-errors')}#{exc.error}"
        if state:
            params["state"] = state
        return params

    def _redirect_error(self, redirect_uri: str, exc: SmartError, state: str | None) -> Response:
        return redirect(
            _with_query(redirect_uri, {**self._error_params(exc, state), **self._iss()}), 302
        )

    def _error_page(self, error: str, description: str) -> Response:
        return html_response(pages.error_page(self.vendor_title, error, description), 400)

    # -- token ---------------------------------------------------------------------------------
    def token(self, request: Request) -> Response:
        try:
            presented = read_presented(request)
            token_urls = [self.token_url, f"https://{request.host}{request.path}"]
            client = self.authenticator.authenticate(presented, token_urls)
            grant_type = request.form.get("grant_type", "")
            if grant_type == AUTHORIZATION_CODE:
                body = self._authorization_code(client, request.form)
            elif grant_type == CLIENT_CREDENTIALS:
                body = self._client_credentials(client, request.form)
            else:
                raise SmartError("unsupported_grant_type", f"grant_type {grant_type!r}.")
        except SmartError as exc:
            headers = dict(_NO_STORE)
            if exc.status == 401:
                headers["WWW-Authenticate"] = 'Basic realm="token"'
            return json_response(self._error_params(exc, None), exc.status, headers)
        return json_response(body, headers=_NO_STORE)

    def _authorization_code(self, client: SmartClient, form: Mapping[str, str]) -> dict[str, Any]:
        if AUTHORIZATION_CODE not in client.grant_types:
            raise SmartError("unauthorized_client", "This client may not use authorization_code.")
        with self._lock:
            code = self._stores.codes.get(form.get("code", ""))
            _check_code(code, client, form.get("redirect_uri", ""), form.get("code_verifier"))
            assert code is not None
            code.used = True
        grant = code.grant
        now = time.time()
        access = secrets.token_urlsafe(48)
        lifetime = int(self.quirks["expires_in"])
        with self._lock:
            self._stores.purge(now)
            self._stores.tokens[access] = AccessToken(
                client.client_id, grant.scopes, now + lifetime, grant
            )
        body: dict[str, Any] = {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": lifetime,
            "scope": " ".join(grant.scopes),
        }
        if "openid" in grant.scopes and grant.user is not None:
            body["id_token"] = self._id_token(grant, int(now))
        if grant.launch is not None or isinstance(grant.user, Patient):
            context = self.context_fields(grant)
            for name in self.quirks["omit_context"]:
                context.pop(name, None)
            body.update(context)
        body.update(self.quirks["extra_context"])
        return body

    def _id_token(self, grant: Grant, now: int) -> str:
        user = grant.user
        assert user is not None
        fhir_id = self.chart.id_of(user)
        claims = idtoken.claims(
            issuer=self.issuer,
            client_id=grant.client_id,
            subject=fhir_id,
            fhir_user=f"{grant.aud}/{grant.user_type}/{fhir_id}",
            username=self.username(user),
            nonce=grant.nonce,
            now=now,
            extra=self.id_token_extra(grant),
        )
        return idtoken.sign(self.keys, claims, self.quirks["bad_id_token"])

    def _client_credentials(self, client: SmartClient, form: Mapping[str, str]) -> dict[str, Any]:
        if client.auth_method != PRIVATE_KEY_JWT or CLIENT_CREDENTIALS not in client.grant_types:
            raise SmartError(
                "unauthorized_client",
                "Backend Services (client_credentials) needs a private_key_jwt client allowed "
                "to use it.",
            )
        requested = list(dict.fromkeys(form.get("scope", "").split()))
        if not requested:
            raise SmartError("invalid_scope", "scope is required.")
        for name in requested:
            if scope_tools.context_of(name) != "system":
                raise SmartError("invalid_scope", f"Backend Services takes system/ scopes: {name}.")
            if name not in client.scopes:
                raise SmartError("invalid_scope", f"Scope not allowed for this client: {name}.")
        granted = [s for s in requested if s not in client.grant_less]
        access = secrets.token_urlsafe(48)
        now = time.time()
        with self._lock:
            self._stores.purge(now)
            self._stores.tokens[access] = AccessToken(
                client.client_id, granted, now + BACKEND_TOKEN_LIFETIME, None
            )
        return {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": BACKEND_TOKEN_LIFETIME,
            "scope": " ".join(granted),
        }

    # -- FHIR ----------------------------------------------------------------------------------
    def _bearer(self, request: Request) -> AccessToken | Response:
        header = request.headers.get("Authorization", "")
        value = header[7:].strip() if header[:7].lower() == "bearer " else ""
        with self._lock:
            token = self._stores.tokens.get(value) if value else None
        if token is None or token.expires_at < time.time():
            response = _outcome(401, "login", "A valid bearer access token is required.")
            error = ', error="invalid_token"' if value else ""
            response.headers["WWW-Authenticate"] = f'Bearer realm="{self.fhir_base}"{error}'
            return response
        return token

    def fhir_read(
        self,
        request: Request,
        resource_type: str,
        fhir_id: str,
        version: str,
        variant: str | None = None,
    ) -> Response:
        token = self._bearer(request)
        if isinstance(token, Response):
            return token
        if version != "R4" or resource_type not in scope_tools.RESOURCES:
            return _outcome(404, "not-supported", f"{resource_type} reads are not offered here.")
        if not scope_tools.allows(token.scopes, resource_type, "read"):
            return _outcome(403, "forbidden", f"The token's scopes do not allow {resource_type}.")
        chart = Chart(self.vendor, self._base(version, variant))
        resource = chart.resource(resource_type, fhir_id)
        if resource is None:
            return _outcome(404, "not-found", f"{resource_type}/{fhir_id} not found.")
        return _fhir_json(resource)

    def fhir_search(
        self, request: Request, resource_type: str, version: str, variant: str | None = None
    ) -> Response:
        token = self._bearer(request)
        if isinstance(token, Response):
            return token
        if version != "R4" or resource_type != "Appointment":
            return _outcome(404, "not-supported", f"{resource_type} search is not offered here.")
        if not scope_tools.allows(token.scopes, resource_type, "search"):
            return _outcome(403, "forbidden", "The token's scopes do not allow Appointment.")
        args = request.args
        dates = args.getlist("date")
        refs = {
            name: _ref_id(args.get(name), kind)
            for name, kind in (
                ("practitioner", "Practitioner"),
                ("patient", "Patient"),
                ("location", "Location"),
            )
            if args.get(name)
        }
        if not dates or not refs:
            return _outcome(
                400,
                "required",
                "Appointment search needs date and one of patient, practitioner or location.",
            )
        try:
            tests = [_date_test(d) for d in dates]
        except ValueError as exc:
            return _outcome(400, "value", str(exc))
        chart = Chart(self.vendor, self._base(version, variant))
        day = today()
        found = chart.slots(clinician=refs.get("practitioner"), patient=refs.get("patient"))
        if ("practitioner" in refs and chart.clinician(refs["practitioner"]) is None) or (
            "patient" in refs and chart.patient(refs["patient"]) is None
        ):
            found = []
        if "location" in refs:
            dept = chart.department(refs["location"])
            found = [
                s
                for s in found
                if dept is not None
                and (c := chart.clinician(s.clinician))
                and c.department == dept.key
            ]
        found = [s for s in found if all(test(s.start(day)) for test in tests)]
        resources = [chart.appointment_resource(s, day) for s in found]
        self_url = f"{chart.base_url}/Appointment?{request.query_string.decode()}"
        return _fhir_json(chart.search_bundle(resources, self_url))

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

    # -- pages ---------------------------------------------------------------------------------
    def schedule(self, request: Request) -> Response:
        if request.method == "POST":
            return self._launch_from_page(request, "provider")
        key = request.args.get("clinician", CLINICIANS[0].key)
        doc = self.chart.clinician(key)
        if doc is None:
            return self._error_page("invalid_request", f"Unknown clinician {key!r}.")
        day = today()
        rows = []
        for slot in self.chart.slots(clinician=doc.key):
            pat = self.chart.patient(slot.patient)
            assert pat is not None
            appt_id = self.chart.id_of(slot)
            rows.append(
                pages.Row(
                    appt_id,
                    slot.start(day).strftime("%H:%M"),
                    pat.name,
                    slot.reason,
                    "booked",
                    self.connection_status.get(appt_id),
                )
            )
        people = [_person_of_clinician(c, self.vendor) for c in CLINICIANS]
        body = pages.schedule_page(
            self.vendor_title,
            request.path,
            people,
            _person_of_clinician(doc, self.vendor),
            rows,
            request.path,
            self.launch_urls["provider"],
            self.fhir_base,
            day.isoformat(),
        )
        return html_response(body)

    def portal(self, request: Request) -> Response:
        if request.method == "POST":
            return self._launch_from_page(request, "patient")
        key = request.args.get("patient", PATIENTS[0].key)
        pat = self.chart.patient(key)
        if pat is None:
            return self._error_page("invalid_request", f"Unknown patient {key!r}.")
        day = today()
        rows = []
        for slot in self.chart.slots(patient=pat.key):
            doc = self.chart.clinician(slot.clinician)
            assert doc is not None
            rows.append(
                pages.Row(
                    self.chart.id_of(slot),
                    slot.start(day).strftime("%H:%M"),
                    doc.name,
                    slot.reason,
                    "booked",
                    None,
                )
            )
        body = pages.portal_page(
            self.vendor_title,
            self.portal_name,
            request.path,
            [_person_of_patient(p) for p in PATIENTS],
            _person_of_patient(pat),
            rows,
            request.path,
            self.launch_urls["patient"],
            day.isoformat(),
        )
        return html_response(body)

    def _launch_from_page(self, request: Request, kind: str) -> Response:
        form = request.form
        try:
            launch = self.mint_launch(
                kind,
                clinician=form.get("clinician") if kind == "provider" else None,
                patient=form.get("patient") if kind == "patient" else None,
                appointment=form.get("appointment"),
            )
        except ValueError as exc:
            return self._error_page("invalid_request", str(exc))
        return redirect(launch.url, 303)

    # -- a browser for tests ----------------------------------------------------------------------
    def standalone_sign_in(self, authorize_url: str, user: str | None = None) -> requests.Response:
        """Play the person at a standalone sign-in (see `play_standalone_sign_in`)."""
        ca = certs.certs_dir(self.state.state_dir) / certs.CA_CERT_NAME
        return play_standalone_sign_in(authorize_url, str(ca), user)

    # -- controls (/_sandbox/{name}/...) ----------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        return {
            "fhir_base": self.fhir_base,
            "dstu2_base": self.dstu2_base,
            "smart_configuration": self.smart_configuration_url,
            "authorize": self.authorize_url,
            "authorize_urls": self.authorize_urls,
            "token": self.token_url,
            "issuer": self.issuer,
            "openid_configuration": self.openid_configuration_url,
            "jwks_uri": self.jwks_uri,
            "schedule": self.schedule_url,
            "portal": self.portal_url,
            "launch_urls": dict(self.launch_urls),
            "variants": {
                kind: {"base": self.variant_base(kind), "summary": v.summary, "expect": v.expect}
                for kind, v in VARIANTS.items()
            },
            "clients": [c.to_json() for c in self.clients.all()],
            "quirks": _copy(self.quirks),
            "quirk_help": QUIRKS,
        }

    def c_summary(self, request: Request) -> Response:
        return json_response(self.summary())

    def c_launch(self, request: Request) -> Response:
        body = read_json(request)
        allowed = {"kind", "clinician", "patient", "appointment", "iss", "variant"}
        unknown = set(body) - allowed
        if unknown:
            return _bad_control(f"unknown keys {sorted(unknown)}; known: {sorted(allowed)}")
        try:
            iss = body.get("iss")
            if body.get("variant"):
                iss = self.variant_base(body["variant"])
            launch = self.mint_launch(
                body.get("kind", "provider"),
                clinician=body.get("clinician"),
                patient=body.get("patient"),
                appointment=body.get("appointment"),
                iss=iss,
            )
        except (ValueError, KeyError) as exc:
            return _bad_control(str(exc))
        return json_response(launch.to_json(self.chart), 201)

    def c_clients(self, request: Request) -> Response:
        return json_response({"clients": [c.to_json() for c in self.clients.all()]})

    def c_put_client(self, request: Request) -> Response:
        """Create a client, or change the given fields of an existing one."""
        body = read_json(request)
        try:
            existing = self.clients.get(body.get("client_id"))
            if existing is not None:
                client = self.clients.update(existing.client_id, body)
            else:
                client = self.register_client(**body)
        except (ValueError, TypeError) as exc:
            return _bad_control(str(exc))
        return json_response(client.to_json(), 200 if existing else 201)

    def c_client(self, request: Request, client_id: str) -> Response:
        if request.method == "DELETE":
            removed = self.clients.remove(client_id)
            return json_response({"removed": removed}, 200 if removed else 404)
        client = self.clients.get(client_id)
        if client is None:
            return json_response({"error": "unknown client"}, 404)
        return json_response(client.to_json())

    def c_quirks(self, request: Request) -> Response:
        if request.method == "POST":
            try:
                self.set_quirks(**read_json(request))
            except ValueError as exc:
                return _bad_control(str(exc))
        return json_response({"quirks": _copy(self.quirks), "help": QUIRKS})

    def c_settings(self, request: Request) -> Response:
        if request.method == "POST":
            body = read_json(request)
            unknown = set(body) - {"provider_launch_url", "patient_launch_url"}
            if unknown:
                return _bad_control(f"unknown settings {sorted(unknown)}")
            try:
                self.set_launch_urls(
                    body.get("provider_launch_url"), body.get("patient_launch_url")
                )
            except ValueError as exc:
                return _bad_control(str(exc))
        return json_response(
            {
                "provider_launch_url": self.launch_urls["provider"],
                "patient_launch_url": self.launch_urls["patient"],
            }
        )

    def c_rotate_key(self, request: Request) -> Response:
        keep = read_json(request).get("keep_previous", True)
        return json_response({"kid": self.rotate_key(bool(keep))})

    def c_data(self, request: Request) -> Response:
        chart, day = self.chart, today()
        return json_response(
            {
                "clinicians": [
                    {
                        "key": c.key,
                        "name": c.name,
                        "id": chart.id_of(c),
                        "username": c.usernames[self.vendor],
                    }
                    for c in CLINICIANS
                ],
                "patients": [
                    {"key": p.key, "name": p.name, "id": chart.id_of(p)} for p in PATIENTS
                ],
                "appointments": [
                    {
                        "key": s.key,
                        "id": chart.id_of(s),
                        "encounter": s.encounter_ids[self.vendor],
                        "start": s.start(day).isoformat(),
                        "clinician": s.clinician,
                        "patient": s.patient,
                    }
                    for s in chart.slots()
                ],
            }
        )


# -- helpers ---------------------------------------------------------------------------------------


def _copy(quirks: Mapping[str, Any]) -> dict[str, Any]:
    return {
        k: (list(v) if isinstance(v, list) else dict(v) if isinstance(v, dict) else v)
        for k, v in quirks.items()
    }


def _check_quirk(name: str, value: Any) -> Any:
    checks: dict[str, Callable[[Any], bool]] = {
        "omit_context": lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
        "extra_context": lambda v: isinstance(v, dict),
        "bad_id_token": lambda v: v is None or v in idtoken.BAD_KINDS,
        "rfc9207_iss": lambda v: isinstance(v, bool),
        "authorize_error": lambda v: v is None or (isinstance(v, dict) and "error" in v),
        "advertised_host": lambda v: v is None or (isinstance(v, str) and v != ""),
        "need_patient_banner": lambda v: isinstance(v, bool),
        "user_field": lambda v: v is None or (isinstance(v, str) and v != ""),
        "expires_in": lambda v: isinstance(v, int) and not isinstance(v, bool) and v > 0,
        "slow_seconds": lambda v: isinstance(v, int | float) and v >= 0,
    }
    if name not in checks:
        raise ValueError(f"unknown quirk {name!r}; known: {sorted(checks)}")
    if isinstance(value, str) and name == "authorize_error":
        value = {"error": value}
    if not checks[name](value):
        raise ValueError(f"bad value for quirk {name!r}: {QUIRKS[name]}")
    return value


def _persona_by_scopes(scopes: list[str], launch: Launch | None) -> str:
    if launch is not None:
        return launch.kind
    contexts = {scope_tools.context_of(s) for s in scopes} - {None}
    return "patient" if contexts == {"patient"} else "provider"


def _person_of_clinician(c: Clinician, vendor: str) -> pages.Person:
    return pages.Person(c.key, c.name, f"{c.usernames[vendor]}, {department(c.department).name}")


def _person_of_patient(p: Patient) -> pages.Person:
    return pages.Person(p.key, p.name, f"born {p.birth_date}, MRN {p.mrn}")


def _with_query(url: str, params: Mapping[str, str]) -> str:
    joiner = "&" if urlsplit(url).query else "?"
    return f"{url}{joiner}{urlencode(params)}"


def _check_code(
    code: Code | None, client: SmartClient, redirect_uri: str, verifier: str | None
) -> None:
    if code is None:
        raise SmartError("invalid_grant", "The authorization code is not valid.")
    if code.used:
        raise SmartError("invalid_grant", "The authorization code was already used.")
    if code.expires_at < time.time():
        raise SmartError("invalid_grant", "The authorization code expired.")
    grant = code.grant
    if grant.client_id != client.client_id:
        raise SmartError("invalid_grant", "The code was issued to another client.")
    if redirect_uri != grant.redirect_uri:
        raise SmartError("invalid_grant", "redirect_uri differs from the authorize request.")
    if not verifier:
        raise SmartError("invalid_request", "code_verifier is required (PKCE).")
    valid = 43 <= len(verifier) <= 128 and set(verifier) <= _VERIFIER_CHARS
    if not valid or _s256(verifier) != grant.code_challenge:
        raise SmartError("invalid_grant", "code_verifier does not match the code_challenge.")


def _s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _ref_id(value: str | None, resource_type: str) -> str:
    return (value or "").removeprefix(f"{resource_type}/")


def _date_test(value: str) -> Callable[[dt.datetime], bool]:
    """A FHIR date search parameter (eq / ge / gt / le / lt prefix; date or dateTime)."""
    prefix = value[:2] if value[:2] in ("eq", "ge", "gt", "le", "lt", "ne") else "eq"
    raw = value[2:] if value[:2] == prefix else value
    try:
        if len(raw) == 10:
            day = dt.date.fromisoformat(raw)
            low = dt.datetime.combine(day, dt.time(0), tzinfo=dt.UTC)
            high = low + dt.timedelta(days=1)
        else:
            low = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
            if low.tzinfo is None:
                low = low.replace(tzinfo=dt.UTC)
            high = low + dt.timedelta(seconds=1)
    except ValueError:
        raise ValueError(f"date {value!r} is not a FHIR date or dateTime") from None
    tests: dict[str, Callable[[dt.datetime], bool]] = {
        "eq": lambda t: low <= t < high,
        "ne": lambda t: not (low <= t < high),
        "ge": lambda t: t >= low,
        "gt": lambda t: t >= high,
        "le": lambda t: t < high,
        "lt": lambda t: t < low,
    }
    return tests[prefix]


def _fhir_json(resource: dict[str, Any], status: int = 200) -> Response:
    return Response(json.dumps(resource), status=status, content_type=FHIR_JSON)


def _outcome(status: int, code: str, text: str) -> Response:
    return _fhir_json(
        {
            "resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": code, "diagnostics": text}],
        },
        status,
    )


def _bad_control(message: str) -> Response:
    return json_response({"error": message}, 400)


def play_standalone_sign_in(
    authorize_url: str, ca_file: str, user: str | None = None
) -> requests.Response:
    """Open an EHR stand-in's ``authorize_url``, pick ``user`` (a demo clinician or patient key;
    default the first one listed) and follow the redirects back to the app. Returns the app's
    final answer. Used in-process by tests and over HTTPS by ``make run``'s seeding."""
    with requests.Session() as browser:
        browser.trust_env = False
        browser.verify = ca_file
        page = browser.get(authorize_url, timeout=30)
        found = _SIGN_IN_FORM.search(page.text) if page.status_code == 200 else None
        if found is None:
            return page  # an error page, or already back at the app
        choice = user or _FIRST_USER.search(page.text).group(1)  # type: ignore[union-attr]
        action = urljoin(page.url, html_lib.unescape(found.group(1)))
        return browser.post(action, data={"request_id": found.group(2), "user": choice}, timeout=30)
