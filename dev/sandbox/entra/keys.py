"""Token signing keys: RSA with a self-signed certificate, published as a JWKS like Entra's."""

from __future__ import annotations

import base64
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from dev.sandbox.certs import self_signed, state_lock, write_private

KEY_NAME = "signing-key.pem"
CERT_NAME = "signing-cert.pem"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_uint(value: int) -> str:
    return b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))


@dataclass(frozen=True)
class SigningKey:
    private_key: rsa.RSAPrivateKey
    cert: x509.Certificate

    @property
    def kid(self) -> str:
        # Entra's kid is the certificate's SHA-1 thumbprint, base64url, equal to x5t.
        return b64url(self.cert.fingerprint(hashes.SHA1()))  # noqa: S303 - a name, not security

    def jwk(self, issuer: str) -> dict[str, Any]:
        numbers = self.private_key.public_key().public_numbers()
        der = self.cert.public_bytes(serialization.Encoding.DER)
        return {
            "kty": "RSA",
            "use": "sig",
            "kid": self.kid,
            "x5t": self.kid,
            "n": b64url_uint(numbers.n),
            "e": b64url_uint(numbers.e),
            "x5c": [base64.b64encode(der).decode()],
            "issuer": issuer,
        }


def generate_key(common_name: str = "sandbox-entra-signing") -> SigningKey:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return SigningKey(key, self_signed(key, common_name, days=5 * 365))


def load_or_create_key(folder: Path) -> SigningKey:
    """The persisted key, so tokens minted before a restart of `make run` still validate."""
    folder.mkdir(parents=True, exist_ok=True)
    key_path, cert_path = folder / KEY_NAME, folder / CERT_NAME
    with state_lock(folder):
        if key_path.exists() and cert_path.exists():
            key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
            if not isinstance(key, rsa.RSAPrivateKey):
                raise ValueError(f"{key_path} is not an RSA key")
            return SigningKey(key, x509.load_pem_x509_certificate(cert_path.read_bytes()))
        signing = generate_key()
        write_private(
            key_path,
            signing.private_key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
        )
        cert_path.write_bytes(signing.cert.public_bytes(serialization.Encoding.PEM))
        return signing


class KeySet:
    """The active key signs; retired keys stay published until dropped (rollover tests)."""

    def __init__(self, active: SigningKey) -> None:
        self._keys = [active]
        self._initial = active
        self._lock = threading.Lock()

    @property
    def active(self) -> SigningKey:
        with self._lock:
            return self._keys[0]

    def rotate(self, keep_previous: bool = True) -> SigningKey:
        """Sign with a new (in-memory) key; the old one stays in the JWKS if asked."""
        new = generate_key()
        with self._lock:
            self._keys = [new, *self._keys] if keep_previous else [new]
        return new

    def restore(self) -> None:
        with self._lock:
            self._keys = [self._initial]

    def sign(self, claims: dict[str, Any]) -> str:
        key = self.active
        return jwt.encode(
            claims,
            key.private_key,
            algorithm="RS256",
            headers={"kid": key.kid, "x5t": key.kid, "typ": "JWT"},
        )

    def jwks(self, issuer: str) -> dict[str, Any]:
        with self._lock:
            return {"keys": [k.jwk(issuer) for k in self._keys]}

    def verify(self, token: str, audience: str | list[str], issuer: str) -> dict[str, Any]:
        """Decode a token this sandbox issued; raises jwt.InvalidTokenError when it is not."""
        kid = jwt.get_unverified_header(token).get("kid")
        with self._lock:
            key = next((k for k in self._keys if k.kid == kid), None)
        if key is None:
            raise jwt.InvalidTokenError(f"unknown signing key {kid!r}")
        return jwt.decode(
            token,
            key.private_key.public_key(),
            algorithms=["RS256"],
            audience=audience,
            issuer=issuer,
            options={"require": ["exp", "iat", "nbf", "aud", "iss"]},
        )
