"""Our signing keys: the private keys behind private_key_jwt, and the public JWKS we publish.

- `SigningKey`: one private key (RSA >= 2048 bits -> RS384, EC P-384 -> ES384: the two algorithms
  SMART requires servers to accept), its `kid` being the RFC 7638 JWK thumbprint, so the same key
  always has the same id wherever it is loaded.
- `KeySet`: every key we publish; the first one signs. Rotation = add the new key second (publish,
  wait for EHRs to re-fetch), move it first (it signs), later remove the old one.

Where the PEM text comes from (a setting, Key Vault, a dev file) is the caller's business: nothing
here reads settings or the environment.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.serialization import load_pem_private_key

ALGORITHMS = ("RS384", "ES384")
_MIN_RSA_BITS = 2048
# RFC 7638 §3.2: only the required members, in lexicographic order.
_THUMBPRINT_MEMBERS = {"RSA": ("e", "kty", "n"), "EC": ("crv", "kty", "x", "y")}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _int_bytes(value: int, length: int | None = None) -> bytes:
    return value.to_bytes(length or max(1, (value.bit_length() + 7) // 8), "big")


def jwk_thumbprint(jwk: Mapping[str, Any]) -> str:
    """RFC 7638 SHA-256 thumbprint, base64url: our `kid`."""
    members = _THUMBPRINT_MEMBERS[jwk["kty"]]
    canonical = json.dumps({m: jwk[m] for m in members}, separators=(",", ":"), sort_keys=True)
    return b64url(hashlib.sha256(canonical.encode("utf-8")).digest())


def _public_members(private_key: Any) -> tuple[str, dict[str, str]]:
    """(alg, JWK public members) for a supported key; ValueError for anything else."""
    if isinstance(private_key, rsa.RSAPrivateKey):
        if private_key.key_size < _MIN_RSA_BITS:
            raise ValueError(f"RSA keys need at least {_MIN_RSA_BITS} bits")
        numbers = private_key.public_key().public_numbers()
        n, e = b64url(_int_bytes(numbers.n)), b64url(_int_bytes(numbers.e))
        return "RS384", {"kty": "RSA", "n": n, "e": e}
    if isinstance(private_key, ec.EllipticCurvePrivateKey):
        if not isinstance(private_key.curve, ec.SECP384R1):
            raise ValueError("EC keys must use curve P-384 (ES384)")
        numbers = private_key.public_key().public_numbers()
        x, y = b64url(_int_bytes(numbers.x, 48)), b64url(_int_bytes(numbers.y, 48))
        return "ES384", {"kty": "EC", "crv": "P-384", "x": x, "y": y}
    raise ValueError("only RSA and EC P-384 private keys are supported")


class SigningKey:
    """One private key with its algorithm and thumbprint `kid`."""

    def __init__(self, private_key: PrivateKeyTypes) -> None:
        self._private_key = private_key
        self.alg, self._public = _public_members(private_key)
        self.kid = jwk_thumbprint(self._public)

    @classmethod
    def from_pem(cls, pem: str | bytes, password: bytes | None = None) -> SigningKey:
        """Load PKCS#8 / PKCS#1 / SEC1 PEM text.

        App settings often hold PEM with literal `\\n` sequences instead of line breaks: accepted.
        """
        text = pem.decode("ascii") if isinstance(pem, bytes) else pem
        if "\\n" in text and "\n" not in text.strip():
            text = text.replace("\\n", "\n")
        try:
            key = load_pem_private_key(text.strip().encode("ascii"), password=password)
        except (ValueError, TypeError, UnicodeError) as exc:
            raise ValueError("not a readable PEM private key") from exc
        return cls(key)

    def public_jwk(self) -> dict[str, str]:
        """The public JWK (no private members), with kid, alg and use=sig."""
        return {**self._public, "kid": self.kid, "alg": self.alg, "use": "sig"}

    def sign(self, claims: Mapping[str, Any], headers: Mapping[str, Any] | None = None) -> str:
        """A compact JWS of `claims` with header {alg, kid, typ: JWT} (+ `headers`)."""
        header = {"kid": self.kid, "typ": "JWT", **(headers or {})}
        return jwt.encode(dict(claims), self._private_key, algorithm=self.alg, headers=header)

    def __repr__(self) -> str:
        return f"SigningKey(alg={self.alg!r}, kid={self.kid!r})"


class KeySet:
    """The keys we publish; `signing_key` (the first) signs."""

    def __init__(self, keys: Sequence[SigningKey]) -> None:
        if not keys:
            raise ValueError("a key set needs at least one key")
        kids = [k.kid for k in keys]
        if len(set(kids)) != len(kids):
            raise ValueError("the same key is listed twice")
        self._keys = list(keys)

    @classmethod
    def from_pems(cls, pems: Iterable[str | bytes]) -> KeySet:
        return cls([SigningKey.from_pem(p) for p in pems])

    @property
    def signing_key(self) -> SigningKey:
        return self._keys[0]

    @property
    def keys(self) -> list[SigningKey]:
        return list(self._keys)

    def get(self, kid: str) -> SigningKey | None:
        return next((k for k in self._keys if k.kid == kid), None)

    def public_jwks(self) -> dict[str, list[dict[str, str]]]:
        """The JWKS document served at our JWKS URL (F4 integration record)."""
        return {"keys": [k.public_jwk() for k in self._keys]}
