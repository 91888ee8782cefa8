"""Sealed values: identifiers a later step needs, encrypted so that only we can read them back.

Write-back needs the appointment's FHIR id (and Epic's conference / external ids) after the
launch; reminders need the patient's phone number until the appointment. They are stored only
sealed: AES-GCM with 256-bit keys of their own (CONNECTOR_SEALING_KEYS, never the hash key), a
fresh 96-bit nonce per value, and associated data that binds each value to its visit key and its
purpose, so a sealed value copied to another row or another purpose does not open.

A sealed value is compact ASCII: `s1.<key id>.<base64url(nonce + ciphertext + tag)>`, where the
key id is the first 8 hex characters of SHA-256 of the key, so opening picks its key directly.
Rotation: the setting holds one or more keys (comma- or newline-separated); the first seals, all
open. Put a new key first and keep the old one until every value sealed with it is purged.

Make a key with:
    python -c "import secrets,base64;print(base64.b64encode(secrets.token_bytes(32)).decode())"

This module is given its keys; it never reads settings. cryptography is imported on first use.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from collections.abc import Sequence
from typing import Any

VERSION = "s1"
KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
MAX_VALUE_BYTES = 4096  # identifiers and phone numbers; Table Storage caps a property at 64 KiB

_PURPOSE = re.compile(r"[a-z][a-z0-9-]{0,62}")
_KEY_ID = re.compile(r"[0-9a-f]{8}")
_BODY = re.compile(r"[A-Za-z0-9_-]+")


class SealBroken(Exception):
    """A sealed value that cannot be opened: tampered, wrong visit or purpose, unknown key."""


class SealingKeyError(ValueError):
    """A sealing key setting that is not usable. The message never contains key material."""


def key_id(key: bytes) -> str:
    """The short name a sealed value carries for its key (not secret: 32 bits of a hash)."""
    return hashlib.sha256(key).hexdigest()[:8]


def parse_keys(text: str, *, hash_key: str | None = None) -> list[bytes]:
    """The keys of a CONNECTOR_SEALING_KEYS value: base64 of 32 bytes each, first one sealing.

    Separated by commas or newlines (a literal `\\n`, as app settings hold it, counts too).
    Raises SealingKeyError naming the position of a bad key, never its value.
    """
    parts = [p.strip() for p in re.split(r",|\n|\\n", text.replace("\r", ""))]
    parts = [p for p in parts if p]
    if not parts:
        raise SealingKeyError("must hold at least one key (base64 of 32 random bytes)")
    keys = []
    for number, part in enumerate(parts, 1):
        if hash_key is not None and hmac.compare_digest(part.encode(), hash_key.encode()):
            raise SealingKeyError(f"key {number} is the hash key: sealing needs its own keys")
        try:
            std = part.replace("-", "+").replace("_", "/")
            key = base64.b64decode(std + "=" * (-len(std) % 4), validate=True)
        except (binascii.Error, ValueError):
            raise SealingKeyError(
                f"key {number} is not base64 (give base64 of 32 random bytes)"
            ) from None
        keys.append(key)
    _check_keys(keys, hash_key=hash_key)
    return keys


def _check_keys(keys: Sequence[bytes], *, hash_key: str | bytes | None) -> None:
    if not keys:
        raise SealingKeyError("must hold at least one key (base64 of 32 random bytes)")
    hash_bytes = hash_key.encode() if isinstance(hash_key, str) else hash_key
    seen: dict[str, int] = {}
    for number, key in enumerate(keys, 1):
        if not isinstance(key, bytes):
            raise SealingKeyError(f"key {number} is not bytes")
        if len(key) != KEY_BYTES:
            raise SealingKeyError(f"key {number} is {len(key)} bytes, not {KEY_BYTES}")
        if hash_bytes is not None and hmac.compare_digest(key, hash_bytes):
            raise SealingKeyError(f"key {number} is the hash key: sealing needs its own keys")
        kid = key_id(key)
        if kid in seen:
            raise SealingKeyError(f"key {number} repeats key {seen[kid]}")
        seen[kid] = number


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _associated_data(kid: str, visit_key: str, purpose: str) -> bytes:
    # JSON keeps the parts unambiguous whatever characters they hold.
    return json.dumps(["evc-seal", VERSION, kid, visit_key, purpose]).encode()


def _check_binding(visit_key: str, purpose: str) -> None:
    if not isinstance(visit_key, str) or not visit_key:
        raise ValueError("a sealed value needs its visit key")
    if not isinstance(purpose, str) or not _PURPOSE.fullmatch(purpose):
        raise ValueError(f"not a purpose name (lowercase letters, digits, -): {purpose[:40]!r}")


class Sealer:
    """Seals and opens values under AES-256-GCM; the first key seals, every key opens."""

    def __init__(self, keys: Sequence[bytes], *, hash_key: str | bytes | None = None) -> None:
        """`hash_key`: CONNECTOR_HASH_KEY, given only so that reusing it is refused."""
        keys = list(keys)
        _check_keys(keys, hash_key=hash_key)
        self._keys = {key_id(k): k for k in keys}
        self._sealing_id = key_id(keys[0])
        self._ciphers: dict[str, Any] = {}

    @classmethod
    def from_setting(cls, text: str, *, hash_key: str | None = None) -> Sealer:
        """From the CONNECTOR_SEALING_KEYS text (see parse_keys)."""
        return cls(parse_keys(text, hash_key=hash_key), hash_key=hash_key)

    @property
    def sealing_key_id(self) -> str:
        return self._sealing_id

    @property
    def key_ids(self) -> tuple[str, ...]:
        return tuple(self._keys)

    def __repr__(self) -> str:
        return f"Sealer(key_ids={list(self._keys)})"

    def _cipher(self, kid: str) -> Any:
        if kid not in self._ciphers:
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM

            self._ciphers[kid] = AESGCM(self._keys[kid])
        return self._ciphers[kid]

    def seal(self, value: str, *, visit_key: str, purpose: str) -> str:
        """The sealed text of `value`, openable only for this visit key and purpose."""
        import secrets

        _check_binding(visit_key, purpose)
        if not isinstance(value, str):
            raise TypeError("only text is sealed")
        plain = value.encode()
        if len(plain) > MAX_VALUE_BYTES:
            raise ValueError(f"a sealed value holds at most {MAX_VALUE_BYTES} bytes")
        kid = self._sealing_id
        nonce = secrets.token_bytes(NONCE_BYTES)
        sealed = self._cipher(kid).encrypt(nonce, plain, _associated_data(kid, visit_key, purpose))
        return f"{VERSION}.{kid}.{_b64(nonce + sealed)}"

    def open(self, sealed: str, *, visit_key: str, purpose: str) -> str:
        """The value sealed for this visit key and purpose; SealBroken for anything else."""
        from cryptography.exceptions import InvalidTag

        _check_binding(visit_key, purpose)
        parts = sealed.split(".") if isinstance(sealed, str) else []
        if len(parts) != 3 or parts[0] != VERSION:
            raise SealBroken("not a sealed value of a known version")
        _, kid, body = parts
        if not _KEY_ID.fullmatch(kid):
            raise SealBroken("malformed key id")
        if kid not in self._keys:
            raise SealBroken(f"sealed with key {kid}, which is not in CONNECTOR_SEALING_KEYS")
        if not _BODY.fullmatch(body):
            raise SealBroken("malformed sealed text")
        try:
            raw = _unb64(body)
        except (binascii.Error, ValueError):
            raise SealBroken("malformed sealed text") from None
        if len(raw) < NONCE_BYTES + TAG_BYTES:
            raise SealBroken("sealed text too short")
        nonce, ciphertext = raw[:NONCE_BYTES], raw[NONCE_BYTES:]
        try:
            plain = self._cipher(kid).decrypt(
                nonce, ciphertext, _associated_data(kid, visit_key, purpose)
            )
            return plain.decode()
        except (InvalidTag, UnicodeDecodeError):
            raise SealBroken(
                "does not open: altered, or sealed for another visit or purpose"
            ) from None
