"""Token endpoint calls: authorization code, and client_credentials (Backend Services).

The token response is parsed leniently (servers differ): context fields SMART names are typed,
every other field (Epic `appointment`, `loginDepartment`, `__epic.dstu2.patient`; Cerner `user`,
`username`) is kept in `extras` for `context.py`. Tokens never appear in `repr`, logs or errors:
a failure says the OAuth `error` code and the HTTP status, nothing the server wrote besides.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from lib.net.http import NotServing
from lib.smart import scopes as scope_tools
from lib.web.errors import AppError
from lib.web.http import whole_number

if TYPE_CHECKING:
    from lib.net.http import HttpResponse, OutboundHttp
    from lib.smart.client_auth import ClientAuth

_STRING_FIELDS = ("patient", "encounter", "tenant", "scope", "intent", "smart_style_url")
_OAUTH_ERROR = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
# Transport codes whose catalogue sentence speaks of discovery: at the token endpoint they mean
# the sign-in failed.
_AS_EXCHANGE_FAILURE = {"DISC-NOT-JSON", "DISC-TOO-LARGE"}


def _lenient_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return None


class TokenResponse(BaseModel):
    """A successful token response. Unknown fields land in `extras`, untouched."""

    model_config = ConfigDict(populate_by_name=True)

    access_token: str = Field(repr=False, min_length=1)
    token_type: str = "Bearer"
    expires_in: int | None = None
    scope: str | None = None
    id_token: str | None = Field(default=None, repr=False)
    refresh_token: str | None = Field(default=None, repr=False)
    patient: str | None = None
    encounter: str | None = None
    tenant: str | None = None
    need_patient_banner: bool | None = None
    smart_style_url: str | None = None
    intent: str | None = None
    fhir_context: list[dict[str, Any]] = Field(default_factory=list, alias="fhirContext")
    extras: dict[str, Any] = Field(default_factory=dict)
    received_at: float = Field(default_factory=time.time)

    @model_validator(mode="before")
    @classmethod
    def _collect_extras(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        known = {name for name in cls.model_fields} | {"fhirContext"}
        extras = {k: v for k, v in data.items() if k not in known}
        kept = {k: v for k, v in data.items() if k in known}
        return {**kept, "extras": {**extras, **dict(data.get("extras") or {})}}

    @field_validator("expires_in", mode="before")
    @classmethod
    def _lenient_int(cls, value: Any) -> int | None:
        if isinstance(value, bool):
            return None
        if isinstance(value, int):
            return value
        if isinstance(value, float):  # JSON as Python reads it: Infinity and NaN included
            return int(value) if math.isfinite(value) else None
        return whole_number(value) if isinstance(value, str) else None

    @field_validator(*_STRING_FIELDS, mode="before")
    @classmethod
    def _lenient_str(cls, value: Any) -> str | None:
        if isinstance(value, bool):
            return None
        if isinstance(value, int | str):
            return str(value) or None
        return None

    @field_validator("need_patient_banner", mode="before")
    @classmethod
    def _banner(cls, value: Any) -> bool | None:
        return _lenient_bool(value)

    @field_validator("fhir_context", mode="before")
    @classmethod
    def _context_items(cls, value: Any) -> list[dict[str, Any]]:
        return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []

    @property
    def expires_at(self) -> float | None:
        return None if self.expires_in is None else self.received_at + self.expires_in

    @property
    def granted_scopes(self) -> list[str]:
        return scope_tools.parse(self.scope)


def parse_token_response(doc: Any, *, received_at: float | None = None) -> TokenResponse:
    """Validate a token response body; AppError(TOKEN-EXCHANGE-FAILED) when it is not one."""
    if not isinstance(doc, Mapping):
        raise AppError("TOKEN-EXCHANGE-FAILED", "token response is not a JSON object")
    token = doc.get("access_token")
    if not isinstance(token, str) or not token:
        raise AppError("TOKEN-EXCHANGE-FAILED", "token response has no access_token")
    data = dict(doc)
    if received_at is not None:
        data["received_at"] = received_at
    return TokenResponse.model_validate(data)


def _failure_detail(response: HttpResponse) -> str:
    """'invalid_grant (HTTP 400)': only the OAuth error code, which is safe to show and log."""
    try:
        body = response.json()
    except AppError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, str) and _OAUTH_ERROR.match(error):
        return f"{error} (HTTP {response.status})"
    return f"HTTP {response.status}"


def _token_request(
    http: OutboundHttp,
    token_url: str,
    form: Mapping[str, str],
    client_auth: ClientAuth,
    allowed_hosts: Collection[str] | None,
    clock: Callable[[], float] = time.time,
) -> TokenResponse:
    auth_headers, first_auth_form = client_auth.apply(token_url)
    headers = {"Accept": "application/json", **auth_headers}
    pending = [first_auth_form]

    def body() -> dict[str, str]:
        # Called once per attempt: a retry after 429 / 503 signs a new assertion (fresh jti).
        auth_form = pending.pop() if pending else client_auth.apply(token_url)[1]
        return {**form, **auth_form}

    try:
        response = http.post_form(token_url, body, headers=headers, allowed_hosts=allowed_hosts)
        if response.status != 200:
            # 5xx / 429 past the retries: the EHR is not serving (a launch says "unavailable")
            down = response.status >= 500 or response.status == 429
            error = NotServing if down else AppError
            raise error("TOKEN-EXCHANGE-FAILED", _failure_detail(response))
        return parse_token_response(response.json("TOKEN-EXCHANGE-FAILED"), received_at=clock())
    except AppError as exc:
        if exc.code in _AS_EXCHANGE_FAILURE:
            raise AppError("TOKEN-EXCHANGE-FAILED", exc.detail) from None
        raise


def exchange_code(
    http: OutboundHttp,
    token_url: str,
    code: str,
    redirect_uri: str,
    code_verifier: str,
    client_auth: ClientAuth,
    *,
    allowed_hosts: Collection[str] | None = None,
) -> TokenResponse:
    """authorization_code grant with PKCE (the launch callback and the approval sign-in)."""
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "code_verifier": code_verifier,
    }
    return _token_request(http, token_url, form, client_auth, allowed_hosts)


def client_credentials(
    http: OutboundHttp,
    token_url: str,
    scopes: Iterable[str],
    client_auth: ClientAuth,
    *,
    allowed_hosts: Collection[str] | None = None,
    clock: Callable[[], float] = time.time,
) -> TokenResponse:
    """SMART Backend Services: client_credentials with a system/ scope.

    Not on any path yet: EHR write-back (F17) authenticates with it, through `BackendTokenCache`.
    """
    form = {"grant_type": "client_credentials", "scope": scope_tools.join(scopes)}
    return _token_request(http, token_url, form, client_auth, allowed_hosts, clock)


class BackendTokenCache:
    """Reuses a client_credentials token until `margin_seconds` before it expires.

    Backend tokens live about 5 minutes; without `expires_in` we assume `default_lifetime`.
    One lock per (token URL, client, scopes): concurrent callers wait for one request.
    """

    def __init__(
        self,
        *,
        margin_seconds: float = 60.0,
        default_lifetime: float = 300.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._margin = margin_seconds
        self._default_lifetime = default_lifetime
        self._clock = clock
        self._tokens: dict[tuple[str, str, str], TokenResponse] = {}
        self._locks: dict[tuple[str, str, str], threading.Lock] = {}
        self._guard = threading.Lock()

    @staticmethod
    def _key(token_url: str, client_id: str, scopes: Iterable[str]) -> tuple[str, str, str]:
        return token_url, client_id, " ".join(sorted(set(scopes)))

    def _fresh(self, token: TokenResponse) -> bool:
        lifetime = token.expires_in if token.expires_in is not None else self._default_lifetime
        return self._clock() < token.received_at + lifetime - self._margin

    def get(
        self,
        http: OutboundHttp,
        token_url: str,
        scopes: Iterable[str],
        client_auth: ClientAuth,
        *,
        allowed_hosts: Collection[str] | None = None,
    ) -> TokenResponse:
        scope_list = list(scopes)
        key = self._key(token_url, client_auth.client_id, scope_list)
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            cached = self._tokens.get(key)
            if cached is not None and self._fresh(cached):
                return cached
            token = client_credentials(
                http,
                token_url,
                scope_list,
                client_auth,
                allowed_hosts=allowed_hosts,
                clock=self._clock,
            )
            self._tokens[key] = token
            return token

    def invalidate(self, token_url: str, client_id: str, scopes: Iterable[str]) -> None:
        """Forget a token the server refused (401) so the next `get` fetches a new one."""
        self._tokens.pop(self._key(token_url, client_id, scopes), None)
