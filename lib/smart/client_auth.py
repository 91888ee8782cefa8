"""How we authenticate to a token endpoint (confidential client).

Both implement `apply(token_url) -> (headers, form_fields)`, added to the token request:

- `ClientSecretBasic`: RFC 6749 §2.3.1 - `Authorization: Basic base64(enc(id) ":" enc(secret))`
  where enc is application/x-www-form-urlencoded. Many libraries skip the encoding; it makes no
  difference for secrets made of `[A-Za-z0-9-._~]`, and is right for everything else.
- `PrivateKeyJwt`: SMART asymmetric client auth (RFC 7523) - a JWT signed with our key
  (RS384 / ES384), `iss = sub = client_id`, `aud = token URL`, short `exp`, unique `jti`.
  The same assertion serves Backend Services (client_credentials).
"""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol
from urllib.parse import quote_plus

if TYPE_CHECKING:
    from lib.smart.keys import SigningKey

CLIENT_SECRET_BASIC = "client_secret_basic"
PRIVATE_KEY_JWT = "private_key_jwt"
METHODS = (CLIENT_SECRET_BASIC, PRIVATE_KEY_JWT)
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

Headers = dict[str, str]
Form = dict[str, str]


class ClientAuth(Protocol):
    """What the token functions need from a client authentication."""

    method: str
    client_id: str

    def apply(self, token_url: str) -> tuple[Headers, Form]: ...


class ClientSecretBasic:
    method = CLIENT_SECRET_BASIC

    def __init__(self, client_id: str, secret: str) -> None:
        if not client_id or not secret:
            raise ValueError("client_secret_basic needs a client id and a secret")
        self.client_id = client_id
        self._secret = secret

    def apply(self, token_url: str) -> tuple[Headers, Form]:
        pair = f"{quote_plus(self.client_id)}:{quote_plus(self._secret)}"
        encoded = base64.b64encode(pair.encode("utf-8")).decode("ascii")
        return {"Authorization": f"Basic {encoded}"}, {}

    def __repr__(self) -> str:
        return f"ClientSecretBasic(client_id={self.client_id!r})"


class PrivateKeyJwt:
    method = PRIVATE_KEY_JWT

    def __init__(
        self,
        client_id: str,
        signing_key: SigningKey,
        *,
        lifetime_seconds: int = 240,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not client_id:
            raise ValueError("private_key_jwt needs a client id")
        if not 0 < lifetime_seconds <= 300:
            raise ValueError("SMART limits the assertion lifetime to 5 minutes")
        self.client_id = client_id
        self.signing_key = signing_key
        self._lifetime = lifetime_seconds
        self._clock = clock

    def assertion(self, token_url: str) -> str:
        now = int(self._clock())
        claims = {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": token_url,
            "iat": now,
            "exp": now + self._lifetime,
            "jti": uuid.uuid4().hex,  # 122 random bits; the server refuses a replayed jti
        }
        return self.signing_key.sign(claims)

    def apply(self, token_url: str) -> tuple[Headers, Form]:
        return {}, {
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": self.assertion(token_url),
        }

    def __repr__(self) -> str:
        return f"PrivateKeyJwt(client_id={self.client_id!r}, kid={self.signing_key.kid!r})"
