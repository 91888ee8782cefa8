"""SMART client registrations of one EHR and how the token endpoint authenticates them.

A client is what an EHR's app registration (Epic's "App Orchard / Vendor Services" record,
Oracle Health's code console) holds: the client id, *one* authentication method, the secret or
the JWKS URL of its public keys, the exact redirect URIs, the scopes it may ask for, and the
grant types. Tests register or change clients through ``EhrStandIn.register_client`` /
``update_client`` or ``POST /_sandbox/{ehr}/clients``.

Authentication is checked for real:
- ``client_secret_basic``: ``Authorization: Basic base64(urlencode(id):urlencode(secret))``
  (RFC 6749 2.3.1); a secret in the form body (client_secret_post) is refused.
- ``private_key_jwt``: the client's JWKS is fetched from its URL (cached; re-fetched once on an
  unknown ``kid``), the assertion must be RS384 or ES384 with a ``kid``, ``iss == sub ==
  client_id``, ``aud`` the token URL, ``exp`` in the future and at most 5 minutes away, and a
  ``jti`` never seen before.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hmac
import ipaddress
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus, urlsplit

import jwt
import requests
from werkzeug.wrappers import Request

from dev.sandbox.ehr.errors import SmartError

CLIENT_SECRET_BASIC = "client_secret_basic"
PRIVATE_KEY_JWT = "private_key_jwt"
AUTH_METHODS = (CLIENT_SECRET_BASIC, PRIVATE_KEY_JWT)
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_ALGORITHMS = ("RS384", "ES384")
MAX_ASSERTION_LIFETIME = 300  # SMART: exp no more than five minutes in the future
CLOCK_SKEW = 10
JWKS_CACHE_SECONDS = 60.0
AUTHORIZATION_CODE = "authorization_code"
CLIENT_CREDENTIALS = "client_credentials"
LOOPBACK_NAMES = {"localhost"}


@dataclass
class SmartClient:
    client_id: str
    auth_method: str
    redirect_uris: list[str] = field(default_factory=list)
    scopes: list[str] = field(default_factory=list)  # what it may ask for
    secret: str | None = None  # client_secret_basic
    jwks_url: str | None = None  # private_key_jwt
    grant_types: list[str] = field(default_factory=lambda: [AUTHORIZATION_CODE])
    grant_less: list[str] = field(default_factory=list)  # scopes never granted (tests)
    name: str = ""

    def __post_init__(self) -> None:
        if not self.client_id:
            raise ValueError("client_id is required")
        if self.auth_method not in AUTH_METHODS:
            raise ValueError(f"auth_method must be one of {AUTH_METHODS}")
        if self.auth_method == CLIENT_SECRET_BASIC and not self.secret:
            raise ValueError("a client_secret_basic client needs a secret")
        if self.auth_method == PRIVATE_KEY_JWT and not self.jwks_url:
            raise ValueError("a private_key_jwt client needs a jwks_url")
        for name in ("redirect_uris", "scopes", "grant_types", "grant_less"):
            value = getattr(self, name)
            if isinstance(value, str):
                value = value.split()
            if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
                raise ValueError(f"{name} must be a list of strings")
            setattr(self, name, list(value))
        unknown = set(self.grant_types) - {AUTHORIZATION_CODE, CLIENT_CREDENTIALS}
        if unknown:
            raise ValueError(f"unsupported grant types {sorted(unknown)}")
        if CLIENT_CREDENTIALS in self.grant_types and self.auth_method != PRIVATE_KEY_JWT:
            raise ValueError("client_credentials (Backend Services) needs private_key_jwt")

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["secret"] = "***" if self.secret else None  # never echo a secret
        return data


_CLIENT_FIELDS = {f.name for f in dataclasses.fields(SmartClient)}


def client_from_json(data: Mapping[str, Any], base: SmartClient | None = None) -> SmartClient:
    """A new client from JSON, or ``base`` with the given fields changed."""
    unknown = set(data) - _CLIENT_FIELDS
    if unknown:
        raise ValueError(
            f"unknown client fields {sorted(unknown)}; known: {sorted(_CLIENT_FIELDS)}"
        )
    if base is not None:
        return dataclasses.replace(base, **dict(data))
    try:
        return SmartClient(**dict(data))
    except TypeError as exc:
        raise ValueError(str(exc)) from exc


class ClientRegistry:
    """The EHR's registered clients; ``reset()`` goes back to the configured ones."""

    def __init__(self, configured: Iterable[SmartClient]) -> None:
        self._configured = [dataclasses.replace(c) for c in configured]
        self._clients: dict[str, SmartClient] = {}
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._clients = {c.client_id: dataclasses.replace(c) for c in self._configured}

    def configure(self, configured: Iterable[SmartClient]) -> None:
        """New preloaded clients (what ``reset`` restores); they replace the current ones of
        the same id, other registered clients stay."""
        with self._lock:
            self._configured = [dataclasses.replace(c) for c in configured]
            for c in self._configured:
                self._clients[c.client_id] = dataclasses.replace(c)

    def get(self, client_id: str | None) -> SmartClient | None:
        with self._lock:
            return self._clients.get(client_id or "")

    def put(self, client: SmartClient) -> SmartClient:
        with self._lock:
            self._clients[client.client_id] = client
        return client

    def update(self, client_id: str, changes: Mapping[str, Any]) -> SmartClient:
        with self._lock:
            current = self._clients.get(client_id)
        if current is None:
            raise KeyError(client_id)
        if "client_id" in changes and changes["client_id"] != client_id:
            raise ValueError("client_id cannot change; register a new client instead")
        return self.put(client_from_json(changes, current))

    def remove(self, client_id: str) -> bool:
        with self._lock:
            return self._clients.pop(client_id, None) is not None

    def all(self) -> list[SmartClient]:
        with self._lock:
            return list(self._clients.values())


# -- authentication at the token endpoint --------------------------------------------------------


@dataclass(frozen=True)
class Presented:
    """What the token request carried to prove who the client is."""

    client_id: str | None
    secret: str | None  # from Basic
    assertion: str | None
    secret_in_body: bool


def read_presented(request: Request) -> Presented:
    form = request.form
    header = request.headers.get("Authorization", "")
    client_id, secret = None, None
    if header[:6].lower() == "basic ":
        try:
            decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise SmartError(
                "invalid_client", "Malformed Basic authorization header.", 401
            ) from exc
        user, sep, password = decoded.partition(":")
        if not sep:
            raise SmartError("invalid_client", "Malformed Basic authorization header.", 401)
        client_id, secret = unquote_plus(user), unquote_plus(password)
    assertion = None
    if form.get("client_assertion_type") == JWT_BEARER:
        assertion = form.get("client_assertion") or ""
    elif form.get("client_assertion_type"):
        raise SmartError("invalid_client", "Unsupported client_assertion_type.", 401)
    if client_id is None:
        client_id = form.get("client_id")
        if assertion and not client_id:
            client_id = _unverified_issuer(assertion)
    return Presented(client_id, secret, assertion, "client_secret" in form)


def _unverified_issuer(assertion: str) -> str | None:
    try:
        iss = jwt.decode(assertion, options={"verify_signature": False}).get("iss")
    except jwt.InvalidTokenError:
        return None
    return iss if isinstance(iss, str) else None


class ClientAuthenticator:
    """Checks secrets and assertions; remembers used ``jti`` values and fetched JWKS."""

    def __init__(self, registry: ClientRegistry, ca_file: Path | None) -> None:
        self.registry = registry
        self.ca_file = ca_file
        self.jwks_cache_seconds = JWKS_CACHE_SECONDS
        self._jwks: dict[str, tuple[float, list[dict[str, Any]]]] = {}
        self._seen_jti: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()
        # Loopback JWKS URLs (our app, test servers): no proxies, the sandbox CA for https.
        self._local = requests.Session()
        self._local.trust_env = False
        self._remote = requests.Session()

    def reset(self) -> None:
        with self._lock:
            self._jwks.clear()
            self._seen_jti.clear()
        self.jwks_cache_seconds = JWKS_CACHE_SECONDS

    def close(self) -> None:
        self._local.close()
        self._remote.close()

    def authenticate(self, presented: Presented, token_urls: Iterable[str]) -> SmartClient:
        client = self.registry.get(presented.client_id)
        if client is None:
            raise SmartError("invalid_client", "Unknown client.", 401)
        if presented.secret_in_body:
            raise SmartError(
                "invalid_client",
                "client_secret_post is not supported; use client_secret_basic.",
                401,
            )
        if client.auth_method == CLIENT_SECRET_BASIC:
            if presented.secret is None:
                raise SmartError(
                    "invalid_client",
                    "This client authenticates with client_secret_basic (HTTP Basic).",
                    401,
                )
            expected = (client.secret or "").encode()
            if not hmac.compare_digest(presented.secret.encode(), expected):
                raise SmartError("invalid_client", "Client authentication failed.", 401)
            return client
        if presented.assertion is None:
            raise SmartError(
                "invalid_client",
                "This client authenticates with private_key_jwt (client_assertion).",
                401,
            )
        self._check_assertion(client, presented.assertion, list(token_urls))
        return client

    # -- private_key_jwt -----------------------------------------------------------------------
    def _check_assertion(self, client: SmartClient, assertion: str, token_urls: list[str]) -> None:
        try:
            header = jwt.get_unverified_header(assertion)
        except jwt.InvalidTokenError as exc:
            raise SmartError("invalid_client", "Malformed client_assertion.", 401) from exc
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in ASSERTION_ALGORITHMS:
            raise SmartError(
                "invalid_client",
                f"client_assertion alg must be one of {ASSERTION_ALGORITHMS}.",
                401,
            )
        if not kid:
            raise SmartError("invalid_client", "client_assertion has no kid header.", 401)
        key = self._key_for(client, str(kid), alg)
        try:
            claims = jwt.decode(
                assertion,
                key,
                algorithms=[alg],
                audience=token_urls,
                issuer=client.client_id,
                leeway=CLOCK_SKEW,
                options={"require": ["iss", "sub", "aud", "exp", "jti"]},
            )
        except jwt.InvalidTokenError as exc:
            raise SmartError(
                "invalid_client", f"client_assertion rejected: {_reason(exc)}.", 401
            ) from exc
        if claims.get("sub") != client.client_id:
            raise SmartError("invalid_client", "client_assertion sub must be the client id.", 401)
        now = time.time()
        if float(claims["exp"]) > now + MAX_ASSERTION_LIFETIME + CLOCK_SKEW:
            raise SmartError(
                "invalid_client", "client_assertion exp is more than 5 minutes away.", 401
            )
        self._remember_jti(client.client_id, str(claims["jti"]), float(claims["exp"]), now)

    def _remember_jti(self, client_id: str, jti: str, exp: float, now: float) -> None:
        with self._lock:
            self._seen_jti = {k: v for k, v in self._seen_jti.items() if v + CLOCK_SKEW > now}
            if (client_id, jti) in self._seen_jti:
                raise SmartError("invalid_client", "client_assertion jti was already used.", 401)
            self._seen_jti[(client_id, jti)] = exp

    def _key_for(self, client: SmartClient, kid: str, alg: str) -> Any:
        url = client.jwks_url or ""
        for refresh in (False, True):
            for jwk in self._keys(url, refresh):
                if jwk.get("kid") == kid:
                    try:
                        return jwt.PyJWK(jwk, algorithm=alg).key
                    except jwt.PyJWTError as exc:
                        raise SmartError(
                            "invalid_client", f"Key {kid} does not fit alg {alg}.", 401
                        ) from exc
        raise SmartError("invalid_client", f"No key {kid} in the client's JWKS.", 401)

    def _keys(self, url: str, refresh: bool) -> list[dict[str, Any]]:
        now = time.monotonic()
        with self._lock:
            cached = self._jwks.get(url)
        if cached and not refresh and now - cached[0] < self.jwks_cache_seconds:
            return cached[1]
        keys = self._fetch(url)
        with self._lock:
            self._jwks[url] = (now, keys)
        return keys

    def _fetch(self, url: str) -> list[dict[str, Any]]:
        local = _is_loopback(url)
        session = self._local if local else self._remote
        verify: bool | str = str(self.ca_file) if local and self.ca_file else True
        try:
            answer = session.get(url, timeout=5, verify=verify)
            answer.raise_for_status()
            keys = answer.json().get("keys")
        except (requests.RequestException, ValueError, AttributeError) as exc:
            raise SmartError(
                "invalid_client",
                f"The client's JWKS could not be read ({type(exc).__name__}).",
                401,
            ) from exc
        if not isinstance(keys, list):
            raise SmartError("invalid_client", "The client's JWKS has no keys.", 401)
        return [k for k in keys if isinstance(k, dict)]


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _reason(exc: jwt.InvalidTokenError) -> str:
    names = {
        jwt.ExpiredSignatureError: "expired",
        jwt.InvalidAudienceError: "aud is not the token endpoint URL",
        jwt.InvalidIssuerError: "iss must be the client id",
        jwt.InvalidSignatureError: "signature does not verify",
        jwt.MissingRequiredClaimError: str(exc),
    }
    for cls, text in names.items():
        if isinstance(exc, cls):
            return text
    return str(exc) or type(exc).__name__
