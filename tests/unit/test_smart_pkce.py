"""PKCE, state and nonce (RFC 7636; SMART App Launch 2)."""

from __future__ import annotations

import re

import pytest

from lib.smart import pkce

URL_SAFE = re.compile(r"^[A-Za-z0-9\-._~]+$")


def test_rfc7636_appendix_b_vector():
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    assert pkce.challenge_s256(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


@pytest.mark.parametrize("length", [43, 64, 128])
def test_verifier_length_and_alphabet(length):
    verifier = pkce.new_verifier(length)
    assert len(verifier) == length
    assert URL_SAFE.match(verifier)


@pytest.mark.parametrize("length", [42, 129])
def test_verifier_length_outside_rfc_is_refused(length):
    with pytest.raises(ValueError):
        pkce.new_verifier(length)


def test_challenge_refuses_an_invalid_verifier():
    with pytest.raises(ValueError):
        pkce.challenge_s256("short")
    with pytest.raises(ValueError):
        pkce.challenge_s256("x" * 50 + "!")


def test_new_pkce_pairs_verifier_and_challenge_and_hides_the_verifier():
    pair = pkce.new_pkce()
    assert pair.method == "S256"
    assert pair.challenge == pkce.challenge_s256(pair.verifier)
    assert pair.verifier not in repr(pair)
    assert pkce.new_pkce().verifier != pair.verifier


@pytest.mark.parametrize("make", [pkce.new_state, pkce.new_nonce])
def test_state_and_nonce_are_long_url_safe_and_unique(make):
    values = {make() for _ in range(200)}
    assert len(values) == 200
    for value in values:
        assert URL_SAFE.match(value)
        assert len(value) >= 43  # 32 random bytes: 256 bits >= the 128 the spec asks for
