"""The EHR's OpenID Connect id_token, and the deliberately broken ones of the ``bad_id_token``
quirk (security tests of our id_token validation).

Bad kinds: ``wrong_aud`` (aud is another client), ``expired`` (exp an hour ago), ``bad_signature``
(signed by a stranger's key under our kid), ``wrong_nonce``, ``wrong_iss`` (another issuer),
``missing_kid``. ``missing_kid`` is a *valid* token without a ``kid`` header: real servers do
that, and a client must then try each key of the right type (PROTOCOLS.md), so it must pass.
"""

from __future__ import annotations

import threading
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from dev.sandbox.entra.keys import KeySet

ID_TOKEN_LIFETIME = 300
BAD_KINDS = ("wrong_aud", "expired", "bad_signature", "wrong_nonce", "wrong_iss", "missing_kid")

_stranger: rsa.RSAPrivateKey | None = None
_stranger_lock = threading.Lock()


def _stranger_key() -> rsa.RSAPrivateKey:
    global _stranger
    with _stranger_lock:
        if _stranger is None:
            _stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return _stranger


def claims(
    issuer: str,
    client_id: str,
    subject: str,
    fhir_user: str,
    username: str,
    nonce: str | None,
    now: int,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "iss": issuer,
        "sub": subject,
        "aud": client_id,
        "iat": now,
        "nbf": now,
        "exp": now + ID_TOKEN_LIFETIME,
        "fhirUser": fhir_user,
        "preferred_username": username,
    }
    if nonce:
        body["nonce"] = nonce
    body.update(extra or {})
    return body


def sign(keys: KeySet, body: dict[str, Any], bad: str | None = None) -> str:
    """RS256 with the EHR's active key and its kid, or broken the ``bad`` way."""
    body = dict(body)
    if bad == "wrong_aud":
        body["aud"] = "some-other-client"
    elif bad == "expired":
        body["iat"] = body["nbf"] = body["iat"] - 7200
        body["exp"] = body["iat"] + ID_TOKEN_LIFETIME
    elif bad == "wrong_nonce":
        body["nonce"] = "not-" + str(body.get("nonce", "the-nonce"))
    elif bad == "wrong_iss":
        body["iss"] = body["iss"].rstrip("/") + "-impostor"
    active = keys.active
    headers = {"kid": active.kid, "typ": "JWT"}
    if bad == "missing_kid":
        return jwt.encode(body, active.private_key, algorithm="RS256", headers={"typ": "JWT"})
    if bad == "bad_signature":
        return jwt.encode(body, _stranger_key(), algorithm="RS256", headers=headers)
    return jwt.encode(body, active.private_key, algorithm="RS256", headers=headers)


def jwks(keys: KeySet) -> dict[str, Any]:
    """The published keys, shaped like an EHR's (no Entra-only members)."""
    published = []
    for key in keys.jwks(issuer="")["keys"]:
        published.append(
            {
                "kty": key["kty"],
                "use": "sig",
                "alg": "RS256",
                "kid": key["kid"],
                "n": key["n"],
                "e": key["e"],
            }
        )
    return {"keys": published}
