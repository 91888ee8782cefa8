"""The join link's token (F15): compact, HMAC-signed, naming one visit and its schedule version.

    /api/j/<token>   token = base64url( 0x01 | visit key (16 bytes) | version (4) | MAC (9) )

40 characters: with a deployment's host the link stays near 70 characters, leaving room in
one 160-character GSM-7 segment for a line of text. The MAC is HMAC-SHA256 under the key for
the purpose `sms-join` (lib/privacy.py), truncated to 72 bits (NIST SP 800-107 allows
truncation to 64 bits or more; a forger gets one guess per request). The token carries no
time: when it works is decided at use from the visit (its start, the endpoint's join window)
and the version (a reschedule supersedes older links), so a moved appointment moves the
window of its newest link and closes the older ones.
"""

from __future__ import annotations

import base64
import hmac
import re
import struct
from dataclasses import dataclass

from lib.privacy import PrivacyKeys

PURPOSE = "sms-join"
FORMAT = 1
_MAC_BYTES = 9  # 21 + 9 = 30 bytes: exactly 40 base64url characters, no spare bits
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{40}$")


@dataclass(frozen=True)
class JoinRef:
    visit_key: str  # 32 hex characters (lib/visits/keys.py)
    version: int


def make(privacy: PrivacyKeys, ref: JoinRef) -> str:
    body = struct.pack(">B16sI", FORMAT, bytes.fromhex(ref.visit_key), ref.version)
    mac = privacy.mac(body, purpose=PURPOSE)[:_MAC_BYTES]
    return base64.urlsafe_b64encode(body + mac).decode().rstrip("=")


def read(privacy: PrivacyKeys, token: str) -> JoinRef | None:
    """The reference a token we made names; None for anything else (tampered, truncated)."""
    if not _TOKEN.fullmatch(token):
        return None
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    body, mac = raw[:-_MAC_BYTES], raw[-_MAC_BYTES:]
    if len(body) != 21 or not hmac.compare_digest(
        mac, privacy.mac(body, purpose=PURPOSE)[:_MAC_BYTES]
    ):
        return None
    form, key, version = struct.unpack(">B16sI", body)
    if form != FORMAT:
        return None
    return JoinRef(key.hex(), version)
