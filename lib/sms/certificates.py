"""The intake certificate: the EHR interface engine's public certificate, uploaded per
environment, whose key verifies the signature on every scheduling message (F13).

PEM or base64 DER; only the public certificate (a private key in the text is refused, so it is
never stored). RSA of 2,048 bits or more, or EC P-256 / P-384, as RS256 / ES256 / ES384 need.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from lib.web.errors import AppError

_PEM = re.compile(r"-----BEGIN CERTIFICATE-----\s+([A-Za-z0-9+/=\s]+?)-----END CERTIFICATE-----")


@dataclass(frozen=True)
class ParsedCertificate:
    pem: str
    thumbprint_sha256: str
    subject: str
    key_type: str
    not_before: datetime
    not_after: datetime


def parse(text: str, now: datetime | None = None) -> ParsedCertificate:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    if "PRIVATE KEY" in text:
        raise AppError("SMS-CERT-INVALID", "That is a private key: upload only the certificate.")
    der = _der(text)
    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError:
        raise AppError("SMS-CERT-INVALID", "Not an X.509 certificate.") from None
    key = cert.public_key()
    if isinstance(key, rsa.RSAPublicKey) and key.key_size >= 2048:
        key_type = f"RSA {key.key_size}"
    elif isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name in (
        "secp256r1",
        "secp384r1",
    ):
        key_type = {"secp256r1": "EC P-256", "secp384r1": "EC P-384"}[key.curve.name]
    else:
        raise AppError(
            "SMS-CERT-INVALID", "The key must be RSA (2048 bits or more) or EC P-256/384."
        )
    now = now or datetime.now(UTC)
    if cert.not_valid_after_utc <= now:
        raise AppError("SMS-CERT-INVALID", "The certificate has expired.")
    return ParsedCertificate(
        pem=cert.public_bytes(serialization.Encoding.PEM).decode("ascii"),
        thumbprint_sha256=cert.fingerprint(hashes.SHA256()).hex(),
        subject=cert.subject.rfc4514_string()[:300],
        key_type=key_type,
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
    )


def _der(text: str) -> bytes:
    found = _PEM.search(text)
    body = found.group(1) if found else text
    try:
        return base64.b64decode("".join(body.split()), validate=True)
    except (binascii.Error, ValueError):
        raise AppError("SMS-CERT-INVALID", "Neither PEM nor base64 DER.") from None
