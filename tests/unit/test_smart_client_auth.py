"""Token-endpoint client authentication: client_secret_basic and private_key_jwt."""

from __future__ import annotations

import base64
from urllib.parse import unquote_plus

import jwt
import pytest

from lib.smart.client_auth import (
    ASSERTION_TYPE,
    ClientSecretBasic,
    PrivateKeyJwt,
)
from lib.smart.keys import SigningKey
from tests.helpers import generate_ec_pem, generate_rsa_pem

TOKEN_URL = "https://ehr.example.org/oauth2/token"
NOW = 1_800_000_000


def _basic_parts(headers: dict[str, str]) -> tuple[str, str]:
    scheme, _, encoded = headers["Authorization"].partition(" ")
    assert scheme == "Basic"
    client_id, _, secret = base64.b64decode(encoded).decode().partition(":")
    return client_id, secret


def test_basic_plain_secret():
    headers, form = ClientSecretBasic("my-client", "s3cr3t-._~").apply(TOKEN_URL)
    assert form == {}
    assert _basic_parts(headers) == ("my-client", "s3cr3t-._~")


def test_basic_form_urlencodes_each_part_rfc6749():
    client_id, secret = "id:with space", "p@ss:w/rd+é%"
    headers, _ = ClientSecretBasic(client_id, secret).apply(TOKEN_URL)
    raw_id, raw_secret = _basic_parts(headers)
    assert ":" not in raw_id and " " not in raw_id  # the colon separator stays unambiguous
    assert raw_secret == "p%40ss%3Aw%2Frd%2B%C3%A9%25"
    assert (unquote_plus(raw_id), unquote_plus(raw_secret)) == (client_id, secret)


def test_basic_never_shows_the_secret():
    auth = ClientSecretBasic("my-client", "hunter2-hunter2")
    assert "hunter2" not in repr(auth)
    with pytest.raises(ValueError):
        ClientSecretBasic("my-client", "")


@pytest.fixture(scope="module", params=["RS384", "ES384"])
def signing_key(request) -> SigningKey:
    pem = generate_rsa_pem() if request.param == "RS384" else generate_ec_pem()
    return SigningKey.from_pem(pem)


def test_private_key_jwt_form_fields(signing_key):
    headers, form = PrivateKeyJwt("my-client", signing_key).apply(TOKEN_URL)
    assert headers == {}
    assert set(form) == {"client_assertion_type", "client_assertion"}
    assert form["client_assertion_type"] == ASSERTION_TYPE


def test_private_key_jwt_assertion_header_and_claims(signing_key):
    auth = PrivateKeyJwt("my-client", signing_key, clock=lambda: NOW)
    assertion = auth.apply(TOKEN_URL)[1]["client_assertion"]
    header = jwt.get_unverified_header(assertion)
    assert header == {"alg": signing_key.alg, "kid": signing_key.kid, "typ": "JWT"}
    public = jwt.PyJWK(signing_key.public_jwk()).key
    claims = jwt.decode(
        assertion,
        public,
        algorithms=[signing_key.alg],
        audience=TOKEN_URL,
        options={"verify_exp": False, "verify_iat": False},
    )
    assert claims["iss"] == claims["sub"] == "my-client"
    assert claims["aud"] == TOKEN_URL
    assert claims["iat"] == NOW
    assert 0 < claims["exp"] - NOW <= 300
    assert len(claims["jti"]) >= 32


def test_private_key_jwt_verifies_now_and_jti_is_unique(signing_key):
    auth = PrivateKeyJwt("my-client", signing_key)
    public = jwt.PyJWK(signing_key.public_jwk()).key
    jtis = set()
    for _ in range(5):
        token = auth.assertion(TOKEN_URL)
        jtis.add(jwt.decode(token, public, algorithms=[signing_key.alg], audience=TOKEN_URL)["jti"])
    assert len(jtis) == 5


def test_private_key_jwt_does_not_verify_with_another_key(signing_key):
    other = SigningKey.from_pem(generate_ec_pem())
    token = PrivateKeyJwt("my-client", signing_key).assertion(TOKEN_URL)
    with pytest.raises(jwt.PyJWTError):
        jwt.decode(
            token, jwt.PyJWK(other.public_jwk()).key, algorithms=["ES384"], audience=TOKEN_URL
        )


def test_private_key_jwt_lifetime_is_capped_at_five_minutes(signing_key):
    with pytest.raises(ValueError):
        PrivateKeyJwt("my-client", signing_key, lifetime_seconds=301)
    assert "PRIVATE" not in repr(PrivateKeyJwt("my-client", signing_key))
