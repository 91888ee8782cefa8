"""Keyed hashes and signed, expiring tokens: how we refer to visits without storing identifiers.

Both use keys derived from CONNECTOR_HASH_KEY with a purpose label, so a hash can never be replayed
as a token signature and the other way round.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

from lib.settings import get_settings


def _key(purpose: str) -> bytes:
    root = get_settings().hash_key.get_secret_value().encode()
    return hmac.new(root, f"evc:{purpose}".encode(), hashlib.sha256).digest()


def keyed_hash(*parts: str, purpose: str = "id") -> str:
    """A stable, non-reversible stand-in for an identifier (hex, 32 characters)."""
    message = "\x1f".join(parts).encode()
    return hmac.new(_key(purpose), message, hashlib.sha256).hexdigest()[:32]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(payload: dict[str, Any], *, purpose: str, ttl_seconds: int) -> str:
    """A compact token: base64url(JSON payload with exp) . base64url(HMAC-SHA256)."""
    body = _b64(json.dumps({**payload, "exp": int(time.time()) + ttl_seconds}).encode())
    mac = hmac.new(_key(purpose), body.encode(), hashlib.sha256).digest()
    return f"{body}.{_b64(mac)}"


def verify(token: str, *, purpose: str) -> dict[str, Any] | None:
    """The payload of a token we signed for this purpose and that has not expired; else None."""
    try:
        body, mac = token.split(".")
        expected = hmac.new(_key(purpose), body.encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(_unb64(mac), expected):
            return None
        payload = json.loads(_unb64(body))
    except (ValueError, TypeError):
        return None
    if not isinstance(payload, dict) or payload.get("exp", 0) < time.time():
        return None
    return payload
