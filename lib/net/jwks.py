"""JSON Web Key Sets, fetched and cached per URL: one cache type for EHR id_tokens and Entra.

Keys are cached with a TTL, and re-fetched once when no key verifies (a rotated `kid`), at most
every `min_refresh_seconds` per URL, so a stream of tokens with made-up `kid`s cannot make us
hammer the issuer. An issuer's `jwks_uri` (from its openid-configuration) is cached the same way.
Every fetch goes through `OutboundHttp` (SSRF guard, caps, deadline, pinned hosts).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Any

from lib.net.http import NotServing
from lib.web.errors import AppError

if TYPE_CHECKING:
    from lib.net.http import OutboundHttp


_KTY = {"RS": "RSA", "ES": "EC"}


class KeysUnavailable(Exception):
    """The keys could not be had; `reason` is short and safe to show. `not_serving`: the issuer
    did not answer (or answered 5xx / 429), rather than answering something unusable."""

    def __init__(self, reason: str, *, not_serving: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.not_serving = not_serving


class JwksCache:
    """JWKS documents (and issuers' jwks_uri) per URL, with a TTL and rate-limited refresh."""

    def __init__(
        self,
        http: OutboundHttp,
        *,
        ttl_seconds: float = 3600.0,
        min_refresh_seconds: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._http = http
        self._ttl = ttl_seconds
        self._min_refresh = min_refresh_seconds
        self._clock = clock
        self._jwks: dict[str, tuple[float, list[dict[str, Any]]]] = {}
        self._jwks_uris: dict[str, tuple[float, str]] = {}
        self._lock = threading.Lock()

    def keys(
        self, url: str, allowed_hosts: Collection[str] | None
    ) -> tuple[list[dict[str, Any]], bool]:
        """(keys, fetched_now): cached while younger than the TTL."""
        with self._lock:
            entry = self._jwks.get(url)
        if entry and self._clock() - entry[0] < self._ttl:
            return entry[1], False
        try:
            return self._fetch(url, allowed_hosts), True
        except KeysUnavailable:
            if entry is None:
                raise
            return entry[1], False  # the issuer is down: keep verifying with the keys we had

    def refresh(
        self, url: str, allowed_hosts: Collection[str] | None
    ) -> list[dict[str, Any]] | None:
        """Re-fetch after an unknown key; None when the last fetch is too recent to repeat."""
        with self._lock:
            entry = self._jwks.get(url)
        if entry and self._clock() - entry[0] < self._min_refresh:
            return None
        return self._fetch(url, allowed_hosts)

    def key_for(
        self, url: str, kid: str, alg: str, allowed_hosts: Collection[str] | None
    ) -> Any | None:
        """The key named `kid` (a PyJWK's `.key`), after one refresh when it is new (a rotation);
        None when the issuer has no such key. KeysUnavailable when the keys cannot be had, or the
        issuer is down just when a new key would need fetching: that token may be good."""
        keys, fetched_now = self.keys(url, allowed_hosts)
        found = candidate_keys(keys, kid, alg)
        if not found and not fetched_now:
            try:
                fresh = self.refresh(url, allowed_hosts)  # None: refreshed too recently
            except KeysUnavailable as err:
                if err.not_serving:
                    raise
                fresh = None  # an unusable answer: keep serving with the keys we have
            found = candidate_keys(fresh, kid, alg) if fresh else []
        return found[0].key if found else None

    def jwks_uri(self, issuer: str, allowed_hosts: Collection[str] | None) -> str:
        """The issuer's jwks_uri from its openid-configuration (cached like a JWKS)."""
        issuer = issuer.rstrip("/")  # one cache entry whether or not a slash ends the issuer
        with self._lock:
            entry = self._jwks_uris.get(issuer)
        if entry and self._clock() - entry[0] < self._ttl:
            return entry[1]
        url = issuer + "/.well-known/openid-configuration"
        doc = self._get_json(url, allowed_hosts, "openid-configuration")
        jwks_uri = doc.get("jwks_uri")
        if not isinstance(jwks_uri, str) or not jwks_uri:
            raise KeysUnavailable("openid-configuration has no jwks_uri")
        with self._lock:
            self._jwks_uris[issuer] = (self._clock(), jwks_uri)
        return jwks_uri

    def _fetch(self, url: str, allowed_hosts: Collection[str] | None) -> list[dict[str, Any]]:
        doc = self._get_json(url, allowed_hosts, "jwks")
        keys = doc.get("keys")
        if not isinstance(keys, list):
            raise KeysUnavailable("jwks has no keys")
        found = [k for k in keys if isinstance(k, dict)]
        with self._lock:
            self._jwks[url] = (self._clock(), found)
        return found

    def _get_json(self, url: str, allowed_hosts: Collection[str] | None, what: str) -> dict:
        try:
            response = self._http.get(
                url, headers={"Accept": "application/json"}, allowed_hosts=allowed_hosts
            )
        except NotServing as err:  # the issuer is down: `keys` falls back on the keys it had
            raise KeysUnavailable(err.detail or f"{what} not answering", not_serving=True) from None
        if response.status != 200:
            down = response.status >= 500 or response.status == 429
            raise KeysUnavailable(f"{what} answered HTTP {response.status}", not_serving=down)
        try:
            doc = response.json()
        except AppError as err:
            raise KeysUnavailable(err.detail or f"{what} is not JSON") from None
        if not isinstance(doc, dict):
            raise KeysUnavailable(f"{what} is not a JSON object")
        return doc


def candidate_keys(keys: list[dict[str, Any]], kid: str | None, alg: str) -> list[Any]:
    """PyJWK objects that could have signed: same kid, else every key of the right type."""
    import jwt

    kty = _KTY[alg[:2]]
    chosen = []
    for jwk in keys:
        if jwk.get("kty") != kty or jwk.get("use", "sig") != "sig":
            continue
        if (kid is not None and jwk.get("kid") != kid) or jwk.get("alg", alg) != alg:
            continue
        try:
            chosen.append(jwt.PyJWK(jwk, algorithm=alg))
        except jwt.PyJWTError:
            continue  # a malformed or unsupported key: the next one may do
    return chosen
