"""The endpoint's shapes: what the config API accepts and returns, and what is stored.

The same pydantic models validate requests and generate the OpenAPI document, so the documented API
and the enforced one cannot differ. Request models refuse unknown fields.
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from lib.ehr.profiles import Vendor
from lib.endpoints.secrets import SECRET_SETTING
from lib.smart.discovery import FhirVersion, PinnedHosts
from lib.storage import Entity

SLUG = r"^[a-z0-9](?:[a-z0-9-]{1,38}[a-z0-9])$"
# The patterns below are JSON Schema (ECMA-262) and pydantic (Rust regex) alike: plain classes,
# no look-arounds, so the OpenAPI document and the validators agree on every value.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST = rf"(?:{_LABEL}\.)*{_LABEL}"  # a host name or an IPv4 address (no IPv6 literals)
_PORT = r"(?:[1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
# An origin as CSP `frame-ancestors` takes it: https, a host name or IPv4 address, a real port.
ORIGIN = rf"^https://{_HOST}(?::{_PORT})?$"
# A FHIR base URL: absolute, a host, an optional port and an RFC 3986 path; no credentials,
# query or fragment. https only; local mode (the sandbox) also takes http (HTTP_OR_HTTPS_URL).
_PATH = r"(?:/(?:[A-Za-z0-9._~!$&'()*+,;=:@-]|%[0-9A-Fa-f]{2})*)*"
HTTPS_URL = rf"^https://{_HOST}(?::{_PORT})?{_PATH}$"
HTTP_OR_HTTPS_URL = HTTPS_URL.replace("^https://", "^https?://", 1)
# Free text: no control characters (C0, DEL, C1), no byte-order mark, no whitespace at either end.
# Nothing is trimmed silently: the document says what is accepted, and it is accepted as sent.
# (\x85 and \uFEFF are named because ECMA-262 and Rust disagree on whether they are \s.)
_VISIBLE = r"[^\s\x00-\x1f\x7f-\x9f\uFEFF]"
LINE = rf"^{_VISIBLE}(?:[^\x00-\x1f\x7f-\x9f\uFEFF]*{_VISIBLE})?$"  # one line
TEXT = rf"^{_VISIBLE}(?:[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\uFEFF]*{_VISIBLE})?$"  # lines
# A clinician mapping's key: lib/privacy.keyed_hash, 32 lower-case hex digits.
MAPPING_KEY = r"^[0-9a-f]{32}$"
GUID = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"


class Environment(StrEnum):
    TEST = "test"
    PRODUCTION = "production"


class EndpointStatus(StrEnum):
    INVALID = "invalid"  # the last validation found problems
    AWAITING_APPROVAL = "awaiting_approval"  # Epic: valid, the named approver has not approved
    AWAITING_TEST = "awaiting_test"  # production: the organization has no active test endpoint
    ACTIVE = "active"  # launches are accepted
    REJECTED = "rejected"  # the approver refused, with a reason
    DISABLED = "disabled"  # an admin switched it off


class _Strict(BaseModel):
    # defer_build: schemas are built on first use, keeping function_app's cold import cheap.
    model_config = ConfigDict(extra="forbid", defer_build=True)


def _base_url(value: str, info: ValidationInfo) -> str:
    """The FHIR base URL, as HTTPS_URL says; http too when validated with local_mode=True.

    The config API passes the deployment's local mode as the validation context, and its
    OpenAPI document shows the same pattern, so what the document allows is what is accepted.
    """
    local = bool((info.context or {}).get("local_mode"))
    if not re.fullmatch(HTTP_OR_HTTPS_URL if local else HTTPS_URL, value):
        if not value.startswith("https://") and not (local and value.startswith("http://")):
            raise ValueError("must be an absolute https URL")
        raise ValueError("must be https://host[:port]/path, without credentials, query or fragment")
    return value.rstrip("/")


# fhir_base_url; the pattern is for the OpenAPI document (`_base_url` is what enforces it).
_BASE_URL_SCHEMA = {"format": "uri", "pattern": HTTPS_URL}
BaseUrl = Annotated[str, Field(max_length=300, json_schema_extra=_BASE_URL_SCHEMA)]


class ClientSecretBasicConfig(_Strict):
    method: Literal["client_secret_basic"]
    secret_setting: Annotated[str, Field(pattern=SECRET_SETTING)] = Field(
        description="Name of the app setting holding the client secret (in Azure a Key Vault "
        "reference): EHR_SECRET_ and capitals, digits or _. The secret itself never passes "
        "through this API or its storage, and is sent only to the token hosts it is bound to."
    )


class StoredSecretBasic(ClientSecretBasicConfig):
    """As stored: a name from before the EHR_SECRET_ rule still reads (and is refused at use)."""

    secret_setting: str


class PrivateKeyJwtConfig(_Strict):
    method: Literal["private_key_jwt"]
    alg: Literal["RS384", "ES384"] = Field(
        default="RS384", description="Signing algorithm of the client assertion."
    )


# How we authenticate to the endpoint's token URL, as configured (lib/smart/client_auth.py has
# the implementations these select).
ClientAuthConfig = Annotated[
    ClientSecretBasicConfig | PrivateKeyJwtConfig, Field(discriminator="method")
]


# What the EHR is told of a visit (lib/writeback): the patient connected (on the way to or in
# the lobby), in the visit (admitted), left (or the visit ended). Each maps to a vendor code.
Milestone = Literal["connected", "in_visit", "left"]
_CODE_RE = r"^[A-Za-z0-9][A-Za-z0-9 ._-]*$"
_CODE = Annotated[str, Field(min_length=1, max_length=64, pattern=_CODE_RE)]


class BackendServicesAuth(_Strict):
    """SMART Backend Services: client_credentials with a JWT assertion signed by our key."""

    method: Literal["backend_services"]
    client_id: Annotated[str, Field(min_length=1, max_length=200, pattern=LINE)] = Field(
        description="The backend app's client id at the EHR (often not the launch app's)."
    )
    scopes: list[Annotated[str, Field(pattern=r"^system/[A-Za-z]+\.[a-z]+$")]] = Field(
        default_factory=list,
        max_length=10,
        description="system/ scopes to ask for; empty: what an Appointment PATCH needs "
        "(system/Appointment.read + .write, or .rs + .u where the server has permission-v2).",
    )
    alg: Literal["RS384", "ES384"] = Field(default="RS384", description="Assertion signing alg.")


class ServiceAccountAuth(_Strict):
    """Epic's telehealth web service with a service account: Basic + Epic-Client-ID."""

    method: Literal["service_account"]
    username: Annotated[str, Field(min_length=1, max_length=100, pattern=LINE)]
    secret_setting: Annotated[str, Field(pattern=SECRET_SETTING)] = Field(
        description="App setting holding the service account's password (EHR_SECRET_...)."
    )
    user_id: Annotated[str, Field(min_length=1, max_length=100, pattern=LINE)] | None = Field(
        default=None, description="Sent as Epic-User-ID when given."
    )
    user_id_type: Annotated[str, Field(min_length=1, max_length=40, pattern=LINE)] | None = Field(
        default=None, description="Sent as Epic-User-IDType when given (e.g. EXTERNAL)."
    )


WritebackAuth = Annotated[BackendServicesAuth | ServiceAccountAuth, Field(discriminator="method")]


class EpicStatusOptions(_Strict):
    """Epic's SetExternalConnectionStatus call: its codes live in customer guides, so all here."""

    path: Annotated[str, Field(max_length=200, pattern=r"^/[A-Za-z0-9/._-]+$")] = Field(
        default="/api/epic/2018/Telehealth/ContextLinking/SetExternalConnectionStatus",
        description="Path on the FHIR base's server (the part before /api/FHIR/R4).",
    )
    external_id_type: _CODE = Field(default="FHIR", description="ExternalIDType sent.")
    vendor_name: _CODE = Field(default="EHRVirtualVisitConnector", description="VendorName sent.")


def _milestone_keys(schema: dict[str, Any]) -> None:
    """The statuses map as the document should say it: the three milestones, each a code or
    null, nothing else (pydantic's `propertyNames` form loses the values' schema)."""
    code = {"anyOf": [{"type": "string", "minLength": 1, "maxLength": 64, "pattern": _CODE_RE},
                      {"type": "null"}]}  # fmt: skip
    schema.pop("propertyNames", None)
    schema["properties"] = {m: code for m in ("connected", "in_visit", "left")}
    schema["additionalProperties"] = False


class WritebackConfig(_Strict):
    enabled: bool = Field(default=False, strict=True, description="Write visit status back.")
    adapter: Literal["epic", "fhir"] | None = Field(
        default=None,
        description="epic: the telehealth connection status service; fhir: Appointment PATCH "
        "(Oracle Health and any FHIR R4 server). Default: the vendor's.",
    )
    auth: WritebackAuth | None = Field(
        default=None, description="How write-back calls authenticate (required when enabled)."
    )
    statuses: dict[Milestone, _CODE | None] = Field(
        default_factory=dict,
        description="Code per milestone (Epic ConnectionStatus, or Appointment.status); a "
        "milestone left out takes the adapter's default, null writes nothing for it.",
        json_schema_extra=_milestone_keys,
    )
    epic: EpicStatusOptions = Field(default_factory=EpicStatusOptions)


class Approver(_Strict):
    oid: Annotated[str, Field(pattern=GUID)] = Field(description="Entra object id of the approver.")
    display_name: Annotated[str, Field(min_length=1, max_length=120, pattern=LINE)]


class LaunchOptions(_Strict):
    open_teams_directly: bool = Field(
        default=False,
        strict=True,  # true or false, not 0 or "yes"
        description="Send the clinician straight to Teams instead of the visit page.",
    )
    ehr_origins: list[Annotated[str, Field(max_length=200, pattern=ORIGIN)]] = Field(
        default_factory=list,
        max_length=10,
        description="Origins allowed to frame the visit page (the EHR's web client), each "
        "exactly https://host or https://host:port: they go into CSP frame-ancestors as given.",
    )
    field_map: dict[
        Annotated[str, Field(pattern=r"^(ehr_user_id|department|csn)$")],
        Annotated[str, Field(min_length=1, max_length=64, pattern=LINE)],
    ] = Field(
        default_factory=dict,
        description="Token-response fields configured per customer (Epic), e.g. "
        '{"ehr_user_id": "epicUserID"}.',
        json_schema_extra={"additionalProperties": False},  # only the three names above
    )
    default_organizer: Annotated[str, Field(pattern=GUID)] | None = Field(
        default=None, description="Entra object id that organizes meetings a patient opens first."
    )
    allowed_presenters: Literal["organizer", "organization"] = Field(
        default="organizer",
        description="Who presents (and so may admit the patient from the lobby). Meetings the "
        "default organizer (a service account) organizes always use 'organization'.",
    )

    @field_validator("ehr_origins")
    @classmethod
    def _origins(cls, values: list[str]) -> list[str]:
        # The pattern admits only https://host[:port] with a port from 1 to 65535.
        return [v.lower() for v in values]


def _approver_rule(schema: dict) -> None:
    """Say in the schema what `create` enforces: vendors that need approval name an approver."""
    from lib.ehr.profiles import PROFILES

    needs = sorted(v.value for v, p in PROFILES.items() if p.needs_approval)
    others = sorted(v.value for v, p in PROFILES.items() if not p.needs_approval)
    schema["anyOf"] = [
        {
            "properties": {"vendor": {"enum": needs}, "approver": {"type": "object"}},
            "required": ["approver"],
        },
        {"properties": {"vendor": {"enum": others}}},
    ]


class EndpointCreate(_Strict):
    model_config = ConfigDict(json_schema_extra=_approver_rule)

    id: Annotated[str, Field(pattern=SLUG)] | None = Field(
        default=None,
        description="Short name used in launch URLs; made from organization, vendor and "
        "environment when omitted.",
    )
    fhir_base_url: BaseUrl = Field(
        description="The FHIR base URL the EHR sends as `iss` (Epic .../api/FHIR/R4, Cerner "
        ".../r4/{tenant}): https (http only in local mode), no credentials, query or fragment."
    )
    vendor: Vendor
    environment: Environment
    organization: Annotated[str, Field(min_length=1, max_length=100, pattern=LINE)] = Field(
        description="Organization or department label shown in reports."
    )
    client_id: Annotated[str, Field(min_length=1, max_length=200, pattern=LINE)]
    client_auth: ClientAuthConfig
    approver: Approver | None = Field(default=None, description="Required for Epic endpoints.")
    launch: LaunchOptions = Field(default_factory=LaunchOptions)
    writeback: WritebackConfig = Field(default_factory=WritebackConfig)

    _base_url = field_validator("fhir_base_url")(classmethod(lambda c, v, info: _base_url(v, info)))


def _unchanged(**schema_extra: Any) -> Any:
    """A patch field that may be absent (unchanged) but not null; its schema shows no default."""

    def extra(schema: dict[str, Any]) -> None:
        schema.pop("default", None)
        schema.update(schema_extra)

    return Field(default=None, json_schema_extra=extra)


class EndpointUpdate(_Strict):
    """A JSON merge patch: fields given replace the stored ones.

    Only `approver` may be null: it removes the approver, which an Epic endpoint refuses (409
    CFG-APPROVER-NOT-REMOVABLE: its state, not the body, is what stops it). The other fields
    are optional but never null: an endpoint always has them, and a null would be stored as is.
    """

    fhir_base_url: Annotated[str, Field(max_length=300)] = _unchanged(**_BASE_URL_SCHEMA)
    organization: Annotated[str, Field(min_length=1, max_length=100, pattern=LINE)] = _unchanged()
    client_id: Annotated[str, Field(min_length=1, max_length=200, pattern=LINE)] = _unchanged()
    client_auth: ClientAuthConfig = _unchanged()
    approver: Approver | None = None
    launch: LaunchOptions = _unchanged()
    writeback: WritebackConfig = _unchanged()

    _base_url = field_validator("fhir_base_url")(classmethod(lambda c, v, info: _base_url(v, info)))


class RejectRequest(_Strict):
    reason: Annotated[str, Field(min_length=3, max_length=500, pattern=TEXT)]


class ValidationProblem(BaseModel):
    code: str
    message: str


class Validation(BaseModel):
    checked_at: datetime
    ok: bool
    problems: list[ValidationProblem] = []
    fhir_version: FhirVersion = FhirVersion.UNKNOWN
    authorize_endpoint: str | None = None
    token_endpoint: str | None = None
    issuer: str | None = None
    jwks_uri: str | None = None
    # The hosts launches may use: a later discovery naming other hosts is refused until an admin
    # re-validates (a moved sign-in page is how a compromised discovery document would look).
    pinned_hosts: PinnedHosts | None = None
    capabilities: list[str] = []
    permission_v2: bool = False
    # RFC 9207: the server promises `iss` on every authorization response; one without it is
    # then refused (a mix-up attack would strip it).
    iss_parameter: bool = False


class Approval(BaseModel):
    approved_by: str | None = None  # Entra object id
    approved_by_name: str | None = None
    approved_at: datetime | None = None
    ehr_user: str | None = None  # fhirUser of the EHR account that proved access
    rejected_at: datetime | None = None
    rejected_by: str | None = None
    reason: str | None = None


class Endpoint(Entity):
    """A registered FHIR base URL, as stored (PartitionKey `ep-{id}`, RowKey `endpoint`)."""

    id: str
    fhir_base_url: str
    vendor: Vendor
    environment: Environment
    organization: str
    client_id: str
    client_auth: Annotated[StoredSecretBasic | PrivateKeyJwtConfig, Field(discriminator="method")]
    approver: Approver | None = None
    launch: LaunchOptions = LaunchOptions()
    writeback: WritebackConfig = WritebackConfig()
    status: EndpointStatus = EndpointStatus.INVALID
    enabled: bool = True
    validation: Validation | None = None
    approval: Approval = Approval()
    created_at: datetime
    created_by: str
    updated_at: datetime
    updated_by: str

    def public(self) -> dict:
        """The API view (no ETag / keys; there are no secret values to strip: only names)."""
        return self.model_dump(mode="json", exclude={"partition_key", "row_key"})


def slug(*parts: str) -> str:
    text = "-".join(parts).lower()
    text = re.sub(r"[^a-z0-9]+", "-", text).strip("-")
    return text[:40].rstrip("-") or "endpoint"


class SecretHostApproval(_Strict):
    """A second person lets a client secret go to one more token host."""

    host: Annotated[str, Field(pattern=rf"^{_HOST}(?::{_PORT})?$", max_length=300)] = Field(
        description="The token host as validation names it (host, or host:port), lower case."
    )
