"""SMART discovery: what a FHIR base URL offers, whether we can use it, and which hosts to pin.

- `discover(http, base_url)` fetches `{base}/.well-known/smart-configuration` and `{base}/metadata`
  (for the FHIR version). When the SMART configuration is missing (404, older Epic), the
  authorize / token URLs come from the CapabilityStatement's `oauth-uris` extension instead.
  Parsing is lenient like real servers: unknown fields are kept, a string where a list belongs is
  taken as a one-item list, relative URLs are resolved against the base.
- `validate(discovery, client_auth_method, ...)` lists every `Problem` (catalogue code + message);
  the endpoint's validation (lib/endpoints/validation.py) keeps what `Discovery` says besides
  (version, capabilities, `permission-v2`, the hosts to pin).
- Pinning: the authorize, token, issuer and JWKS hosts (`Discovery.hosts`) are recorded when an
  endpoint is validated; a launch compares them with discovery's current hosts and refuses
  (DISC-HOSTS-MOVED) when any moved (lib/endpoints/client.py).
- `DiscoveryCache`: in-process, per base URL, with a TTL; `discover(..., use_cache=False)`
  bypasses it (validation always fetches fresh; launches reuse).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Collection, Mapping
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Literal, NamedTuple
from urllib.parse import urljoin

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from lib.net.http import NotServing, host_of
from lib.web.errors import AppError

if TYPE_CHECKING:
    from lib.net.http import OutboundHttp

OAUTH_URIS = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
CAPABILITIES_EXT = "http://fhir-registry.smarthealthit.org/StructureDefinition/capabilities"
SSO_OPENID = "sso-openid-connect"
PERMISSION_V2 = "permission-v2"
# Capability names renamed between SMART versions: each name implies its twin.
_CAPABILITY_ALIASES = {
    "context-banner": "context-passthrough-banner",
    "context-passthrough-banner": "context-banner",
    "context-style": "context-passthrough-style",
    "context-passthrough-style": "context-style",
}
_URL_FIELDS = (
    "authorization_endpoint", "token_endpoint", "jwks_uri", "registration_endpoint",
    "management_endpoint", "introspection_endpoint", "revocation_endpoint",
)  # fmt: skip
_LIST_FIELDS = (
    "token_endpoint_auth_methods_supported", "token_endpoint_auth_signing_alg_values_supported",
    "grant_types_supported", "scopes_supported", "response_types_supported", "capabilities",
    "code_challenge_methods_supported",
)  # fmt: skip
_ALWAYS_LISTS = ("capabilities", "code_challenge_methods_supported")
_OAUTH_URI_NAMES = {
    "authorize": "authorization_endpoint", "token": "token_endpoint",
    "register": "registration_endpoint", "manage": "management_endpoint",
    "introspect": "introspection_endpoint", "revoke": "revocation_endpoint",
}  # fmt: skip


class FhirVersion(StrEnum):
    """The FHIR release a base serves (from /metadata's fhirVersion)."""

    R4 = "R4"
    R4B = "R4B"
    R5 = "R5"
    STU3 = "STU3"
    DSTU2 = "DSTU2"
    UNKNOWN = "unknown"


_VERSIONS = {
    "1.0": FhirVersion.DSTU2, "3.0": FhirVersion.STU3, "4.0": FhirVersion.R4,
    "4.3": FhirVersion.R4B, "5.0": FhirVersion.R5,
}  # fmt: skip


class Problem(NamedTuple):
    """One reason an endpoint is not usable: a catalogue code and a precise message."""

    code: str
    message: str


class SmartConfiguration(BaseModel):
    """The `.well-known/smart-configuration` document (extra fields are kept)."""

    model_config = ConfigDict(extra="allow")

    issuer: str | None = None
    jwks_uri: str | None = None
    authorization_endpoint: str | None = None
    token_endpoint: str | None = None
    registration_endpoint: str | None = None
    management_endpoint: str | None = None
    introspection_endpoint: str | None = None
    revocation_endpoint: str | None = None
    token_endpoint_auth_methods_supported: list[str] | None = None
    token_endpoint_auth_signing_alg_values_supported: list[str] | None = None
    grant_types_supported: list[str] | None = None
    scopes_supported: list[str] | None = None
    response_types_supported: list[str] | None = None
    capabilities: list[str] = Field(default_factory=list)
    code_challenge_methods_supported: list[str] = Field(default_factory=list)

    @field_validator("issuer", *_URL_FIELDS, mode="before")
    @classmethod
    def _string_or_none(cls, value: Any) -> Any:
        return (value.strip() or None) if isinstance(value, str) else None

    @field_validator(*_LIST_FIELDS, mode="before")
    @classmethod
    def _lenient_list(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, str):
            return value.split()
        if isinstance(value, list):
            return [v for v in value if isinstance(v, str)]
        # absent or garbage: "not declared" (None) where that differs from an empty list
        return [] if info.field_name in _ALWAYS_LISTS else None

    def capability_set(self) -> frozenset[str]:
        """Declared capabilities plus their renamed twins."""
        names = set(self.capabilities)
        names |= {_CAPABILITY_ALIASES[n] for n in names if n in _CAPABILITY_ALIASES}
        return frozenset(names)


class PinnedHosts(BaseModel):
    """The hosts an approved endpoint may send us to / take identities from (`host_of` form)."""

    model_config = ConfigDict(frozen=True)

    authorize: str | None = None
    token: str | None = None
    issuer: str | None = None
    jwks: str | None = None

    def all(self) -> frozenset[str]:
        return frozenset(h for h in (self.authorize, self.token, self.issuer, self.jwks) if h)


class Discovery(BaseModel):
    """What one fetch of a FHIR base URL found."""

    base_url: str
    config: SmartConfiguration
    source: Literal["smart-configuration", "metadata"]
    fhir_version: FhirVersion = FhirVersion.UNKNOWN
    fhir_version_raw: str | None = None
    metadata_problem: str | None = None  # why the version is unknown, when it is

    @property
    def capabilities(self) -> frozenset[str]:
        return self.config.capability_set()

    @property
    def permission_v2(self) -> bool:
        return PERMISSION_V2 in self.capabilities

    @property
    def hosts(self) -> PinnedHosts:
        def host(url: str | None) -> str | None:
            return host_of(url) if url else None

        return PinnedHosts(
            authorize=host(self.config.authorization_endpoint),
            token=host(self.config.token_endpoint),
            issuer=host(self.config.issuer),
            jwks=host(self.config.jwks_uri),
        )


# --- parsing -----------------------------------------------------------------------------------


def _base_for_join(base_url: str) -> str:
    # urljoin drops the last path segment unless the base ends with "/": R4 would vanish.
    return base_url.rstrip("/") + "/"


def parse_smart_configuration(doc: Mapping[str, Any], base_url: str) -> SmartConfiguration:
    """Parse leniently; relative endpoint URLs are resolved against the FHIR base."""
    config = SmartConfiguration.model_validate(dict(doc))
    base = _base_for_join(base_url)
    updates = {
        name: urljoin(base, getattr(config, name))
        for name in _URL_FIELDS
        if getattr(config, name) is not None
    }
    return config.model_copy(update=updates)


def fhir_version_label(raw: Any) -> FhirVersion:
    """'4.0.1' -> R4, '1.0.2' -> DSTU2, ...; anything unreadable -> unknown."""
    match = re.match(r"^\s*(\d+)\.(\d+)", raw) if isinstance(raw, str) else None
    return (
        _VERSIONS.get(f"{match[1]}.{match[2]}", FhirVersion.UNKNOWN)
        if match
        else FhirVersion.UNKNOWN
    )


def _security_extensions(capability: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    found: list[Mapping[str, Any]] = []
    for rest in capability.get("rest") or []:
        security = rest.get("security") if isinstance(rest, Mapping) else None
        if isinstance(security, Mapping):
            found += [e for e in security.get("extension") or [] if isinstance(e, Mapping)]
    return found


def oauth_uris_from_metadata(capability: Mapping[str, Any], base_url: str) -> SmartConfiguration:
    """A SmartConfiguration built from the CapabilityStatement's SMART extensions."""
    doc: dict[str, Any] = {"capabilities": []}
    for ext in _security_extensions(capability):
        if ext.get("url") == OAUTH_URIS:
            for inner in ext.get("extension") or []:
                name = (
                    _OAUTH_URI_NAMES.get(inner.get("url")) if isinstance(inner, Mapping) else None
                )
                if name:
                    doc[name] = inner.get("valueUri") or inner.get("valueUrl")
        elif ext.get("url") == CAPABILITIES_EXT and isinstance(ext.get("valueCode"), str):
            doc["capabilities"].append(ext["valueCode"])
    return parse_smart_configuration(doc, base_url)


# --- fetching ----------------------------------------------------------------------------------


def _fetch_json(
    http: OutboundHttp,
    url: str,
    accept: str,
    headers: Mapping[str, str] | None,
    allowed_hosts: Collection[str] | None,
) -> tuple[int, Any]:
    response = http.get(
        url, headers={"Accept": accept, **(headers or {})}, allowed_hosts=allowed_hosts
    )
    if response.status != 200:
        return response.status, None
    body = response.json("DISC-NOT-JSON")
    if not isinstance(body, dict):
        raise AppError("DISC-NOT-JSON", f"{host_of(url)} answered JSON that is not an object")
    return 200, body


def _fetch_metadata(
    http: OutboundHttp,
    base: str,
    headers: Mapping[str, str] | None,
    allowed_hosts: Collection[str] | None,
) -> tuple[dict[str, Any] | None, str | None]:
    """(CapabilityStatement, None) or (None, why it could not be read)."""
    try:
        url = f"{base}/metadata"
        status, body = _fetch_json(http, url, "application/fhir+json", headers, allowed_hosts)
    except AppError as exc:
        if exc.code.startswith("DISC-") and exc.code not in ("DISC-NOT-JSON", "DISC-TOO-LARGE"):
            raise  # transport failure: the whole server is unusable
        return None, f"/metadata could not be read ({exc.code})"
    if body is None:
        return None, f"/metadata answered HTTP {status}"
    if body.get("resourceType") not in ("CapabilityStatement", "Conformance"):
        return None, "/metadata is not a CapabilityStatement"
    return body, None


def fetch_discovery(
    http: OutboundHttp,
    base_url: str,
    *,
    headers: Mapping[str, str] | None = None,
    allowed_hosts: Collection[str] | None = None,
) -> Discovery:
    """Fetch and parse both documents; raises AppError when the server is unusable at all."""
    base = base_url.rstrip("/")
    url = f"{base}/.well-known/smart-configuration"
    status, doc = _fetch_json(http, url, "application/json", headers, allowed_hosts)
    if doc is None and status != 404:
        # 5xx / 429 (past the retries): the server is there but not serving right now
        error = NotServing if status >= 500 or status == 429 else AppError
        raise error("DISC-HTTP-STATUS", f"smart-configuration answered HTTP {status}")
    capability, metadata_problem = _fetch_metadata(http, base, headers, allowed_hosts)
    raw_version = capability.get("fhirVersion") if capability else None
    if doc is not None:
        config, source = parse_smart_configuration(doc, base_url), "smart-configuration"
    elif capability is not None and _has_oauth_uris(capability):
        config, source = oauth_uris_from_metadata(capability, base_url), "metadata"
    else:
        raise AppError(
            "DISC-HTTP-STATUS",
            "no smart-configuration (HTTP 404) and no oauth-uris extension in /metadata",
        )
    return Discovery(
        base_url=base_url,
        config=config,
        source=source,
        fhir_version=fhir_version_label(raw_version),
        fhir_version_raw=raw_version if isinstance(raw_version, str) else None,
        metadata_problem=metadata_problem,
    )


def _has_oauth_uris(capability: Mapping[str, Any]) -> bool:
    return any(e.get("url") == OAUTH_URIS for e in _security_extensions(capability))


# --- cache ---------------------------------------------------------------------------------


class DiscoveryCache:
    """In-process TTL cache of successful discoveries, keyed by base URL (+ extra headers)."""

    def __init__(self, ttl_seconds: float = 3600.0, clock: Any = time.monotonic) -> None:
        self._ttl = ttl_seconds
        self._clock = clock
        self._entries: dict[Any, tuple[float, Discovery]] = {}
        self._lock = threading.Lock()

    @staticmethod
    def key(base_url: str, headers: Mapping[str, str] | None = None) -> Any:
        return base_url.rstrip("/"), tuple(sorted((headers or {}).items()))

    def get(self, key: Any) -> Discovery | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or self._clock() - entry[0] > self._ttl:
                self._entries.pop(key, None)
                return None
            return entry[1]

    def put(self, key: Any, value: Discovery) -> None:
        with self._lock:
            self._entries[key] = (self._clock(), value)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


DEFAULT_CACHE = DiscoveryCache()


def discover(
    http: OutboundHttp,
    base_url: str,
    *,
    headers: Mapping[str, str] | None = None,
    allowed_hosts: Collection[str] | None = None,
    use_cache: bool = True,
    cache: DiscoveryCache | None = None,
) -> Discovery:
    """Cached `fetch_discovery`. `use_cache=False` fetches fresh and refreshes the cache.

    `headers` lets a vendor profile send e.g. `Epic-Client-ID` (Epic may answer differently).
    """
    cache = DEFAULT_CACHE if cache is None else cache
    key = DiscoveryCache.key(base_url, headers)
    if use_cache and (hit := cache.get(key)) is not None:
        return hit
    found = fetch_discovery(http, base_url, headers=headers, allowed_hosts=allowed_hosts)
    cache.put(key, found)
    return found


# --- validation ----------------------------------------------------------------------------


def validate(
    discovery: Discovery,
    client_auth_method: str,
    *,
    needs_authorize: bool = True,
    needs_openid: bool = True,
    needs_r4: bool = True,
    signing_alg: str | None = None,
    require_https: bool = True,
) -> list[Problem]:
    """Every reason this endpoint cannot be used as configured (empty list: usable)."""
    config = discovery.config
    problems = _endpoint_problems(config, needs_authorize, require_https)
    problems += _pkce_problems(config, discovery.source)
    problems += _client_auth_problems(config, client_auth_method, signing_alg)
    if needs_openid:
        problems += _openid_problems(config)
    if needs_r4 and discovery.fhir_version != "R4":
        problems.append(_version_problem(discovery))
    return problems


def _endpoint_problems(
    config: SmartConfiguration, needs_authorize: bool, require_https: bool
) -> list[Problem]:
    problems: list[Problem] = []
    if not config.token_endpoint:
        problems.append(Problem("DISC-MISSING-TOKEN-ENDPOINT", "token_endpoint is missing."))
    if needs_authorize and not config.authorization_endpoint:
        problems.append(
            Problem("DISC-MISSING-AUTHORIZE-ENDPOINT", "authorization_endpoint is missing.")
        )
    if require_https:
        for name in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
            url = getattr(config, name)
            if url and not url.lower().startswith("https://"):
                problems.append(Problem("DISC-ADDRESS-NOT-ALLOWED", f"{name} is not https."))
    return problems


def _pkce_problems(config: SmartConfiguration, source: str) -> list[Problem]:
    methods = config.code_challenge_methods_supported
    problems: list[Problem] = []
    if "S256" not in methods:
        where = (
            "the server publishes no smart-configuration, so S256 support is not declared"
            if source == "metadata"
            else f"code_challenge_methods_supported is {methods or 'empty'}"
        )
        problems.append(Problem("DISC-NO-S256", f"PKCE S256 is required; {where}."))
    if "plain" in methods:
        problems.append(
            Problem("DISC-PLAIN-PKCE", "code_challenge_methods_supported contains 'plain'.")
        )
    return problems


def _client_auth_problems(
    config: SmartConfiguration, method: str, signing_alg: str | None
) -> list[Problem]:
    # RFC 8414: an absent list means client_secret_basic only.
    offered = config.token_endpoint_auth_methods_supported or ["client_secret_basic"]
    if method not in offered:
        return [Problem("DISC-NO-CLIENT-AUTH", f"{method} is not among {offered}.")]
    algs = config.token_endpoint_auth_signing_alg_values_supported
    if method == "private_key_jwt" and signing_alg and algs and signing_alg not in algs:
        return [
            Problem("DISC-NO-CLIENT-AUTH", f"our key signs {signing_alg}; the server takes {algs}.")
        ]
    return []


def _openid_problems(config: SmartConfiguration) -> list[Problem]:
    # Lenient like the servers are: the capability or `openid` in scopes_supported will do.
    # Without issuer / jwks_uri the id_token's own `iss` is used, if its host is pinned.
    offered = SSO_OPENID in config.capability_set() or "openid" in (config.scopes_supported or [])
    if offered:
        return []
    message = f"neither the {SSO_OPENID} capability nor the openid scope is offered."
    return [Problem("DISC-NO-OPENID", message)]


def _version_problem(discovery: Discovery) -> Problem:
    if discovery.fhir_version == "unknown":
        why = discovery.metadata_problem or f"fhirVersion {discovery.fhir_version_raw!r} unknown"
        return Problem("DISC-FHIR-VERSION", f"FHIR R4 is required; the version is unknown: {why}.")
    raw = discovery.fhir_version_raw
    return Problem(
        "DISC-FHIR-VERSION",
        f"FHIR R4 is required; this base serves {discovery.fhir_version} ({raw}).",
    )
