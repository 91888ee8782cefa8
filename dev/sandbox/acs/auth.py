"""Communication Services HMAC-SHA256 request authentication, checked as the service checks it.

The SDKs (``azure-communication-sms``, ``-phonenumbers``) sign each request with the resource's
access key (base64; the ``accesskey=`` of the connection string):

    Authorization: HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature=<b64>
    x-ms-date: <RFC 1123 date>           x-ms-content-sha256: base64(SHA-256(body))

where the signature is HMAC-SHA256(key, "VERB\\n<path>?<query>\\n<x-ms-date>;<host>;<hash>").
The service recomputes it from what arrived: the Host header, the request target, the body's
own hash (a body changed in transit fails), and refuses a date too far from now (replay). The
phone-numbers SDK signs the percent-decoded target (``decode_url=True``), so both forms pass.
A bearer token (Entra) is the other scheme the service accepts; the sandbox does not issue
Communication Services tokens, so it answers 401 to it, as to anything else.
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import hmac
import time
from urllib.parse import unquote

from werkzeug.wrappers import Request

SIGNED_HEADERS = "x-ms-date;host;x-ms-content-sha256"
CLOCK_SKEW_S = 15 * 60  # how far x-ms-date may be from the service's clock


class AuthError(Exception):
    """401: ``code`` and ``message`` as the service's error body gives them."""

    def __init__(self, message: str, code: str = "Denied") -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def request_target(request: Request) -> str:
    """Path and query exactly as the client sent them (before werkzeug decodes anything)."""
    raw = request.environ.get("REQUEST_URI") or request.environ.get("RAW_URI")
    if raw:
        return raw
    query = request.environ.get("QUERY_STRING", "")
    return request.path + (f"?{query}" if query else "")


def string_to_sign(verb: str, target: str, date: str, host: str, content_hash: str) -> str:
    return f"{verb.upper()}\n{target}\n{date};{host};{content_hash}"


def sign(key_b64: str, value: str) -> str:
    digest = hmac.new(base64.b64decode(key_b64), value.encode("utf-8"), hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def verify(request: Request, access_keys: list[str], now: float | None = None) -> None:
    """Raises ``AuthError`` unless the request is signed with one of ``access_keys`` (the
    resource has a primary and a secondary key, so a key can be rotated without downtime)."""
    scheme, _, params = request.headers.get("Authorization", "").partition(" ")
    if scheme.upper() != "HMAC-SHA256":
        raise AuthError("Denied by the resource provider: no HMAC-SHA256 authorization.")
    fields = dict(p.partition("=")[::2] for p in params.split("&") if p)
    if fields.get("SignedHeaders", "").lower() != SIGNED_HEADERS:
        raise AuthError(f"SignedHeaders must be {SIGNED_HEADERS}.")
    date = request.headers.get("x-ms-date", "")
    content_hash = request.headers.get("x-ms-content-sha256", "")
    _check_date(date, now if now is not None else time.time())
    body_hash = base64.b64encode(hashlib.sha256(request.get_data()).digest()).decode("ascii")
    if not hmac.compare_digest(content_hash, body_hash):
        raise AuthError("x-ms-content-sha256 does not match the body.")
    target = request_target(request)
    expected_inputs = {
        string_to_sign(request.method, t, date, request.host, content_hash)
        for t in (target, unquote(target))
    }
    given = fields.get("Signature", "")
    for key in access_keys:
        for value in expected_inputs:
            if hmac.compare_digest(sign(key, value), given):
                return
    raise AuthError("Denied by the resource provider: the signature does not match.")


def _check_date(date: str, now: float) -> None:
    try:
        sent = email.utils.parsedate_to_datetime(date).timestamp()
    except (TypeError, ValueError):
        raise AuthError("x-ms-date is missing or not an RFC 1123 date.") from None
    if abs(now - sent) > CLOCK_SKEW_S:
        raise AuthError("x-ms-date is too far from the current time.")
