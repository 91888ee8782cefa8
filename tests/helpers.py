"""Small shared helpers for tests (fixtures live in tests/plugins/)."""

from __future__ import annotations

TENANT = "7d3c1c5e-0b1a-4c1e-9f00-00000000e7c0"
AUDIENCE = "api://evc-connector-local"
# base64 of b"test-only-sealing-key-0123456789" (32 bytes): obviously not a production key.
SEALING_KEY = "dGVzdC1vbmx5LXNlYWxpbmcta2V5LTAxMjM0NTY3ODk="


def settings_env(**overrides: str) -> dict[str, str]:
    """A complete, valid settings environment; storage defaults to an unreachable address."""
    env = {
        "AzureWebJobsStorage": "UseDevelopmentStorage=true",
        "CONNECTOR_PUBLIC_URL": "http://127.0.0.1:7071",
        "CONNECTOR_LOCAL_MODE": "true",
        "CONNECTOR_HASH_KEY": "test-hash-key-0123456789abcdef0123456789",
        "CONNECTOR_LOG_LEVEL": "INFO",
        "CONNECTOR_SEALING_KEYS": SEALING_KEY,
        "ENTRA_TENANT_ID": TENANT,
        "ENTRA_AUTHORITY_HOST": "https://127.0.0.1:7443/entra",
        "ENTRA_API_AUDIENCE": AUDIENCE,
        "ENTRA_CLIENT_ID": "5f0c4a1e-7a1b-4c2d-8e3f-00000000c0e1",
        "ENTRA_CLIENT_SECRET": "local-dev-secret-not-for-production",
    }
    env.update(overrides)
    return env


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
