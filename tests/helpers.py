"""Small shared helpers for tests (fixtures live in tests/plugins/; settings in dev/stack.py)."""

from __future__ import annotations


def generate_rsa_pem(bits: int = 2048) -> str:
    """A new RSA private key as unencrypted PKCS#8 PEM."""
    from cryptography.hazmat.primitives.asymmetric import rsa

    return _pem(rsa.generate_private_key(public_exponent=65537, key_size=bits))


def generate_ec_pem() -> str:
    """A new EC P-384 private key as unencrypted PKCS#8 PEM."""
    from cryptography.hazmat.primitives.asymmetric import ec

    return _pem(ec.generate_private_key(ec.SECP384R1()))


def _pem(key) -> str:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")


class Clock:
    """A monotonic clock a test moves by hand (`clock.now += 60`), for code taking `clock=`."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now
