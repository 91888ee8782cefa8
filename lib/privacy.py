"""Keyed hashes and signed, expiring tokens: how we refer to visits without storing identifiers.

Both use keys derived from CONNECTOR_HASH_KEY (handed in by the composition root) with a purpose
label, so a hash can never be replayed as a token signature and the other way round. Values a
later step must read back (an appointment id, a phone number) are sealed instead
(lib/sealing.py), with their own key.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import time
from typing import Any


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class PrivacyKeys:
    def __init__(self, root_key: str) -> None:
        if len(root_key) < 32:
            raise ValueError("the hash key needs at least 32 characters")
        self._root = root_key.encode()

    def __repr__(self) -> str:  # never the key
        return "PrivacyKeys(...)"

    @functools.lru_cache(maxsize=64)  # noqa: B019 - one instance per process; few purposes
    def _key(self, purpose: str) -> bytes:
        return hmac.new(self._root, f"evc:{purpose}".encode(), hashlib.sha256).digest()

    def keyed_hash(self, *parts: str, purpose: str = "id") -> str:
        """A stable, non-reversible stand-in for an identifier (hex, 32 characters)."""
        message = "\x1f".join(parts).encode()
        return hmac.new(self._key(purpose), message, hashlib.sha256).hexdigest()[:32]

    def mac(self, message: bytes, *, purpose: str) -> bytes:
        """HMAC-SHA256 of ``message`` under this purpose's key (for compact binary tokens)."""
        return hmac.new(self._key(purpose), message, hashlib.sha256).digest()

    def sign(self, payload: dict[str, Any], *, purpose: str, ttl_seconds: int) -> str:
        """A compact token: base64url(JSON payload with exp) . base64url(HMAC-SHA256)."""
        body = _b64(json.dumps({**payload, "exp": int(time.time()) + ttl_seconds}).encode())
        mac = hmac.new(self._key(purpose), body.encode(), hashlib.sha256).digest()
        return f"{body}.{_b64(mac)}"

    def verify(self, token: str, *, purpose: str) -> dict[str, Any] | None:
        """The payload of a token we signed for this purpose that has not expired; else None."""
        try:
            body, mac = token.split(".")
            expected = hmac.new(self._key(purpose), body.encode(), hashlib.sha256).digest()
            if not hmac.compare_digest(_unb64(mac), expected):
                return None
            payload = json.loads(_unb64(body))
        except (ValueError, TypeError):
            return None
        if not isinstance(payload, dict) or payload.get("exp", 0) < time.time():
            return None
        return payload
