"""id_token checks that need no network: keys, claims, fhirUser.

Fetching JWKS (rotation, missing kid, issuer discovery) is in tests/integration/test_smart_http.py.
"""

from __future__ import annotations

import time

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from lib.smart.id_token import _NoKeyVerified, fhir_user, parse_reference, verify_with_keys
from lib.web.errors import AppError

CLIENT = "my-client"


def new_rsa():
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = jwt.algorithms.RSAAlgorithm.to_jwk(private.public_key(), as_dict=True)
    return private, jwk


@pytest.fixture(scope="module")
def keys():
    return [new_rsa(), new_rsa()]


def mint(private, claims=None, *, kid="k1", alg="RS256", **overrides):
    now = int(time.time())
    body = {
        "iss": "https://ehr.example.org/oauth2",
        "sub": "u1",
        "aud": CLIENT,
        "iat": now,
        "exp": now + 300,
        "nonce": "n1",
        **(claims or {}),
    }
    body.update(overrides)
    body = {k: v for k, v in body.items() if v is not None}  # None removes a claim
    headers = {"kid": kid} if kid else {}
    return jwt.encode(body, private, algorithm=alg, headers=headers)


def jwks(*pairs):
    return [{**jwk, "kid": kid} for kid, (_, jwk) in pairs]


def test_good_token(keys):
    claims = verify_with_keys(mint(keys[0][0]), jwks(("k1", keys[0])), client_id=CLIENT)
    assert claims["sub"] == "u1"


def test_kid_selects_the_key(keys):
    token = mint(keys[1][0], kid="k2")
    claims = verify_with_keys(token, jwks(("k1", keys[0]), ("k2", keys[1])), client_id=CLIENT)
    assert claims["sub"] == "u1"


def test_token_without_kid_tries_each_key_of_the_type(keys):
    token = mint(keys[1][0], kid=None)
    ec_jwk = jwt.algorithms.ECAlgorithm.to_jwk(
        ec.generate_private_key(ec.SECP384R1()).public_key(), as_dict=True
    )
    available = [ec_jwk, *jwks(("k1", keys[0]), ("k2", keys[1]))]
    assert verify_with_keys(token, available, client_id=CLIENT)["sub"] == "u1"


def test_unknown_kid_and_bad_signature_ask_for_a_refresh(keys):
    with pytest.raises(_NoKeyVerified, match="unknown key"):
        verify_with_keys(mint(keys[0][0], kid="k9"), jwks(("k1", keys[0])), client_id=CLIENT)
    with pytest.raises(_NoKeyVerified, match="signature"):
        verify_with_keys(mint(keys[1][0], kid="k1"), jwks(("k1", keys[0])), client_id=CLIENT)


def test_encryption_keys_and_other_algorithms_are_not_candidates(keys):
    enc = [{**jwks(("k1", keys[0]))[0], "use": "enc"}]
    with pytest.raises(_NoKeyVerified, match="unknown key"):
        verify_with_keys(mint(keys[0][0]), enc, client_id=CLIENT)
    rs512 = [{**jwks(("k1", keys[0]))[0], "alg": "RS512"}]
    with pytest.raises(_NoKeyVerified):
        verify_with_keys(mint(keys[0][0]), rs512, client_id=CLIENT)


# Times relative to the test's own run (a suite longer than ten minutes must not turn
# "issued ten minutes from now", fixed at collection, into the past).
@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        (lambda now: {"exp": now - 120}, "expired"),
        (lambda now: {"aud": "someone-else"}, "audience"),
        (lambda now: {"iat": now + 600, "exp": now + 900}, "not yet valid"),
        (lambda now: {"exp": None}, "missing exp"),
    ],
    ids=["expired", "audience", "not yet valid", "missing exp"],
)
def test_claim_failures_have_short_reasons(keys, overrides, reason):
    token = mint(keys[0][0], **overrides(int(time.time())))
    with pytest.raises(AppError) as caught:
        verify_with_keys(token, jwks(("k1", keys[0])), client_id=CLIENT)
    assert (caught.value.code, caught.value.detail) == ("TOKEN-ID-TOKEN-INVALID", reason)


def test_leeway_of_a_minute(keys):
    token = mint(keys[0][0], {"exp": int(time.time()) - 30})
    assert verify_with_keys(token, jwks(("k1", keys[0])), client_id=CLIENT)


def test_audience_list_containing_us(keys):
    token = mint(keys[0][0], {"aud": ["other", CLIENT]})
    assert verify_with_keys(token, jwks(("k1", keys[0])), client_id=CLIENT)


@pytest.mark.parametrize("alg", ["none", "HS256"])
def test_unsigned_and_symmetric_tokens_are_refused(keys, alg):
    token = jwt.encode({"sub": "x"}, None if alg == "none" else "k" * 32, algorithm=alg)
    with pytest.raises(AppError, match="TOKEN-ID-TOKEN-INVALID") as caught:
        verify_with_keys(token, jwks(("k1", keys[0])), client_id=CLIENT)
    assert caught.value.detail == "algorithm"


def test_garbage_is_malformed():
    with pytest.raises(AppError) as caught:
        verify_with_keys("not.a.jwt", [], client_id=CLIENT)
    assert caught.value.detail == "malformed"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Practitioner/abc", ("Practitioner", "abc")),
        ("https://ehr.example.org/api/FHIR/R4/Practitioner/eX.y-1", ("Practitioner", "eX.y-1")),
        ("https://x/r4/t1/Patient/12/_history/3", ("Patient", "12")),
        ("RelatedPerson/r1", ("RelatedPerson", "r1")),
        ("abc", None),
        ("practitioner/abc", None),
        ("Practitioner/" + "a" * 65, None),
    ],
)
def test_parse_reference(value, expected):
    assert parse_reference(value) == expected


def test_fhir_user_claim_then_profile():
    assert fhir_user({"fhirUser": "Practitioner/a", "profile": "Practitioner/b"}) == (
        "Practitioner",
        "a",
    )
    assert fhir_user({"profile": "Patient/p"}) == ("Patient", "p")
    assert fhir_user({"fhirUser": 5}) is None
