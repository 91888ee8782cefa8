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


def _verifies(token: str, jwks: dict) -> bool:
    """What an EHR does with our assertion: find the kid in the JWKS it holds, verify."""
    kid = jwt.get_unverified_header(token)["kid"]
    jwk = next((k for k in jwks["keys"] if k["kid"] == kid), None)
    if jwk is None:
        return False
    key = jwt.PyJWK(jwk)
    jwt.decode(token, key.key, algorithms=[jwk["alg"]], audience="https://ehr/token")
    return True


def test_rotation_add_switch_remove_never_breaks_an_ehr(ec_pem):
    """The CONNECTOR_SIGNING_KEYS steps of docs/deploy.md#keys, for one algorithm (RS384).

    An EHR caches our JWKS (we say max-age=3600): at each step, what we sign verifies against
    the JWKS the EHR fetched at the step before.
    """
    from lib.bootstrap import split_pem
    from lib.endpoints.client import key_for

    old, new = generate_rsa_pem(), generate_rsa_pem()
    claims = {"iss": "client", "sub": "client", "aud": "https://ehr/token", "jti": "1"}
    steps = [old + ec_pem, old + ec_pem + new, new + ec_pem + old, new + ec_pem]
    cached = None
    for step, setting in enumerate(steps):
        keys = KeySet.from_pems(split_pem(setting))
        signer = key_for(keys, "RS384")
        token = signer.sign(claims)
        if cached is not None:
            assert _verifies(token, cached), f"step {step}: the EHR's cached JWKS lacks our key"
        cached = keys.public_jwks()
        assert _verifies(token, cached)
        assert key_for(keys, "ES384").alg == "ES384"  # the other algorithm is untouched
    assert signer.kid == SigningKey.from_pem(new).kid
    assert SigningKey.from_pem(old).kid not in {k["kid"] for k in cached["keys"]}


def test_switching_in_one_step_would_break_an_ehr_with_a_cached_jwks():
    """Why the add step exists: the test above would fail without it."""
    old, new = generate_rsa_pem(), generate_rsa_pem()
    cached = KeySet.from_pems([old]).public_jwks()
    token = KeySet.from_pems([new, old]).signing_key.sign({"aud": "https://ehr/token"})
    assert not _verifies(token, cached)
