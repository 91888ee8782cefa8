"""Our signing keys and the JWKS we publish."""

from __future__ import annotations

import base64

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from lib.smart.keys import KeySet, SigningKey, jwk_thumbprint
from tests.helpers import generate_ec_pem, generate_rsa_pem

PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}


@pytest.fixture(scope="module")
def rsa_pem() -> str:
    return generate_rsa_pem()


@pytest.fixture(scope="module")
def ec_pem() -> str:
    return generate_ec_pem()


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def test_rfc7638_thumbprint_vector():
    # RFC 7638 §3.1
    jwk = {
        "kty": "RSA",
        "e": "AQAB",
        "alg": "RS256",
        "kid": "2011-04-29",
        "n": (
            "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6"
            "tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5"
            "v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD0"
            "8qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU"
            "8awapJzKnqDKgw"
        ),
    }
    assert jwk_thumbprint(jwk) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def test_rsa_key_publishes_rs384_public_members_only(rsa_pem):
    key = SigningKey.from_pem(rsa_pem)
    jwk = key.public_jwk()
    assert key.alg == "RS384"
    assert set(jwk) == {"kty", "n", "e", "kid", "alg", "use"}
    assert (jwk["kty"], jwk["alg"], jwk["use"], jwk["e"]) == ("RSA", "RS384", "sig", "AQAB")
    assert len(_b64decode(jwk["n"])) == 256
    assert jwk["kid"] == jwk_thumbprint(jwk) == key.kid


def test_ec_key_publishes_es384_public_members_only(ec_pem):
    key = SigningKey.from_pem(ec_pem)
    jwk = key.public_jwk()
    assert key.alg == "ES384"
    assert set(jwk) == {"kty", "crv", "x", "y", "kid", "alg", "use"}
    assert (jwk["kty"], jwk["crv"], jwk["alg"]) == ("EC", "P-384", "ES384")
    assert len(_b64decode(jwk["x"])) == len(_b64decode(jwk["y"])) == 48
    assert jwk["kid"] == jwk_thumbprint(jwk)


def test_kid_is_stable_across_loads_and_pem_forms(rsa_pem):
    one = SigningKey.from_pem(rsa_pem)
    escaped = rsa_pem.strip().replace("\n", "\\n")  # how an app setting often holds it
    assert SigningKey.from_pem(escaped).kid == one.kid
    assert SigningKey.from_pem(rsa_pem.encode()).kid == one.kid


def test_traditional_openssl_formats_load():
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pkcs1 = rsa_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    assert SigningKey.from_pem(pkcs1).alg == "RS384"


@pytest.mark.parametrize(
    "make",
    [
        lambda: rsa.generate_private_key(public_exponent=65537, key_size=1024),
        lambda: ec.generate_private_key(ec.SECP256R1()),
    ],
    ids=["rsa-1024", "ec-p256"],
)
def test_weak_or_wrong_keys_are_refused(make):
    with pytest.raises(ValueError):
        SigningKey(make())


def test_garbage_pem_is_a_value_error():
    with pytest.raises(ValueError, match="PEM"):
        SigningKey.from_pem("-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----")


def test_signature_verifies_with_the_published_jwk(rsa_pem, ec_pem):
    for pem in (rsa_pem, ec_pem):
        key = SigningKey.from_pem(pem)
        token = key.sign({"hello": "world"})
        public = jwt.PyJWK(key.public_jwk()).key
        assert jwt.decode(token, public, algorithms=[key.alg]) == {"hello": "world"}
        assert jwt.get_unverified_header(token) == {"alg": key.alg, "kid": key.kid, "typ": "JWT"}


def test_key_set_first_key_signs_and_all_are_published(rsa_pem, ec_pem):
    old, new = SigningKey.from_pem(rsa_pem), SigningKey.from_pem(ec_pem)
    rotating = KeySet([old, new])  # step 1: publish the new key beside the old one
    assert rotating.signing_key is old
    assert [k["kid"] for k in rotating.public_jwks()["keys"]] == [old.kid, new.kid]
    switched = KeySet([new, old])  # step 2: the new key signs
    assert switched.signing_key is new
    assert switched.get(old.kid) is old
    assert switched.get("nope") is None
    for jwk in switched.public_jwks()["keys"]:
        assert not PRIVATE_MEMBERS & set(jwk)


def test_key_set_refuses_empty_and_duplicates(rsa_pem):
    with pytest.raises(ValueError):
        KeySet([])
    with pytest.raises(ValueError):
        KeySet.from_pems([rsa_pem, rsa_pem])


def test_repr_shows_no_key_material(rsa_pem):
    key = SigningKey.from_pem(rsa_pem)
    assert repr(key) == f"SigningKey(alg='RS384', kid={key.kid!r})"
