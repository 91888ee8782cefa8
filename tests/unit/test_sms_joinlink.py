"""The join link's token: compact, bound to its visit and version, and any change breaks it."""

from __future__ import annotations

import secrets

from lib.privacy import PrivacyKeys
from lib.sms import joinlink

KEYS = PrivacyKeys("unit-test-hash-key-0123456789abcdef0123")


def test_it_round_trips_and_fits_beside_a_line_of_text():
    ref = joinlink.JoinRef(secrets.token_hex(16), 4_000_000_000)
    token = joinlink.make(KEYS, ref)
    assert joinlink.read(KEYS, token) == ref
    link = f"https://evc.contoso-health.org/api/j/{token}"
    assert len(token) == 40 and len(link) <= 80  # 160 - 80 left for the text itself


def test_every_changed_character_is_refused():
    token = joinlink.make(KEYS, joinlink.JoinRef(secrets.token_hex(16), 2))
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    for i, ch in enumerate(token):
        other = alphabet[(alphabet.index(ch) + 1) % len(alphabet)]
        assert joinlink.read(KEYS, token[:i] + other + token[i + 1 :]) is None, i
    for bent in (token[:-1], token + "A", token.replace(token[0], "+", 1), ""):
        assert joinlink.read(KEYS, bent) is None


def test_another_deployments_key_or_purpose_does_not_verify():
    ref = joinlink.JoinRef(secrets.token_hex(16), 1)
    token = joinlink.make(KEYS, ref)
    assert joinlink.read(PrivacyKeys("another-deployment-key-0123456789abcdef"), token) is None
    # A MAC made for another purpose (e.g. the visit page's) is not a join link's.
    body = token  # same bytes under a different purpose key cannot match
    assert KEYS.mac(b"x", purpose="visit-page") != KEYS.mac(b"x", purpose=joinlink.PURPOSE)
    assert joinlink.read(KEYS, body) == ref
