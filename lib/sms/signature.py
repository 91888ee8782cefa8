"""The signature on a scheduling message: a detached JWS (RFC 7515 with RFC 7797's unencoded
payload) over the exact body bytes, made with the private key of the environment's uploaded
certificate, in the `X-EVC-Signature` header:

    protected header: {"alg": "RS256" | "ES256" | "ES384", "b64": false, "crit": ["b64"],
                       "iat": <unix seconds>, "jti": "<unique per message, 8 to 100 chars>"}
    X-EVC-Signature: BASE64URL(header) ".." BASE64URL(signature)
    signing input:   ASCII(BASE64URL(header)) "." <body bytes>

`iat` may be at most MAX_AGE old (or that far ahead: clocks differ); a `jti` is taken once per
endpoint (the replay guard keeps it until it could no longer pass the `iat` check). Nothing
about the message is read or stored before this passes.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta

from lib.privacy import PrivacyKeys
from lib.storage import Entity, TableStore
from lib.web.errors import AppError

HEADER = "x-evc-signature"
MAX_AGE = 300  # seconds
ALGORITHMS = {"RSA": ("RS256",), "EC P-256": ("ES256",), "EC P-384": ("ES384",)}
REPLAY_TABLE = "SchedulingReplay"
_JTI = re.compile(r"^[A-Za-z0-9._~:-]{8,100}$")


class SeenSignature(Entity):
    """PartitionKey: keyed hash of (endpoint, jti); RowKey `jti`."""

    purge_after: datetime


def verify(
    body: bytes, value: str | None, certificate_pem: str, key_type: str, *, now: float | None = None
) -> str:
    """The signature's `jti` once it verifies; AppError SCHED-SIGNATURE-* (401) otherwise."""
    import jwt
    from cryptography import x509

    if not value:
        raise AppError("SCHED-SIGNATURE-MISSING")
    try:
        header = jwt.get_unverified_header(value)
    except jwt.InvalidTokenError:
        raise AppError("SCHED-SIGNATURE-INVALID", "Not a JWS.") from None
    allowed = ALGORITHMS.get("RSA" if key_type.startswith("RSA") else key_type, ())
    if header.get("b64") is not False or header.get("crit") != ["b64"]:
        raise AppError("SCHED-SIGNATURE-INVALID", 'The header needs "b64": false, "crit": ["b64"].')
    if header.get("alg") not in allowed:
        raise AppError("SCHED-SIGNATURE-INVALID", f"alg must be {' or '.join(allowed)}.")
    public_key = x509.load_pem_x509_certificate(certificate_pem.encode()).public_key()
    try:
        jwt.api_jws.decode_complete(
            value, public_key, algorithms=list(allowed), detached_payload=body
        )
    except jwt.InvalidTokenError:
        raise AppError("SCHED-SIGNATURE-INVALID", "The signature does not verify.") from None
    iat, jti = header.get("iat"), header.get("jti")
    if not isinstance(jti, str) or not _JTI.fullmatch(jti):
        raise AppError("SCHED-SIGNATURE-INVALID", "jti must be 8 to 100 URL-safe characters.")
    now = time.time() if now is None else now
    if not isinstance(iat, int) or abs(now - iat) > MAX_AGE:
        raise AppError("SCHED-SIGNATURE-STALE")
    return jti


class ReplayGuard:
    def __init__(self, store: TableStore, privacy: PrivacyKeys) -> None:
        self._table = store.table(REPLAY_TABLE, SeenSignature)
        self._privacy = privacy

    def take(self, endpoint_id: str, jti: str) -> None:
        """Record the jti; a second message with it is refused (SCHED-SIGNATURE-REPLAYED)."""
        key = self._privacy.keyed_hash(endpoint_id, jti, purpose="sched-jti")
        row = SeenSignature(
            partition_key=key,
            row_key="jti",
            purge_after=datetime.now(UTC) + timedelta(seconds=2 * MAX_AGE),
        )
        if not self._table.create(row).created:
            raise AppError("SCHED-SIGNATURE-REPLAYED")
