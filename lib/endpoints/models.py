"""The endpoint's shapes: what the config API accepts and returns, and what is stored.

The same pydantic models validate requests and generate the OpenAPI document, so the documented API
and the enforced one cannot differ. Request models refuse unknown fields.
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from lib.ehr.profiles import Vendor
from lib.smart.discovery import FhirVersion, PinnedHosts
from lib.storage import Entity

SLUG = r"^[a-z0-9](?:[a-z0-9-]{1,38}[a-z0-9])$"
SETTING_NAME = r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"
# An origin as CSP `frame-ancestors` takes it: https, a host name or IPv4 address, a port.
ORIGIN = (
    r"^https://(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*"
    r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?::[0-9]{1,5})?$"
)
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
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, defer_build=True)


def _https_url(value: str, *, allow_http: bool = True) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError("must be an absolute https URL")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError("must not contain a query, fragment or credentials")
    return value.rstrip("/")


class ClientSecretBasicConfig(_Strict):
    method: Literal["client_secret_basic"]
    secret_setting: Annotated[str, Field(pattern=SETTING_NAME)] = Field(
        description="Name of the app setting holding the client secret (in Azure a Key Vault "
        "reference). The secret itself never passes through this API or its storage."
    )


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


class Approver(_Strict):
    oid: Annotated[str, Field(pattern=GUID)] = Field(description="Entra object id of the approver.")
    display_name: Annotated[str, Field(min_length=1, max_length=120)]


class LaunchOptions(_Strict):
    open_teams_directly: bool = Field(
        default=False,
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
        Annotated[str, Field(min_length=1, max_length=64)],
    ] = Field(
        default_factory=dict,
        description="Token-response fields configured per customer (Epic), e.g. "
        '{"ehr_user_id": "epicUserID"}.',
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
        # The pattern admits only https://host[:port]; ports must also be real ones.
        for origin in values:
            port = urlsplit(origin).port if origin.count(":") == 2 else 443
            if not port or port > 65535:
                raise ValueError(f"{origin!r} has no valid port")
        return [v.lower() for v in values]


class EndpointCreate(_Strict):
    id: Annotated[str, Field(pattern=SLUG)] | None = Field(
        default=None,
        description="Short name used in launch URLs; made from organization, vendor and "
        "environment when omitted.",
    )
    fhir_base_url: Annotated[str, Field(max_length=300)] = Field(
        description="The FHIR base URL the EHR sends as `iss` (Epic .../api/FHIR/R4, Cerner "
        ".../r4/{tenant})."
    )
    vendor: Vendor
    environment: Environment
    organization: Annotated[str, Field(min_length=1, max_length=100)] = Field(
        description="Organization or department label shown in reports."
    )
    client_id: Annotated[str, Field(min_length=1, max_length=200)]
    client_auth: ClientAuthConfig
    approver: Approver | None = Field(default=None, description="Required for Epic endpoints.")
    launch: LaunchOptions = Field(default_factory=LaunchOptions)

    _base_url = field_validator("fhir_base_url")(classmethod(lambda cls, v: _https_url(v)))


class EndpointUpdate(_Strict):
    """A JSON merge patch: fields given replace the stored ones."""

    fhir_base_url: Annotated[str, Field(max_length=300)] | None = None
    organization: Annotated[str, Field(min_length=1, max_length=100)] | None = None
    client_id: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    client_auth: ClientAuthConfig | None = None
    approver: Approver | None = None
    launch: LaunchOptions | None = None

    _base_url = field_validator("fhir_base_url")(
        classmethod(lambda cls, v: v if v is None else _https_url(v))
    )


class RejectRequest(_Strict):
    reason: Annotated[str, Field(min_length=3, max_length=500)]


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
    client_auth: ClientSecretBasicConfig | PrivateKeyJwtConfig
    approver: Approver | None = None
    launch: LaunchOptions = LaunchOptions()
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
