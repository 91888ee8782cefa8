"""The certificate Graph encrypts rich notifications (`includeResourceData`) to, and their
decryption.

Graph's scheme (the "with resource data" notifications): `encryptedContent.dataKey` is a fresh
AES-256 key encrypted to our certificate's public key with RSA-OAEP (SHA-1, as Graph uses);
`data` is the resource, AES-256-CBC with PKCS#7 padding and the key's first 16 bytes as IV;
`dataSignature` is HMAC-SHA256 of the encrypted `data` under that same key. The signature is
checked (in constant time) before anything is decrypted: a tampered body is refused, never
parsed.

The setting GRAPH_NOTIFICATION_CERTIFICATE holds the private key and its certificate as PEM (what
a Key Vault certificate reference with content type PEM gives). The certificate's id we give
Graph (`encryptionCertificateId`) is its SHA-256 thumbprint, so a rotated certificate has a new
id and a notification names which one it was encrypted to.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from typing import Any

from lib.web.errors import AppError

_PEM = re.compile(r"-----BEGIN ([A-Z ]+)-----.+?-----END \1-----", re.S)


@dataclass(frozen=True)
class NotificationCertificate:
    private_key: Any  # cryptography's RSAPrivateKey
    certificate_der: bytes

    def __repr__(self) -> str:  # never the key
        return f"NotificationCertificate(id={self.certificate_id!r})"

    @classmethod
    def from_pem(cls, text: str) -> NotificationCertificate:
        """Key and certificate from one PEM text (literal `\\n` accepted, as app settings do)."""
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        text = text.replace("\\n", "\n")
        blocks = {m.group(1): m.group(0) for m in _PEM.finditer(text)}
        key_pem = blocks.get("PRIVATE KEY") or blocks.get("RSA PRIVATE KEY")
        cert_pem = blocks.get("CERTIFICATE")
        if not key_pem or not cert_pem:
            raise ValueError("GRAPH_NOTIFICATION_CERTIFICATE needs a PRIVATE KEY and a CERTIFICATE")
        key = serialization.load_pem_private_key(key_pem.encode(), password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError("Graph encrypts notifications to an RSA key only")
        cert = x509.load_pem_x509_certificate(cert_pem.encode())
        if cert.public_key().public_numbers() != key.public_key().public_numbers():
            raise ValueError("the certificate is not the private key's")
        return cls(key, cert.public_bytes(serialization.Encoding.DER))

    @property
    def certificate_id(self) -> str:
        return hashlib.sha256(self.certificate_der).hexdigest()[:32]

    @property
    def certificate_base64(self) -> str:
        """`encryptionCertificate`: the certificate's DER, base64 (public: no key)."""
        return base64.b64encode(self.certificate_der).decode()

    def decrypt(self, encrypted: Any) -> dict[str, Any]:
        """The resource in a notification's `encryptedContent` (a JSON object).

        GRAPH-NOTIFICATION-INVALID when it is not ours to read, its signature does not match,
        or what it holds is not a JSON object.
        """
        from cryptography.hazmat.primitives import hashes, padding
        from cryptography.hazmat.primitives.asymmetric import padding as asym
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

        if not isinstance(encrypted, dict):
            raise AppError("GRAPH-NOTIFICATION-INVALID", "encryptedContent missing")
        if encrypted.get("encryptionCertificateId") not in (None, self.certificate_id):
            raise AppError("GRAPH-NOTIFICATION-INVALID", "encrypted to another certificate")
        data, signature, data_key = (
            _b64(encrypted.get(name)) for name in ("data", "dataSignature", "dataKey")
        )
        try:
            oaep = asym.OAEP(asym.MGF1(hashes.SHA1()), hashes.SHA1(), None)  # noqa: S303 - Graph's
            key = self.private_key.decrypt(data_key, oaep)
        except ValueError:
            raise AppError("GRAPH-NOTIFICATION-INVALID", "dataKey not for this key") from None
        expected = hmac.new(key, data, hashlib.sha256).digest()
        if not hmac.compare_digest(expected, signature):
            raise AppError("GRAPH-NOTIFICATION-INVALID", "dataSignature does not match")
        try:
            decryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).decryptor()
            padded = decryptor.update(data) + decryptor.finalize()
            unpadder = padding.PKCS7(128).unpadder()
            plain = unpadder.update(padded) + unpadder.finalize()
            resource = json.loads(plain)
        except (ValueError, UnicodeDecodeError):
            raise AppError("GRAPH-NOTIFICATION-INVALID", "data not readable") from None
        if not isinstance(resource, dict):
            raise AppError("GRAPH-NOTIFICATION-INVALID", "data not an object")
        return resource


def _b64(value: Any) -> bytes:
    if not isinstance(value, str) or not value:
        raise AppError("GRAPH-NOTIFICATION-INVALID", "encryptedContent incomplete")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise AppError("GRAPH-NOTIFICATION-INVALID", "encryptedContent not base64") from None


def generate_pem(common_name: str = "evc-graph-notifications") -> str:
    """A new RSA key and self-signed certificate, PEM (make setup and the tests use this)."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(65537, 2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=730))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return key_pem.decode() + cert.public_bytes(serialization.Encoding.PEM).decode()
