"""What an EHR stand-in keeps: where our app is, launches, authorize requests, grants, access
tokens; and the per-EHR quirks with their checks. Pending requests and codes are kept by the
shared OAuth core (dev/sandbox/oauth.py)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from dev.sandbox.ehr import idtoken
from dev.sandbox.ehr.chart import Chart
from dev.sandbox.ehr.clients import (
    SmartClient,
)
from dev.sandbox.ehr.data import (
    Clinician,
    Patient,
    Slot,
)

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
    "signed_in": "keep an EHR session (cookie) after the first pick on the sign-in page, so a "
    "standalone authorize answers at once; False: the picker on every sign-in (sessions.py)",
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
    "signed_in": True,
    # Write-back (writes.py): Epic's telehealth status codes and id types, and its service account.
    "connection_statuses": ["Connected", "InVisit", "Disconnected"],
    "external_id_types": ["FHIR", "CSN"],
    "service_account": {"username": "emp$TELEHEALTH", "password": "epic-service-local-secret"},
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


@dataclass
class Grant:
    """What a code (and then an access token) stands for."""

    client_id: str
    scopes: list[str]  # granted
    nonce: str | None
    aud: str
    user: Clinician | Patient | None
    launch: Launch | None

    @property
    def user_type(self) -> str:
        return "Patient" if isinstance(self.user, Patient) else "Practitioner"


@dataclass
class AccessToken:
    client_id: str
    scopes: list[str]
    expires_at: float
    grant: Grant | None  # None for Backend Services


@dataclass
class Stores:
    launches: dict[str, Launch] = field(default_factory=dict)
    tokens: dict[str, AccessToken] = field(default_factory=dict)

    def purge(self, now: float) -> None:
        # Used launches stay a while, so a replay reads "already used".
        self.launches = {k: v for k, v in self.launches.items() if v.expires_at + 600 > now}
        self.tokens = {k: v for k, v in self.tokens.items() if v.expires_at > now}


def copy_quirks(quirks: Mapping[str, Any]) -> dict[str, Any]:
    return {
        k: (list(v) if isinstance(v, list) else dict(v) if isinstance(v, dict) else v)
        for k, v in quirks.items()
    }


def check_quirk(name: str, value: Any) -> Any:
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
        "signed_in": lambda v: isinstance(v, bool),
        "connection_statuses": lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
        "external_id_types": lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
        "service_account": lambda v: isinstance(v, dict) and {"username", "password"} <= v.keys(),
    }
    if name not in checks:
        raise ValueError(f"unknown quirk {name!r}; known: {sorted(checks)}")
    if isinstance(value, str) and name == "authorize_error":
        value = {"error": value}
    if not checks[name](value):
        raise ValueError(f"bad value for quirk {name!r}: {QUIRKS[name]}")
    return value
