"""Sealed values: AES-GCM bound to visit key and purpose; key ids; rotation; key settings."""

from __future__ import annotations

import base64
import re
import secrets

import pytest

from dev.stack import SEALING_KEY, settings_env
from lib.sealing import SealBroken, Sealer, SealingKeyError, key_id, parse_keys
from lib.settings import SettingsError, load_settings

VISIT = "3f1c0e9a5b7d4c2e8a6b0d1f2e3c4b5a"
OTHER_VISIT = "0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d"
HASH_KEY = "test-hash-key-0123456789abcdef0123456789"


def new_key() -> bytes:
    return secrets.token_bytes(32)


def b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


@pytest.fixture
def sealer() -> Sealer:
    return Sealer([new_key()])


def test_round_trip_and_format(sealer):
    sealed = sealer.seal("Appointment/eAB3mDIBx", visit_key=VISIT, purpose="appointment-id")
    assert sealer.open(sealed, visit_key=VISIT, purpose="appointment-id") == "Appointment/eAB3mDIBx"
    version, kid, body = sealed.split(".")
    assert version == "s1" and kid == sealer.sealing_key_id and re.fullmatch(r"[0-9a-f]{8}", kid)
    assert sealed.isascii() and re.fullmatch(r"[A-Za-z0-9_-]+", body)
    assert len(base64.urlsafe_b64decode(body + "==")) == 12 + len("Appointment/eAB3mDIBx") + 16
    assert "eAB3mDIBx" not in sealed


def test_each_seal_has_a_fresh_nonce(sealer):
    a = sealer.seal("+15551234567", visit_key=VISIT, purpose="phone")
    b = sealer.seal("+15551234567", visit_key=VISIT, purpose="phone")
    assert a != b
    nonce = lambda s: base64.urlsafe_b64decode(s.split(".")[2] + "==")[:12]  # noqa: E731
    assert nonce(a) != nonce(b)
    assert sealer.open(a, visit_key=VISIT, purpose="phone") == "+15551234567"
    assert sealer.open(b, visit_key=VISIT, purpose="phone") == "+15551234567"


def test_empty_and_non_ascii_values_round_trip(sealer):
    for value in ["", "Zoë · 東京", "x" * 4096]:
        sealed = sealer.seal(value, visit_key=VISIT, purpose="external-id")
        assert sealer.open(sealed, visit_key=VISIT, purpose="external-id") == value
    with pytest.raises(ValueError):
        sealer.seal("x" * 4097, visit_key=VISIT, purpose="external-id")


def _flip(text: str, index: int) -> str:
    """`text` with the character at `index` replaced by another of the base64url alphabet."""
    replacement = "A" if text[index] != "A" else "B"
    return text[:index] + replacement + text[index + 1 :]


def _tampered_bodies(body: str) -> dict[str, str]:
    raw = base64.urlsafe_b64decode(body + "==")
    enc = lambda b: base64.urlsafe_b64encode(b).decode().rstrip("=")  # noqa: E731

    def flipped(i: int) -> str:
        return enc(raw[:i] + bytes([raw[i] ^ 0x01]) + raw[i + 1 :])

    return {
        "nonce": flipped(0),
        "nonce-end": flipped(11),
        "ciphertext": flipped(12),
        "tag": flipped(len(raw) - 1),
        "truncated-tag": enc(raw[:-1]),
        "extended": enc(raw + b"\x00"),
        "too-short": enc(raw[:27]),
        "empty": "",
        "not-base64url": body[:-2] + "+/",
    }


def test_tampering_with_any_part_breaks_the_seal(sealer):
    sealed = sealer.seal("Appointment/eAB3mDIBx", visit_key=VISIT, purpose="appointment-id")
    version, kid, body = sealed.split(".")
    variants = {
        f"body:{name}": f"{version}.{kid}.{b}" for name, b in _tampered_bodies(body).items()
    }
    variants |= {
        "version": f"s2.{kid}.{body}",
        "no-version": f"{kid}.{body}",
        # another well-formed key id (hex): "0" unless the id starts with "0"
        "kid": f"{version}.{'1' if kid[0] == '0' else '0'}{kid[1:]}.{body}",
        "kid-too-long": f"{version}.{kid}0.{body}",
        "kid-not-hex": f"{version}.{kid[:7]}g.{body}",
        "extra-part": f"{sealed}.x",
        "whitespace": f" {sealed}",
        "trailing-newline": f"{sealed}\n",
        "kid-trailing-newline": f"{version}.{kid}\n.{body}",
        "nothing": "",
    }
    for name, text in variants.items():
        assert text != sealed, name
        with pytest.raises(SealBroken):
            sealer.open(text, visit_key=VISIT, purpose="appointment-id")


def test_a_wrong_purpose_does_not_open(sealer):
    sealed = sealer.seal("+15551234567", visit_key=VISIT, purpose="phone")
    with pytest.raises(SealBroken):
        sealer.open(sealed, visit_key=VISIT, purpose="appointment-id")


def test_a_wrong_visit_key_does_not_open(sealer):
    sealed = sealer.seal("+15551234567", visit_key=VISIT, purpose="phone")
    with pytest.raises(SealBroken):
        sealer.open(sealed, visit_key=OTHER_VISIT, purpose="phone")
    with pytest.raises(SealBroken):  # a prefix of the key is another key, not a match
        sealer.open(sealed, visit_key=VISIT[:-1], purpose="phone")


def test_a_value_copied_to_another_row_does_not_open(sealer):
    """Rows (visit, purpose) hold their own sealed texts: swapping them in storage is caught."""
    rows = {
        (VISIT, "phone"): sealer.seal("+15551234567", visit_key=VISIT, purpose="phone"),
        (OTHER_VISIT, "phone"): sealer.seal("+15557654321", visit_key=OTHER_VISIT, purpose="phone"),
        (VISIT, "appointment-id"): sealer.seal(
            "Appointment/1", visit_key=VISIT, purpose="appointment-id"
        ),
    }
    for (visit, purpose), sealed in rows.items():
        assert sealer.open(sealed, visit_key=visit, purpose=purpose)
        for other_visit, other_purpose in rows.keys() - {(visit, purpose)}:
            with pytest.raises(SealBroken):
                sealer.open(sealed, visit_key=other_visit, purpose=other_purpose)


def test_an_unknown_key_id_is_named_and_refused(sealer):
    stranger = Sealer([new_key()])
    sealed = stranger.seal("+15551234567", visit_key=VISIT, purpose="phone")
    with pytest.raises(SealBroken, match=stranger.sealing_key_id):
        sealer.open(sealed, visit_key=VISIT, purpose="phone")


def test_a_known_key_id_on_another_keys_ciphertext_is_refused():
    a, b = new_key(), new_key()
    both = Sealer([a, b])
    sealed_by_b = Sealer([b]).seal("+15551234567", visit_key=VISIT, purpose="phone")
    relabelled = sealed_by_b.replace(f".{key_id(b)}.", f".{key_id(a)}.")
    assert both.open(sealed_by_b, visit_key=VISIT, purpose="phone") == "+15551234567"
    with pytest.raises(SealBroken):
        both.open(relabelled, visit_key=VISIT, purpose="phone")


def test_rotation_old_values_open_new_values_use_the_new_key():
    old, new = new_key(), new_key()
    before = Sealer([old])
    sealed_old = before.seal("Appointment/1", visit_key=VISIT, purpose="appointment-id")

    after = Sealer([new, old])  # the new key put first
    assert after.sealing_key_id == key_id(new) and after.key_ids == (key_id(new), key_id(old))
    assert after.open(sealed_old, visit_key=VISIT, purpose="appointment-id") == "Appointment/1"
    sealed_new = after.seal("Appointment/2", visit_key=VISIT, purpose="appointment-id")
    assert sealed_new.split(".")[1] == key_id(new)
    with pytest.raises(SealBroken):  # a sealer that only has the old key cannot open it
        before.open(sealed_new, visit_key=VISIT, purpose="appointment-id")

    retired = Sealer([new])  # the old key removed once its values are purged
    with pytest.raises(SealBroken, match=key_id(old)):
        retired.open(sealed_old, visit_key=VISIT, purpose="appointment-id")


def test_keys_from_the_setting_text():
    k1, k2, k3 = new_key(), new_key(), new_key()
    url_safe = base64.urlsafe_b64encode(k3).decode().rstrip("=")
    for text in [
        f"{b64(k1)},{b64(k2)},{url_safe}",
        f" {b64(k1)} ,\n{b64(k2)}\n{url_safe}\n",
        f"{b64(k1)}\\n{b64(k2)}\\n{url_safe}",  # literal \n, as app settings may hold it
        f"{b64(k1)}\r\n{b64(k2)}\r\n\r\n{url_safe}",
    ]:
        assert parse_keys(text) == [k1, k2, k3]
    sealer = Sealer.from_setting(f"{b64(k2)},{b64(k1)}")
    assert sealer.sealing_key_id == key_id(k2)
    assert "Sealer(key_ids=" in repr(sealer) and b64(k1) not in repr(sealer)


BAD_KEY_SETTINGS = {
    "empty": ("", "at least one key"),
    "only separators": (" , \n ", "at least one key"),
    "not base64": ("not base64 at all!", "key 1 is not base64"),
    "16 bytes": (b64(b"k" * 16), "key 1 is 16 bytes, not 32"),
    "33 bytes": (b64(b"k" * 33), "key 1 is 33 bytes, not 32"),
    "second bad": (f"{b64(b'a' * 32)},{b64(b'k' * 31)}", "key 2 is 31 bytes, not 32"),
    "repeated": (f"{b64(b'a' * 32)},{b64(b'a' * 32)}", "key 2 repeats key 1"),
    "hex, not base64": ("ab" * 32, "key 1 is 48 bytes, not 32"),
}


@pytest.mark.parametrize("case", sorted(BAD_KEY_SETTINGS))
def test_bad_key_settings_are_refused_without_echoing_them(case):
    text, expected = BAD_KEY_SETTINGS[case]
    with pytest.raises(SealingKeyError) as exc:
        Sealer.from_setting(text)
    message = str(exc.value)
    assert expected in message
    for part in filter(None, (p.strip() for p in re.split(r"[,\n]", text))):
        assert part not in message


def test_raw_keys_of_the_wrong_size_are_refused():
    for keys in ([], [b"k" * 31], [b"k" * 32, b"k" * 64], ["k" * 32]):
        with pytest.raises(SealingKeyError):
            Sealer(keys)


def test_the_hash_key_is_refused_as_a_sealing_key():
    as_bytes = HASH_KEY.encode()[:32]  # a 32-character hash key, its bytes given as the key
    with pytest.raises(SealingKeyError, match="hash key"):
        Sealer([as_bytes], hash_key=HASH_KEY[:32])
    with pytest.raises(SealingKeyError, match="hash key"):
        Sealer.from_setting(b64(as_bytes), hash_key=HASH_KEY[:32])
    with pytest.raises(SealingKeyError, match="key 2 is the hash key"):  # same text in both
        parse_keys(f"{b64(new_key())},{SEALING_KEY}", hash_key=SEALING_KEY)
    assert Sealer.from_setting(SEALING_KEY, hash_key=HASH_KEY).key_ids


@pytest.mark.parametrize("purpose", ["", "Phone", "phone/1", "a" * 64, "phone\x00", "phone\n"])
def test_purposes_are_short_lowercase_names(sealer, purpose):
    with pytest.raises(ValueError, match="purpose"):
        sealer.seal("x", visit_key=VISIT, purpose=purpose)
    with pytest.raises(ValueError, match="purpose"):
        sealer.open("s1.00000000.AAAA", visit_key=VISIT, purpose=purpose)


def test_a_visit_key_is_required(sealer):
    with pytest.raises(ValueError, match="visit key"):
        sealer.seal("x", visit_key="", purpose="phone")


# --- the setting -----------------------------------------------------------------------------


def test_the_setting_loads_and_is_required():
    s = load_settings(settings_env())
    assert Sealer.from_setting(s.sealing_keys.get_secret_value()).key_ids
    unset = settings_env()
    del unset["CONNECTOR_SEALING_KEYS"]
    with pytest.raises(SettingsError, match="CONNECTOR_SEALING_KEYS is missing"):
        load_settings(unset)
    with pytest.raises(SettingsError, match="CONNECTOR_SEALING_KEYS"):
        load_settings(settings_env(CONNECTOR_SEALING_KEYS=" "))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b64(b"k" * 16), "key 1 is 16 bytes, not 32"),
        ("definitely not a key", "key 1 is not base64"),
        ("HASH", "hash key"),
    ],
)
def test_a_bad_setting_is_named_without_its_value(value, expected):
    hash_key = settings_env()["CONNECTOR_HASH_KEY"]
    value = hash_key if value == "HASH" else value
    with pytest.raises(SettingsError) as exc:
        load_settings(settings_env(CONNECTOR_SEALING_KEYS=value))
    message = str(exc.value)
    assert message.startswith("Setting CONNECTOR_SEALING_KEYS is invalid")
    assert expected in message and "\n" not in message
    assert value not in message


def test_the_sample_key_is_a_valid_sealing_key():
    import json
    from pathlib import Path

    sample = json.loads(
        (Path(__file__).resolve().parents[2] / "local.settings.sample.json").read_text()
    )
    values = sample["Values"]
    sealer = Sealer.from_setting(
        values["CONNECTOR_SEALING_KEYS"], hash_key=values["CONNECTOR_HASH_KEY"]
    )
    sealed = sealer.seal("x", visit_key=VISIT, purpose="phone")
    assert sealer.open(sealed, visit_key=VISIT, purpose="phone") == "x"
