"""PKCE (RFC 7636, S256 only) and the random values bound to one launch: `state`, `nonce`.

SMART 2 requires S256 and forbids `plain`, so there is no `plain` here at all.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from dataclasses import dataclass

# RFC 7636 §4.1: 43..128 characters of [A-Z a-z 0-9 - . _ ~].
_VERIFIER = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")


def new_verifier(length: int = 64) -> str:
    """A fresh code_verifier; 64 url-safe characters carry 384 bits."""
    if not 43 <= length <= 128:
        raise ValueError("a PKCE verifier has 43 to 128 characters")
    # token_urlsafe yields ~1.33 characters per byte, from the RFC's allowed alphabet.
    return secrets.token_urlsafe(length)[:length]


def challenge_s256(verifier: str) -> str:
    """BASE64URL(SHA256(ASCII(verifier))) without padding."""
    if not _VERIFIER.match(verifier):
        raise ValueError("not a valid PKCE verifier")
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


@dataclass(frozen=True)
class Pkce:
    """A verifier (kept server-side in the launch session) and its challenge (sent to authorize)."""

    verifier: str
    challenge: str
    method: str = "S256"

    def __repr__(self) -> str:  # the verifier is a secret until the code is exchanged
        return f"Pkce(challenge={self.challenge!r}, method={self.method!r})"


def new_pkce() -> Pkce:
    verifier = new_verifier()
    return Pkce(verifier=verifier, challenge=challenge_s256(verifier))


def new_state() -> str:
    """The OAuth `state`: 256 bits, url-safe (SMART asks for >= 122 bits; the spec says 128)."""
    return secrets.token_urlsafe(32)


def new_nonce() -> str:
    """The OpenID Connect `nonce` echoed in the id_token: 256 bits, url-safe."""
    return secrets.token_urlsafe(32)
