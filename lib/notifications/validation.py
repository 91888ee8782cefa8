"""Graph's `validationTokens`: proof that a collection of rich notifications came from Graph.

A collection whose notifications carry `encryptedContent` also carries `validationTokens`: JWTs
the Microsoft identity platform issued to Microsoft Graph's change-notification publisher, one
per app and tenant in the collection. The certificate they are encrypted to is public (we give
it to Graph), so the encryption proves nothing about the sender; these tokens do. A collection
is trusted when at least one token passes every check Microsoft's guidance lists
(learn.microsoft.com/graph/change-notifications-with-resource-data, "How to validate"):

- signed RS256 by a key of our tenant's JWKS (the one cache type, lib/net/jwks.py: an unknown
  `kid` refreshes the keys once, rate-limited, for the daily rotation); no other algorithm;
- not expired (`exp`, `nbf`, a minute's leeway for clocks);
- `aud` our app's client id (the app that made the subscription);
- issued for our tenant, and by Graph's publisher, by the token's version as the guidance says:
  v2.0 tokens `iss` = the tenant's v2 issuer and `azp` = the publisher; v1.0 tokens `iss` =
  `https://sts.windows.net/{tenant}/` and `appid` = the publisher.

A token that fails while another passes is logged (the guidance calls that suspicious). When the
keys cannot be had at all, nothing is accepted unverified: SRV-MICROSOFT-UNAVAILABLE, and
Graph's retry comes back later. Tokens that passed are remembered for a few minutes (in memory, by
digest), since one token is repeated on every collection of a batch and on
Graph's retries. Nothing of a token is ever logged.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from lib.net.budget import unavailable
from lib.net.http import host_of
from lib.net.jwks import JwksCache, KeysUnavailable

log = logging.getLogger(__name__)

GRAPH_PUBLISHER = "0bf30f3b-4a52-48df-9a82-234910c4a086"  # Graph change-notification publisher
V1_ISSUER = "https://sts.windows.net/{tenant}/"
ALGORITHM = "RS256"  # what Entra signs with; `none`, HS256 and the rest are refused unread
LEEWAY_SECONDS = 60
MAX_TOKENS = 10  # one per app and tenant of the collection: ours is one app in one tenant
MAX_TOKEN_CHARS = 8192
REMEMBER_SECONDS = 300.0
REMEMBER_MAX = 256


class ValidationTokens:
    """Decides whether a collection's `validationTokens` prove it came from Microsoft Graph."""

    def __init__(
        self,
        jwks: JwksCache,
        *,
        issuer: str,
        tenant_id: str,
        client_id: str | None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`issuer`: the tenant's v2 issuer (its openid-configuration names the JWKS);
        `client_id`: our app registration's, the `aud` of every token Graph mints for us."""
        self._jwks = jwks
        self._issuer = issuer.rstrip("/")
        self._v1_issuer = V1_ISSUER.format(tenant=tenant_id)
        self._client_id = client_id
        self._clock = clock
        self._passed: dict[bytes, float] = {}  # digest -> until (clock time)
        self._lock = threading.Lock()

    def ready(self) -> None:
        """Fetch the tenant's keys before traffic (warmup): the first rich notification on an
        instance then waits for no discovery or key fetch. Raises KeysUnavailable if Entra is
        down (the first notification tries again)."""
        self._jwks.keys(self._jwks.jwks_uri(self._issuer, None), None)

    def trusted(self, tokens: Any) -> bool:
        """True when one of `tokens` passes every check; raises SRV-MICROSOFT-UNAVAILABLE when
        the keys to check them with cannot be had."""
        listed = tokens[:MAX_TOKENS] if isinstance(tokens, list) else []
        tokens = [t for t in listed if isinstance(t, str) and len(t) < MAX_TOKEN_CHARS]
        if not tokens or self._client_id is None:
            log.warning("graph notifications without validation tokens", extra={"tokens": 0})
            return False
        if any(self._remembered(t) for t in tokens):
            return True
        failures = [reason for reason in map(self._failure, tokens) if reason]
        passed = len(tokens) - len(failures)
        if failures:
            log.warning(
                "graph validation tokens failed",
                extra={"tokens": len(tokens), "passed": passed, "reasons": sorted(set(failures))},
            )
        return passed > 0

    def _failure(self, token: str) -> str | None:
        """Why `token` fails (a short word, never its content); None when it passes."""
        import jwt

        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            return "not a JWT"
        if header.get("alg") != ALGORITHM:
            return "algorithm"
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            return "no kid"
        key = self._key(kid)
        if key is None:
            return "unknown key"
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=self._client_id,
                options={"require": ["exp", "iss", "aud"], "verify_iss": False},
                leeway=LEEWAY_SECONDS,
            )
        except jwt.ExpiredSignatureError:
            return "expired"
        except jwt.InvalidAudienceError:
            return "audience"
        except jwt.PyJWTError:
            return "signature or times"
        reason = self._publisher_failure(claims)
        if reason is None:
            self._remember(token, float(claims["exp"]))
        return reason

    def _publisher_failure(self, claims: dict[str, Any]) -> str | None:
        """Our tenant's issuer and Graph's publisher, in the claims of the token's version."""
        if claims.get("ver") == "1.0":
            issuer, publisher = self._v1_issuer, claims.get("appid")
        else:
            issuer, publisher = self._issuer, claims.get("azp")
        if claims.get("iss") != issuer:
            return "issuer"
        if publisher != GRAPH_PUBLISHER:
            return "publisher"
        return None

    def _key(self, kid: str) -> Any:
        """The tenant's key named `kid` (refreshed once if it is new); None if there is none."""
        try:
            url = self._jwks.jwks_uri(self._issuer, None)
            return self._jwks.key_for(url, kid, ALGORITHM, None)
        except KeysUnavailable as err:
            raise unavailable("microsoft", err.reason, host=host_of(self._issuer)) from None

    # -- tokens that passed, remembered briefly ------------------------------------------------
    def _remembered(self, token: str) -> bool:
        now = self._clock()
        with self._lock:
            until = self._passed.get(_digest(token))
        return until is not None and now < until

    def _remember(self, token: str, expires: float) -> None:
        now = self._clock()
        until = min(expires, now + REMEMBER_SECONDS)
        with self._lock:
            if len(self._passed) >= REMEMBER_MAX:
                self._passed = {d: u for d, u in self._passed.items() if u > now}
                if len(self._passed) >= REMEMBER_MAX:
                    self._passed.clear()
            self._passed[_digest(token)] = until


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()
