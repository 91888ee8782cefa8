"""OpenID Connect id_token verification for EHR sign-ins.

Who may issue the token: the discovery `issuer` recorded for the endpoint, when there is one
(Epic's id_token `iss` is `https://<server>/oauth2`, not the FHIR base). Otherwise the token's own
`iss`, but only when its host is one of the endpoint's pinned hosts: a token cannot bring its own
issuer from elsewhere.

Where the keys come from: the discovery `jwks_uri`, else `{iss}/.well-known/openid-configuration`
-> `jwks_uri`. JWKS documents are cached per URL with a TTL and re-fetched once when no key
verifies (a rotated `kid`), at most every `min_refresh_seconds` per URL. A token without `kid` is
tried against every key of the algorithm's key type.

Checks: asymmetric algorithms only, signature, `aud` contains the client id (and `azp`, when there
are several audiences), `exp` / `iat` / `nbf` with 60 s leeway, `nonce`. Failures raise
AppError("TOKEN-ID-TOKEN-INVALID", <short reason>).
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import jwt

from lib.net.http import NotServing, host_of
from lib.net.jwks import JwksCache, KeysUnavailable, candidate_keys
from lib.web.errors import AppError

if TYPE_CHECKING:
    from lib.net.http import OutboundHttp

ALGORITHMS = ("RS256", "RS384", "RS512", "ES256", "ES384")
_RESOURCE_TYPE = re.compile(r"^[A-Z][A-Za-z]+$")
# FHIR R4 id: https://hl7.org/fhir/R4/datatypes.html#id
FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")


def _invalid(reason: str) -> AppError:
    return AppError("TOKEN-ID-TOKEN-INVALID", reason)


class _NoKeyVerified(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# --- fhirUser ----------------------------------------------------------------------------------


def parse_reference(reference: str) -> tuple[str, str] | None:
    """'Practitioner/abc', 'https://x/R4/Practitioner/abc/_history/2' -> ('Practitioner', 'abc')."""
    path = urlsplit(reference).path if "://" in reference else reference
    parts = [p for p in path.split("/") if p]
    if len(parts) >= 4 and parts[-2] == "_history":
        parts = parts[:-2]
    if len(parts) < 2 or not _RESOURCE_TYPE.match(parts[-2]) or not FHIR_ID.match(parts[-1]):
        return None
    return parts[-2], parts[-1]


def fhir_user(claims: Mapping[str, Any]) -> tuple[str, str] | None:
    """(resource type, id) of the signed-in user: `fhirUser`, or `profile` on older servers."""
    for name in ("fhirUser", "profile"):
        value = claims.get(name)
        if isinstance(value, str) and (found := parse_reference(value)):
            return found
    return None


# --- verification ------------------------------------------------------------------------------


def _map_error(exc: Exception) -> AppError:
    reasons: list[tuple[type[Exception], str]] = [
        (jwt.ExpiredSignatureError, "expired"),
        (jwt.ImmatureSignatureError, "not yet valid"),
        (jwt.InvalidAudienceError, "audience"),
        (jwt.InvalidIssuedAtError, "issued-at"),
        (jwt.DecodeError, "malformed"),
    ]
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return _invalid(f"missing {exc.claim}")
    return _invalid(next((r for t, r in reasons if isinstance(exc, t)), "invalid"))


def verify_with_keys(
    id_token: str,
    keys: list[dict[str, Any]],
    *,
    client_id: str,
    leeway: float = 60.0,
) -> dict[str, Any]:
    """Signature (any candidate key) and the time / audience claims; raises _NoKeyVerified."""
    try:
        header = jwt.get_unverified_header(id_token)
    except jwt.PyJWTError:
        raise _invalid("malformed") from None
    alg = header.get("alg")
    if alg not in ALGORITHMS:
        raise _invalid("algorithm")  # never "none", never HMAC with a public key as secret
    kid = header.get("kid") if isinstance(header.get("kid"), str) else None
    candidates = candidate_keys(keys, kid, alg)
    if not candidates:
        raise _NoKeyVerified("unknown key")
    for key in candidates:
        try:
            return jwt.decode(
                id_token,
                key.key,
                algorithms=[alg],
                audience=client_id,
                leeway=leeway,
                options={"require": ["iss", "aud", "exp", "iat"]},
            )
        except jwt.InvalidSignatureError:
            continue
        except jwt.PyJWTError as exc:
            raise _map_error(exc) from None
    raise _NoKeyVerified("signature")


class IdTokenVerifier:
    """Verifies id_tokens for one process; holds the JWKS cache."""

    def __init__(
        self, http: OutboundHttp, *, jwks_cache: JwksCache | None = None, leeway: float = 60.0
    ) -> None:
        self._cache = jwks_cache or JwksCache(http)
        self._leeway = leeway

    def verify(
        self,
        id_token: str,
        *,
        client_id: str,
        nonce: str | None,
        issuer: str | None = None,
        jwks_uri: str | None = None,
        pinned_hosts: Collection[str] | None = None,
    ) -> dict[str, Any]:
        """The verified claims. `issuer` / `jwks_uri` come from the endpoint's pinned discovery;
        `pinned_hosts` (PinnedHosts.all()) also restricts where keys are fetched from."""
        unverified = self._unverified(id_token)
        expected_issuer = self._expected_issuer(unverified.get("iss"), issuer, pinned_hosts)
        try:
            url = jwks_uri or self._cache.jwks_uri(expected_issuer, pinned_hosts)
            claims = self._verify_signature(id_token, url, client_id, pinned_hosts)
        except KeysUnavailable as err:
            if err.not_serving:  # the EHR's keys are not answering: the EHR is unavailable
                raise NotServing("TOKEN-ID-TOKEN-INVALID", err.reason) from None
            raise _invalid(err.reason) from None
        self._check_claims(claims, client_id, nonce)
        return claims

    @staticmethod
    def _unverified(id_token: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(id_token)
            claims = jwt.decode(id_token, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise _invalid("malformed") from None
        if header.get("alg") not in ALGORITHMS:
            raise _invalid("algorithm")
        return claims

    @staticmethod
    def _expected_issuer(
        token_iss: Any, issuer: str | None, pinned_hosts: Collection[str] | None
    ) -> str:
        if not isinstance(token_iss, str) or not token_iss:
            raise _invalid("missing iss")
        if issuer:
            if token_iss.rstrip("/") != issuer.rstrip("/"):
                raise _invalid("issuer")
            return issuer
        if pinned_hosts is None:
            raise ValueError("give the expected issuer or the pinned hosts")
        pinned = {h.lower() for h in pinned_hosts}
        if host_of(token_iss) not in pinned or urlsplit(token_iss).scheme not in ("https", "http"):
            raise _invalid("issuer")
        return token_iss

    def _verify_signature(
        self, id_token: str, url: str, client_id: str, pinned_hosts: Collection[str] | None
    ) -> dict[str, Any]:
        keys, fetched_now = self._cache.keys(url, pinned_hosts)
        try:
            return verify_with_keys(id_token, keys, client_id=client_id, leeway=self._leeway)
        except _NoKeyVerified as first:
            fresh = None if fetched_now else self._cache.refresh(url, pinned_hosts)
            if fresh is None:
                raise _invalid(first.reason) from None
        try:
            return verify_with_keys(id_token, fresh, client_id=client_id, leeway=self._leeway)
        except _NoKeyVerified as second:
            raise _invalid(second.reason) from None

    @staticmethod
    def _check_claims(claims: Mapping[str, Any], client_id: str, nonce: str | None) -> None:
        audiences = claims.get("aud")
        azp = claims.get("azp")
        if isinstance(audiences, list) and len(audiences) > 1 and azp not in (None, client_id):
            raise _invalid("audience")
        if nonce is not None:
            got = claims.get("nonce")
            if not isinstance(got, str) or not hmac.compare_digest(got, nonce):
                raise _invalid("nonce")
